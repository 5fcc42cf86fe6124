// tools/cli/options.hpp - the one option parser of the `lcmae` program's subcommands (and of the
// lcmae_pretrain alias): a table of options drives both parsing and --help, and every value is
// checked whole (no trailing characters, no overflow, finite numbers) with a message that names the
// option, what was expected and what was given. Usage errors exit with status 2.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

namespace lcmae::cli {

enum class Kind { Flag, Text, Int, Number };

/// One command-line option as --help shows it.
struct Option {
    const char* name;      // "--k"
    const char* value;     // "N" (empty for a flag)
    const char* fallback;  // the default, as --help shows it
    const char* help;
    Kind kind;
    const char* scope;     // "all" or the protocol / subcommand it belongs to
};

/// Prints "lcmae: <why>" and a pointer to the help of `help_command` (e.g. "lcmae eval knn"), then
/// exits with status 2 (a usage error).
[[noreturn]] inline void usage_error(const std::string& why, const std::string& help_command = "lcmae") {
    std::fflush(stdout);
    std::cerr << "lcmae: " << why << "\n"
              << "run '" << help_command << " --help' for " << (help_command == "lcmae" ? "the commands and options" : "its options")
              << "\n";
    std::exit(2);
}

/// A decimal integer in [lo, hi]: the whole string, no sign for values that must be >= 0, no
/// fraction or exponent. Messages: "option --k expects an integer, got 'twenty'",
/// "option --k expects an integer >= 1, got 0", "... an integer in 1..100, got 200".
inline long long parse_int(const std::string& name, const std::string& v, long long lo, long long hi,
                           const std::string& help_command) {
    long long x = 0;
    const char* const b = v.data();
    const char* const e = b + v.size();
    const auto [ptr, ec] = std::from_chars(b, e, x);
    const std::string range = hi == std::numeric_limits<long long>::max()
                                  ? "an integer >= " + std::to_string(lo)
                                  : "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    if (v.empty() || ec == std::errc::invalid_argument || ptr != e)
        usage_error("option " + name + " expects an integer, got '" + v + "'", help_command);
    if (ec == std::errc::result_out_of_range || x < lo || x > hi)
        usage_error("option " + name + " expects " + range + ", got " + v, help_command);
    return x;
}

/// An unsigned 64-bit integer (seeds): the whole string, decimal.
inline std::uint64_t parse_u64(const std::string& name, const std::string& v, const std::string& help_command) {
    std::uint64_t x = 0;
    const char* const b = v.data();
    const char* const e = b + v.size();
    const auto [ptr, ec] = std::from_chars(b, e, x);
    if (v.empty() || ec != std::errc{} || ptr != e)
        usage_error("option " + name + " expects an integer in 0..18446744073709551615, got '" + v + "'", help_command);
    return x;
}

/// A finite number: the whole string ("1e-3", "0.75"; not "nan", "inf" or "1.5x").
inline double parse_number(const std::string& name, const std::string& v, const std::string& help_command) {
    double x = 0;
    const char* const b = v.data();
    const char* const e = b + v.size();
    const auto [ptr, ec] = std::from_chars(b, e, x);
    if (v.empty() || ec != std::errc{} || ptr != e || !std::isfinite(x))
        usage_error("option " + name + " expects a number, got '" + v + "'", help_command);
    return x;
}

/// The option named `name` in `table`, or null ("-h" is "--help").
inline const Option* find_option(const std::vector<Option>& table, const std::string& name) {
    const std::string n = name == "-h" ? "--help" : name;
    for (const auto& o : table)
        if (n == o.name) return &o;
    return nullptr;
}

/// Whether an option of `scope_list` ("all", or protocols separated by commas: "linear,finetune")
/// belongs to `scope`.
inline bool in_scope(const std::string& scope_list, const std::string& scope) {
    if (scope_list == "all") return true;
    for (std::size_t b = 0;;) {
        const std::size_t e = scope_list.find(',', b);
        if (scope_list.compare(b, e == std::string::npos ? std::string::npos : e - b, scope) == 0) return true;
        if (e == std::string::npos) return false;
        b = e + 1;
    }
}

/// One option of a command line and its value ("" for a flag).
struct Given {
    const Option* opt;
    std::string value;
};

/// Reads the option at argv[i] (and its value, advancing i past it) for `command scope` (e.g.
/// "lcmae eval" "knn", or "lcmae" "export"). Usage errors: "unknown option '--kk' for 'lcmae eval
/// knn'", "option --epochs belongs to 'lcmae eval linear', not to 'lcmae eval knn'", "option --k
/// needs a value (N)".
inline Given next_option(const std::vector<Option>& table, int argc, char** argv, int& i, const std::string& command,
                         const std::string& scope) {
    const std::string k = argv[i];
    const std::string here = command + " " + scope;
    const Option* opt = find_option(table, k);
    if (opt == nullptr) usage_error("unknown option '" + k + "' for '" + here + "'", here);
    if (!in_scope(opt->scope, scope)) {
        std::string owners;  // "'lcmae eval linear' or 'lcmae eval finetune'"
        const std::string sc = opt->scope;
        for (std::size_t b = 0, e; b != std::string::npos; b = e == std::string::npos ? e : e + 1) {
            e = sc.find(',', b);
            owners += (owners.empty() ? "'" : " or '") + command + " " + sc.substr(b, e == std::string::npos ? e : e - b) + "'";
        }
        usage_error("option " + k + " belongs to " + owners + ", not to '" + here + "'", here);
    }
    Given g{opt, {}};
    if (opt->kind != Kind::Flag) {
        if (i + 1 >= argc) usage_error("option " + k + " needs a value (" + opt->value + ")", here);
        g.value = argv[++i];
    }
    return g;
}

/// "  --k N                        neighbours that vote [default: 20] (knn only)" per option of
/// `scope` (and of scope "all").
inline void print_options(std::ostream& os, const std::vector<Option>& table, const std::string& scope) {
    for (const auto& o : table) {
        if (scope != "all" && !in_scope(o.scope, scope)) continue;
        std::string head = std::string("  ") + o.name + (o.value[0] ? std::string(" ") + o.value : "");
        if (head.size() < 30) head.resize(30, ' ');
        os << head << " " << o.help;
        if (o.fallback[0]) os << " [default: " << o.fallback << "]";
        if (std::string(o.scope) != "all") os << " (" << o.scope << " only)";
        os << "\n";
    }
}

}  // namespace lcmae::cli
