// tools/cli/config_file.hpp - `--config FILE`: the options of a subcommand as a JSON object whose keys
// are the option names without the leading dashes ({"epochs": 3, "loss": "infonce", "no-eval": true}).
// Each member is checked against the same table of cli::Option that drives the command line, turned
// into the text the command line would carry, and then goes through the same parser and range
// checks, so a value means the same in both places. The caller applies the file first and the
// command line after it (command-line flags win). Every problem is a usage error (exit status 2)
// that names the file and the key.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cli/options.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/io/json.hpp"

namespace lcmae::cli {

/// The (option, value) pairs of a config file in file order; a flag set to false is left out.
/// `not_in_file` lists options that make no sense in a file (e.g. "--config", "--help").
inline std::vector<std::pair<const Option*, std::string>> read_config_file(const std::string& file, const std::vector<Option>& table,
                                                                          const std::vector<std::string>& not_in_file,
                                                                          const std::string& help_command) {
    const std::string where = "config file '" + file + "'";
    std::ifstream in(file, std::ios::binary);
    if (!in) usage_error(where + " cannot be read (no such file, or no permission)", help_command);
    std::ostringstream text;
    text << in.rdbuf();
    json::Value root;
    try {
        root = json::parse(text.str(), where, json::Dialect::Config);
    } catch (const lcmae::Error& e) {
        const std::string m = e.what();  // "lcmae error at <source>:<line>: malformed JSON in <where> at byte ..."
        const auto at = m.find("malformed JSON");
        usage_error(at == std::string::npos ? m : m.substr(at), help_command);
    }
    if (!root.is_object()) usage_error(where + " must hold a JSON object of options, not " + root.type_name(), help_command);
    std::vector<std::pair<const Option*, std::string>> out;
    for (const auto& [key, v] : root.members()) {
        const Option* o = key.rfind("-", 0) == 0 ? nullptr : find_option(table, "--" + key);
        bool refused = false;
        for (const auto& n : not_in_file) refused = refused || (o != nullptr && n == o->name);
        if (o == nullptr || refused)
            usage_error(where + ": unknown key \"" + key + "\" (expected an option name without the dashes, e.g. \"epochs\"" +
                            (refused ? "; --" + key + " is for the command line only" : std::string()) + ")",
                        help_command);
        const auto wrong = [&](const char* expected) {
            usage_error(where + ": key \"" + key + "\" expects " + expected + ", got " + v.type_name(), help_command);
        };
        switch (o->kind) {
            case Kind::Flag:
                if (!v.is_bool()) wrong("true or false");
                if (v.as_bool()) out.emplace_back(o, "");
                break;
            case Kind::Int:
                if (!v.is_integer()) wrong("an integer");
                out.emplace_back(o, v.number_text());
                break;
            case Kind::Number:
                if (!v.is_number()) wrong("a number");
                out.emplace_back(o, v.number_text());
                break;
            case Kind::Text:
                if (!v.is_string()) wrong("a string");
                out.emplace_back(o, v.as_string());
                break;
        }
    }
    return out;
}

}  // namespace lcmae::cli
