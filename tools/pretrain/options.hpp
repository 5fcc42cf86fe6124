// tools/pretrain/options.hpp - `lcmae pretrain`'s command line: the option table (parsing, --config
// and --help all read it), the parsed Args with their checks, the output-directory probe and
// OUT/config.json. Shared by the two translation units of the main job: cmd_pretrain.cpp (the
// program, CPU training) and cmd_pretrain_cuda.cu (--device cuda, compiled by nvcc), hence inline.
#pragma once

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <limits>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "cli/config_file.hpp"
#include "cli/options.hpp"
#include "lcmae/apps/data_source.hpp"
#include "lcmae/backend/precision.hpp"
#include "lcmae/data/dataset.hpp"
#include "lcmae/io/atomic_file.hpp"
#include "lcmae/io/json.hpp"

namespace lcmae::tools::pretrain {

// ---- options: one table drives parsing, --config and --help ---------------------------------

using cli::Kind;
using cli::Option;

inline const std::vector<Option>& options() {
    static const std::vector<Option> table{
        {"--data", "fashion-mnist|cifar10:DIR|DIR", "fashion-mnist",
         "training images: Fashion-MNIST (Debian's dataset package), the CIFAR-10 binary batches in DIR, or a folder of images (DIR/train and DIR/test class sub-folders: trains on train/, scores the k-NN on test/)", Kind::Text, "all"},
        {"--method", "lcmae|mae|lc-simmim", "lcmae", "LC-MAE (symmetric views), plain MAE, or LC-SimMIM (paper views, block masking)", Kind::Text, "all"},
        {"--loss", "cosine|infonce|smoothl1", "cosine", "the guidance loss (lcmae and lc-simmim only)", Kind::Text, "all"},
        {"--crop", "src|rrc", "src", "simple resized crop (DeiT III) or random resized crop (MAE)", Kind::Text, "all"},
        {"--model", "tiny|small", "tiny", "tiny: D 192, 6 blocks, 3 heads; small: D 384, 8 blocks, 6 heads; patch 4 at the data's size", Kind::Text, "all"},
        {"--epochs", "E", "1", "schedule length (warm-up + cosine lr, EMA momentum)", Kind::Int, "all"},
        {"--steps", "N", "0 (the whole schedule)", "stop after optimiser step N (the schedule still spans --epochs)", Kind::Int, "all"},
        {"--minutes", "M", "0 (no limit)", "stop after M minutes of wall-clock time (saved, resumable)", Kind::Number, "all"},
        {"--batch", "B", "64", "images per micro-batch", Kind::Int, "all"},
        {"--accum", "K", "1", "micro-batches per optimiser step (lr = blr * B * K / 256)", Kind::Int, "all"},
        {"--blr", "LR", "1.5e-3", "base learning rate of AdamW", Kind::Number, "all"},
        {"--warmup", "E", "0.02", "linear warm-up epochs (at most --epochs)", Kind::Number, "all"},
        {"--alpha", "A", "0.25", "L = L_MIM + alpha L_GG (lcmae and lc-simmim only)", Kind::Number, "all"},
        {"--mask-ratio", "R", "0.75 (lc-simmim: 0.6)", "masked share of the patches (lcmae: >= 0.5, symmetric views)", Kind::Number, "all"},
        {"--target-mask-ratio", "R", "0", "share of tokens hidden from the EMA target (Table 5c; lcmae and lc-simmim only)", Kind::Number, "all"},
        {"--ema", "M", "0.996", "base momentum of the EMA target, cosine to 1 (lcmae and lc-simmim only)", Kind::Number, "all"},
        {"--seed", "S", "0", "initialisation, masks and data order", Kind::Int, "all"},
        {"--threads", "T", "0 (all cores)", "CPU threads", Kind::Int, "all"},
        {"--device", "cpu|cuda", "cpu", "where training runs: the CPU, or the first CUDA GPU (under mpirun: one GPU per rank, dist::Nccl); the k-NN runs on the CPU", Kind::Text, "all"},
        {"--precision", "fp32|tf32|bf16", "fp32", "training GEMMs: fp32 strict; tf32 (cuda only) TF32 tensor cores; bf16 = BF16 operands, FP32 sums, FP32 weights (cuda, or CPUs with AVX512-BF16); the k-NN runs in fp32", Kind::Text, "all"},
        {"--limit", "N", "0 (all)", "train on the first N images only", Kind::Int, "all"},
        {"--out", "DIR", "runs/<data> (the --resume DIR when resuming)", "where checkpoint, state, config.json and metrics.jsonl go", Kind::Text, "all"},
        {"--resume", "DIR", "", "continue the run saved in DIR exactly (same settings)", Kind::Text, "all"},
        {"--config", "FILE", "", "options as a JSON object, names without dashes ({\"epochs\": 3}); flags win", Kind::Text, "all"},
        {"--save-every", "N", "200", "save every N optimiser steps; 0 = only at the end", Kind::Int, "all"},
        {"--log-every", "N", "10", "a metrics.jsonl line every N optimiser steps", Kind::Int, "all"},
        {"--no-eval", "", "off", "skip the k-NN evaluation at the end", Kind::Flag, "all"},
        {"--eval-limit-train", "N", "10000", "k-NN memory bank: the first N training images (0 = all)", Kind::Int, "all"},
        {"--eval-limit-test", "N", "0 (all 10000)", "k-NN queries: the first N test images", Kind::Int, "all"},
        {"--export-encoder", "FILE", "", "also write the online encoder under timm's VisionTransformer names", Kind::Text, "all"},
        {"--skip-corrupt", "", "off", "image folders: warn about undecodable files and go on", Kind::Flag, "all"},
        {"--allow-config-change", "", "off", "--resume a run saved with other settings: warn instead of refusing", Kind::Flag, "all"},
        {"--help", "", "", "this text", Kind::Flag, "all"},
    };
    return table;
}

struct Args {
    std::string data = "fashion-mnist", method = "lcmae", loss = "cosine", crop = "src", model = "tiny";
    std::string out, resume, config, export_encoder, precision = "fp32", device = "cpu";
    long epochs = 1, steps = 0, batch = 64, accum = 1, limit = 0, save_every = 200, log_every = 10;
    long eval_limit_train = 10000, eval_limit_test = 0;
    double minutes = 0, blr = 1.5e-3, warmup = 0.02, alpha = 0.25, mask_ratio = 0.75, target_mask_ratio = 0, ema = 0.996;
    int threads = 0;
    std::uint64_t seed = 0;
    bool no_eval = false, skip_corrupt = false, allow_config_change = false;
    std::set<std::string> given;  // options set on the command line or in the config file
    std::string prog;             // "lcmae pretrain" or "lcmae_pretrain" (messages, --help)
};

inline std::string help_command(const Args& a) { return a.prog == "lcmae_pretrain" ? "lcmae_pretrain" : "lcmae pretrain"; }

inline void print_help(const Args& a) {
    std::cout << help_command(a) << ": pre-train a ViT encoder with LC-MAE, MAE or LC-SimMIM, then score it with k-NN\n\n"
              << "usage: " << help_command(a) << " [options]\n\noptions:\n";
    cli::print_options(std::cout, options(), "all");
    std::cout << "\nexit status: 0 done (also after Ctrl-C, which saves first), 1 run-time error (data, checkpoint,\n"
                 "output, a loss that is not finite), 2 bad command line or config file\n";
}

[[noreturn]] inline void usage(const Args& a, const std::string& why) { cli::usage_error(why, help_command(a)); }

inline long int_in(const Args& a, const std::string& name, const std::string& v, long lo, long hi) {
    return static_cast<long>(cli::parse_int(name, v, lo, hi, help_command(a)));
}
/// A number accepted by `ok`, described by `expected` ("in [0, 1)").
template <class Ok>
double number_in(const Args& a, const std::string& name, const std::string& v, Ok ok, const std::string& expected) {
    const double x = cli::parse_number(name, v, help_command(a));
    if (!ok(x)) usage(a, "option " + name + " expects a number " + expected + ", got " + v);
    return x;
}

inline void apply(Args& a, const Option& o, const std::string& v) {
    const std::string n = o.name;
    constexpr long kMax = std::numeric_limits<long>::max();
    a.given.insert(n);
    if (n == "--help") {
        print_help(a);
        std::exit(0);
    } else if (n == "--data") a.data = v;
    else if (n == "--method") a.method = v;
    else if (n == "--loss") a.loss = v;
    else if (n == "--crop") a.crop = v;
    else if (n == "--model") a.model = v;
    else if (n == "--out") a.out = v;
    else if (n == "--resume") a.resume = v;
    else if (n == "--config") a.config = v;
    else if (n == "--export-encoder") a.export_encoder = v;
    else if (n == "--no-eval") a.no_eval = true;
    else if (n == "--skip-corrupt") a.skip_corrupt = true;
    else if (n == "--allow-config-change") a.allow_config_change = true;
    else if (n == "--epochs") a.epochs = int_in(a, n, v, 1, 1'000'000);
    else if (n == "--steps") a.steps = int_in(a, n, v, 0, kMax);
    else if (n == "--batch") a.batch = int_in(a, n, v, 1, 65536);
    else if (n == "--accum") a.accum = int_in(a, n, v, 1, 65536);
    else if (n == "--limit") a.limit = int_in(a, n, v, 0, kMax);
    else if (n == "--save-every") a.save_every = int_in(a, n, v, 0, kMax);
    else if (n == "--log-every") a.log_every = int_in(a, n, v, 1, kMax);
    else if (n == "--eval-limit-train") a.eval_limit_train = int_in(a, n, v, 0, kMax);
    else if (n == "--eval-limit-test") a.eval_limit_test = int_in(a, n, v, 0, kMax);
    else if (n == "--threads") a.threads = static_cast<int>(int_in(a, n, v, 0, 1024));
    else if (n == "--precision") {
        if (v != "fp32" && v != "tf32" && v != "bf16") usage(a, "option --precision expects fp32, tf32 or bf16, got '" + v + "'");
        a.precision = v;
    }
    else if (n == "--device") {
        if (v != "cpu" && v != "cuda") usage(a, "option --device expects cpu or cuda, got '" + v + "'");
        a.device = v;
    }
    else if (n == "--seed") a.seed = cli::parse_u64(n, v, help_command(a));
    else if (n == "--minutes") a.minutes = number_in(a, n, v, [](double x) { return x >= 0; }, ">= 0");
    else if (n == "--blr") a.blr = number_in(a, n, v, [](double x) { return x > 0; }, "> 0");
    else if (n == "--warmup") a.warmup = number_in(a, n, v, [](double x) { return x >= 0; }, ">= 0");
    else if (n == "--alpha") a.alpha = number_in(a, n, v, [](double x) { return x >= 0; }, ">= 0");
    else if (n == "--mask-ratio") a.mask_ratio = number_in(a, n, v, [](double x) { return x > 0 && x < 1; }, "in (0, 1)");
    else if (n == "--target-mask-ratio")
        a.target_mask_ratio = number_in(a, n, v, [](double x) { return x >= 0 && x < 1; }, "in [0, 1)");
    else if (n == "--ema") a.ema = number_in(a, n, v, [](double x) { return x >= 0 && x <= 1; }, "in [0, 1]");
}

/// Command line first collected, then: the config file (if any), then the command line over it.
inline Args parse(int argc, char** argv) {
    Args a;
    a.prog = std::filesystem::path(argv[0]).filename().string() == "lcmae_pretrain" ? "lcmae_pretrain" : "lcmae pretrain";
    std::vector<std::pair<const Option*, std::string>> cmdline;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        const Option* o = cli::find_option(options(), k);
        if (o == nullptr) usage(a, "unknown option '" + k + "' for '" + help_command(a) + "'");
        std::string v;
        if (o->kind != Kind::Flag) {
            if (i + 1 >= argc) usage(a, "option " + k + " needs a value (" + o->value + ")");
            v = argv[++i];
        }
        if (std::string(o->name) == "--help") apply(a, *o, v);
        if (std::string(o->name) == "--config") a.config = v;
        cmdline.emplace_back(o, v);
    }
    if (!a.config.empty())
        for (const auto& [o, v] : cli::read_config_file(a.config, options(), {"--config", "--help"}, help_command(a))) apply(a, *o, v);
    for (const auto& [o, v] : cmdline) apply(a, *o, v);

    // values and combinations, before anything is read or written
    const auto num = [](double x) {
        std::ostringstream o;
        o << x;
        return o.str();
    };
    const auto one_of = [&](const char* name, const std::string& v, std::initializer_list<const char*> allowed, const std::string& words) {
        for (const char* x : allowed)
            if (v == x) return;
        usage(a, std::string("option ") + name + " expects " + words + ", got '" + v + "'");
    };
    one_of("--method", a.method, {"lcmae", "mae", "lc-simmim"}, "lcmae, mae or lc-simmim");
    one_of("--loss", a.loss, {"cosine", "infonce", "smoothl1"}, "cosine, infonce or smoothl1 (plain MAE is --method mae)");
    one_of("--crop", a.crop, {"src", "rrc"}, "src (simple resized crop) or rrc (random resized crop)");
    one_of("--model", a.model, {"tiny", "small"}, "tiny or small");
    if (a.data.empty()) usage(a, "option --data must not be empty");
    if (a.data.rfind("cifar10:", 0) == 0 && a.data.size() == 8) usage(a, "option --data cifar10:DIR needs the folder of the CIFAR-10 binary batches");
    if (a.method == "mae")
        for (const char* guided : {"--loss", "--alpha", "--target-mask-ratio", "--ema"})
            if (a.given.count(guided))
                usage(a, std::string("option ") + guided + " applies to --method lcmae and lc-simmim (plain MAE has no guidance branch)");
    if (a.method == "lc-simmim" && !a.given.count("--mask-ratio")) a.mask_ratio = 0.6;
    if (a.method == "lcmae" && a.mask_ratio < 0.5)
        usage(a, "--method lcmae needs --mask-ratio >= 0.5 (its symmetric views mask disjoint sets), got " + num(a.mask_ratio));
    if (a.warmup > double(a.epochs))
        usage(a, "option --warmup expects a number in [0, --epochs = " + std::to_string(a.epochs) + "], got " + num(a.warmup));
    if (a.precision == "tf32" && a.device != "cuda")
        usage(a, "--precision tf32 is a GPU mode (TF32 tensor cores): use it with --device cuda, or fp32 / bf16 on the CPU");
    if (a.out.empty() && a.given.count("--out")) usage(a, "option --out must not be empty");
    if (a.out.empty()) {
        if (!a.resume.empty()) a.out = a.resume;
        else if (a.data == "fashion-mnist") a.out = "runs/fashion-mnist";
        else if (a.data.rfind("cifar10:", 0) == 0) a.out = "runs/cifar10";
        else {
            const auto dir = std::filesystem::path(a.data).lexically_normal();  // "imgs/" -> name "imgs"
            a.out = "runs/" + (dir.has_filename() ? dir : dir.parent_path()).filename().string();
        }
    }
    return a;
}

// ---- output files ---------------------------------------------------------------------------

// Checks, before any data is read or any step is taken, that --out can hold the checkpoint: the
// directory is created if needed and a probe file is written, flushed and removed.
inline void check_output_dir(const std::string& out) {
    namespace fs = std::filesystem;
    const auto fail = [&](const std::string& why) { throw std::runtime_error("cannot use --out '" + out + "': " + why); };
    std::error_code ec;
    const fs::path dir(out);
    fs::create_directories(dir, ec);
    if (ec) fail("cannot create the directory: " + ec.message());
    if (!fs::is_directory(dir, ec)) fail("it exists and is not a directory");
    const fs::path probe = dir / (".lcmae_write_probe." + std::to_string(::getpid()));
    std::FILE* f = std::fopen(probe.c_str(), "wb");
    if (!f) fail(std::string("cannot write a file there: ") + std::strerror(errno));
    const bool ok = std::fputs("probe\n", f) >= 0 && std::fflush(f) == 0;
    const int err = errno;
    if (std::fclose(f) != 0 || !ok) {
        fs::remove(probe, ec);
        fail(std::string("writing a file there failed: ") + std::strerror(err));
    }
    if (!fs::remove(probe, ec) || ec) fail("cannot remove the probe file " + probe.string());
}

inline std::string json_text(const std::string& s) {
    std::string out;
    json::detail::write_string(out, s);
    return out;
}
inline std::string json_real(double x) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);  // shortest text that reads back as x
    std::string t(buf, r.ptr);
    if (t.find_first_of(".eE") == std::string::npos) t += ".0";
    return t;
}

/// OUT/config.json: every option (names without dashes) with its effective value, so
/// `lcmae pretrain --config OUT/config.json` repeats the run.
inline std::string config_json(const Args& a) {
    std::ostringstream js;
    const auto text = [&](const char* k, const std::string& v) { js << ",\n  \"" << k << "\": " << json_text(v); };
    const auto integer = [&](const char* k, auto v) { js << ",\n  \"" << k << "\": " << v; };
    const auto real = [&](const char* k, double v) { js << ",\n  \"" << k << "\": " << json_real(v); };
    const auto flag = [&](const char* k, bool v) { js << ",\n  \"" << k << "\": " << (v ? "true" : "false"); };
    js << "{\n  \"data\": " << json_text(a.data);
    text("method", a.method);
    if (a.method != "mae") text("loss", a.loss);
    text("crop", a.crop); text("model", a.model);
    integer("epochs", a.epochs); integer("steps", a.steps); real("minutes", a.minutes); integer("batch", a.batch);
    integer("accum", a.accum); real("blr", a.blr); real("warmup", a.warmup);
    if (a.method != "mae") real("alpha", a.alpha);
    real("mask-ratio", a.mask_ratio);
    if (a.method != "mae") { real("target-mask-ratio", a.target_mask_ratio); real("ema", a.ema); }
    integer("seed", a.seed); integer("threads", a.threads); text("device", a.device); text("precision", a.precision);
    integer("limit", a.limit);
    text("out", a.out);
    text("resume", a.resume); integer("save-every", a.save_every); integer("log-every", a.log_every); flag("no-eval", a.no_eval);
    integer("eval-limit-train", a.eval_limit_train); integer("eval-limit-test", a.eval_limit_test);
    text("export-encoder", a.export_encoder); flag("skip-corrupt", a.skip_corrupt); flag("allow-config-change", a.allow_config_change);
    js << "\n}\n";
    return js.str();
}

inline backend::Precision precision_of(const Args& a) {
    return a.precision == "bf16" ? backend::Precision::Bf16 : a.precision == "tf32" ? backend::Precision::Tf32 : backend::Precision::Fp32;
}

inline void write_atomic(const std::filesystem::path& path, const std::string& text) {
    io::AtomicFileWriter w(path);
    w.write(text);
    w.commit();
}

// ---- data -----------------------------------------------------------------------------------

// The data sets behind --data (and the --limit view) are lcmae/apps/data_source.hpp's.
inline bool is_fashion_mnist(const Args& a) { return apps::is_fashion_mnist(a.data); }
inline std::shared_ptr<const data::Dataset> load_split(const Args& a, bool train, data::Normalization& norm) {
    return apps::load_split(a.data, train, norm, a.skip_corrupt);
}

}  // namespace lcmae::tools::pretrain
