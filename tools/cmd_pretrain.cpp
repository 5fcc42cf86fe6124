// tools/cmd_pretrain.cpp - `lcmae pretrain`: the main job. Pre-trains LC-MAE (or MAE, LC-SimMIM) on
// Fashion-MNIST (the default), CIFAR-10 or any folder of class sub-folders; shows progress, writes
// OUT/config.json, OUT/metrics.jsonl and atomic checkpoints (online + EMA target, safetensors) plus
// the training state every --save-every optimiser steps and at the end; --resume DIR continues a
// run exactly (bit-identical files). Then the weighted k-NN of SPEC 4 (mean and cls, k 20, T 0.07)
// scores the online encoder and writes OUT/eval-knn.json. docs/cli.md is the reference.
//
//   lcmae pretrain                                        LC-MAE on Fashion-MNIST, ~10 min on 2 cores
//   lcmae pretrain --method mae --crop rrc --epochs 3
//   lcmae pretrain --config run.json --steps 100          (flags win over the file)
//   lcmae_pretrain ...                                     the same program (examples/lcmae_pretrain)
//
// Exit codes: 0 done (also after Ctrl-C: saved first); 1 a run-time failure (data, checkpoint,
// output, a loss that is not finite); 2 a usage error.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "cli/config_file.hpp"
#include "cli/options.hpp"
#include "commands.hpp"
#include "lcmae/apps/data_source.hpp"
#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/apps/run_log.hpp"
#include "lcmae/apps/run_spec.hpp"
#include "lcmae/apps/timm_transfer.hpp"
#include "lcmae/backend/cpu/omp_wait.hpp"
#include "lcmae/data/loader.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/eval/knn.hpp"
#include "lcmae/lcmae.hpp"
#ifdef LCMAE_HAVE_MPI
#include "lcmae/dist/mpi.hpp"
#endif

using namespace lcmae;

namespace {

// Ctrl-C / SIGTERM ask for a clean stop: the current micro-batch finishes, then the checkpoint and
// training state are written (atomically) and the program exits, so an interrupted run resumes. A
// second signal ends the program at once, but only one that comes a second or more after the first:
// coreutils' `timeout` (and some job runners) signal the child and then its whole process group, so
// one request arrives twice within microseconds, and must still save (it killed CI's run once).
std::atomic<bool> g_stop{false};
std::atomic<std::int64_t> g_first_signal_ns{0};
#ifdef LCMAE_HAVE_MPI
// Under mpirun (README "Data-parallel training"): this rank's communicator, else null.
const dist::Mpi* g_comm = nullptr;
#endif
extern "C" void request_stop(int sig) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe, unlike std::chrono
    const std::int64_t ns = std::int64_t(now.tv_sec) * 1000000000 + now.tv_nsec;
    if (!g_stop.exchange(true)) {
        g_first_signal_ns.store(ns);
        return;
    }
    if (ns - g_first_signal_ns.load() < 1000000000) return;  // the same request, delivered twice
    std::signal(sig, SIG_DFL);  // a real second request: end now, with the signal's exit status
    std::raise(sig);
}

// ---- options: one table drives parsing, --config and --help ---------------------------------

using cli::Kind;
using cli::Option;

const std::vector<Option>& options() {
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
        {"--precision", "fp32|bf16", "fp32", "training GEMMs: bf16 = BF16 operands, FP32 sums, FP32 weights (CPUs with AVX512-BF16); the k-NN runs in fp32", Kind::Text, "all"},
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
    std::string out, resume, config, export_encoder, precision = "fp32";
    long epochs = 1, steps = 0, batch = 64, accum = 1, limit = 0, save_every = 200, log_every = 10;
    long eval_limit_train = 10000, eval_limit_test = 0;
    double minutes = 0, blr = 1.5e-3, warmup = 0.02, alpha = 0.25, mask_ratio = 0.75, target_mask_ratio = 0, ema = 0.996;
    int threads = 0;
    std::uint64_t seed = 0;
    bool no_eval = false, skip_corrupt = false, allow_config_change = false;
    std::set<std::string> given;  // options set on the command line or in the config file
    std::string prog;             // "lcmae pretrain" or "lcmae_pretrain" (messages, --help)
};

std::string help_command(const Args& a) { return a.prog == "lcmae_pretrain" ? "lcmae_pretrain" : "lcmae pretrain"; }

void print_help(const Args& a) {
    std::cout << help_command(a) << ": pre-train a ViT encoder with LC-MAE, MAE or LC-SimMIM, then score it with k-NN\n\n"
              << "usage: " << help_command(a) << " [options]\n\noptions:\n";
    cli::print_options(std::cout, options(), "all");
    std::cout << "\nexit status: 0 done (also after Ctrl-C, which saves first), 1 run-time error (data, checkpoint,\n"
                 "output, a loss that is not finite), 2 bad command line or config file\n";
}

[[noreturn]] void usage(const Args& a, const std::string& why) { cli::usage_error(why, help_command(a)); }

long int_in(const Args& a, const std::string& name, const std::string& v, long lo, long hi) {
    return static_cast<long>(cli::parse_int(name, v, lo, hi, help_command(a)));
}
/// A number accepted by `ok`, described by `expected` ("in [0, 1)").
template <class Ok>
double number_in(const Args& a, const std::string& name, const std::string& v, Ok ok, const std::string& expected) {
    const double x = cli::parse_number(name, v, help_command(a));
    if (!ok(x)) usage(a, "option " + name + " expects a number " + expected + ", got " + v);
    return x;
}

void apply(Args& a, const Option& o, const std::string& v) {
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
        if (v != "fp32" && v != "bf16") usage(a, "option --precision expects fp32 or bf16, got '" + v + "'");
        a.precision = v;
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
Args parse(int argc, char** argv) {
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
void check_output_dir(const std::string& out) {
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

std::string json_text(const std::string& s) {
    std::string out;
    json::detail::write_string(out, s);
    return out;
}
std::string json_real(double x) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);  // shortest text that reads back as x
    std::string t(buf, r.ptr);
    if (t.find_first_of(".eE") == std::string::npos) t += ".0";
    return t;
}

/// OUT/config.json: every option (names without dashes) with its effective value, so
/// `lcmae pretrain --config OUT/config.json` repeats the run.
std::string config_json(const Args& a) {
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
    integer("seed", a.seed); integer("threads", a.threads); text("precision", a.precision); integer("limit", a.limit);
    text("out", a.out);
    text("resume", a.resume); integer("save-every", a.save_every); integer("log-every", a.log_every); flag("no-eval", a.no_eval);
    integer("eval-limit-train", a.eval_limit_train); integer("eval-limit-test", a.eval_limit_test);
    text("export-encoder", a.export_encoder); flag("skip-corrupt", a.skip_corrupt); flag("allow-config-change", a.allow_config_change);
    js << "\n}\n";
    return js.str();
}

backend::Precision precision_of(const Args& a) { return a.precision == "bf16" ? backend::Precision::Bf16 : backend::Precision::Fp32; }

void write_atomic(const std::filesystem::path& path, const std::string& text) {
    io::AtomicFileWriter w(path);
    w.write(text);
    w.commit();
}

// ---- data -----------------------------------------------------------------------------------

// The data sets behind --data (and the --limit view) are lcmae/apps/data_source.hpp's.
bool is_fashion_mnist(const Args& a) { return apps::is_fashion_mnist(a.data); }
std::shared_ptr<const data::Dataset> load_split(const Args& a, bool train, data::Normalization& norm) {
    return apps::load_split(a.data, train, norm, a.skip_corrupt);
}

// ---- the k-NN at the end (SPEC 4: the online encoder, mean and cls, k 20, T 0.07) ----------------

void run_knn(const Args& a, const backend::Cpu& ctx, const vit::VitDims& dims, const std::filesystem::path& ckpt) {
    data::Normalization norm;
    const auto train_ds = load_split(a, true, norm);
    const auto test_ds = load_split(a, false, norm);
    if (!test_ds) {
        std::printf("k-NN: skipped (an image folder has no labelled test split; run 'lcmae eval' on a labelled dataset)\n");
        return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t ntr = a.eval_limit_train > 0 ? std::min<std::size_t>(a.eval_limit_train, train_ds->size()) : train_ds->size();
    const std::size_t nte = a.eval_limit_test > 0 ? std::min<std::size_t>(a.eval_limit_test, test_ds->size()) : test_ds->size();
    eval::KnnConfig kc;  // k 20, T 0.07
    kc.threads = ctx.threads();
    backend::Cpu fp32 = ctx;  // features in FP32 whatever --precision trained with
    fp32.set_precision(backend::Precision::Fp32);
    kc.k = int(std::min<std::size_t>(std::size_t(kc.k), ntr));
    std::printf("k-NN: online encoder of %s, %zu train / %zu test images\n", ckpt.string().c_str(), ntr, nte);
    std::fflush(stdout);
    const eval::ImagePrep prep{.image = int(dims.image), .channels = int(dims.channels), .norm = norm};
    eval::FrozenEncoder<float> enc(fp32, dims, 256);
    enc.load(fp32, ckpt.string(), "");
    auto ftr = enc.extract(fp32, *train_ds, prep, ntr, {}, ctx.threads());
    auto fte = enc.extract(fp32, *test_ds, prep, nte, {}, ctx.threads());
    std::ostringstream js;
    js << "{\n  \"protocol\": \"knn\",\n  \"source\": \"online\",\n  \"checkpoint\": " << json_text(ckpt.string())
       << ",\n  \"data\": " << json_text(a.data) << ",\n  \"n_train\": " << ntr << ",\n  \"n_test\": " << nte << ",\n  \"k\": " << kc.k
       << ",\n  \"temperature\": " << json_real(kc.temperature) << ",\n  \"results\": {";
    const std::pair<const char*, std::pair<eval::FeatureSet*, eval::FeatureSet*>> sets[] = {{"mean", {&ftr.mean, &fte.mean}},
                                                                                           {"cls", {&ftr.cls, &fte.cls}}};
    for (const auto& [name, tt] : sets) {
        const auto r = eval::knn_classify(*tt.first, *tt.second, kc);
        std::printf("k-NN (k %d, T %g) %-4s top-1 %.2f%%", kc.k, kc.temperature, name, r.top1);
        if (r.has_top5) std::printf("  top-5 %.2f%%", r.top5);
        std::printf("\n");
        js << (name[0] == 'm' ? "\n" : ",\n") << "    \"" << name << "\": {\"top1\": " << json_real(r.top1);
        if (r.has_top5) js << ", \"top5\": " << json_real(r.top5);
        js << "}";
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    js << "\n  },\n  \"seconds\": " << json_real(secs) << "\n}\n";
    const auto out = std::filesystem::path(a.out) / "eval-knn.json";
    write_atomic(out, js.str());
    std::printf("k-NN took %.1f s; wrote %s\n", secs, out.string().c_str());
}

// ---- training -------------------------------------------------------------------------------

/// Running averages of the micro-batch losses since the last line.
struct Window {
    double loss = 0, mim = 0, gg = 0;
    long n = 0, images = 0;
    double since = 0;  // elapsed seconds at the window's start
    void add(const models::StepLosses& l, long b) { loss += l.total; mim += l.mim; gg += l.gg; ++n; images += b; }
    apps::MetricsRecord record(std::int64_t step, std::int64_t epoch, std::int64_t images_total, double lr, double elapsed) const {
        const double d = n > 0 ? double(n) : 1.0;
        return {step, epoch, images_total, loss / d, mim / d, gg / d, lr, images / std::max(1e-9, elapsed - since), elapsed};
    }
};

/// "mim loss is", "gg loss is", "mim and gg losses are" (or "total loss is").
std::string non_finite_parts(const models::StepLosses& l) {
    const bool mim = !std::isfinite(l.mim), gg = !std::isfinite(l.gg);
    return mim && gg ? "mim and gg losses are" : mim ? "mim loss is" : gg ? "gg loss is" : "total loss is";
}

// The run, on one process (dist::Single) or as one rank of several (dist::Mpi): each rank loads
// its shard of every epoch (--batch per rank), all ranks train in step, rank 0 alone prints,
// logs, writes and evaluates. Stopping (--minutes, --steps, Ctrl-C / SIGTERM) is decided for all
// ranks together, so none waits for a partner that has left.
template <class Crop, class Comm>
int train_loop(const Args& a, const backend::Cpu& ctx, models::ModelSpec spec, bool guided, std::uint64_t seed,
               const Comm& comm) {
    namespace fs = std::filesystem;
    const std::string prog = help_command(a);
    const bool lead = comm.rank() == 0;
    data::Normalization norm;
    std::shared_ptr<const data::Dataset> ds = load_split(a, true, norm);
    ds = apps::first_n(ds, std::size_t(a.limit));
    data::LoaderConfig lc;
    lc.batch = int(a.batch);
    lc.image_size = int(spec.encoder.image);
    lc.channels = int(spec.encoder.channels);
    lc.seed = a.seed;
    lc.threads = std::max(1, ctx.threads() / 2);
    lc.norm = norm;
    lc.views = guided ? data::Views::Pair : data::Views::Single;
    lc.rank = comm.rank();
    lc.world_size = comm.world();
    data::Loader<Crop> loader(ds, lc);  // the model's Crop policy makes its views
    const std::int64_t ipe = loader.batches_per_epoch();
    if (lead && comm.world() > 1)
        std::printf("%s: %d ranks (%s), --batch %ld per rank: global batch %ld\n", prog.c_str(), comm.world(), Comm::name,
                    a.batch, a.batch * comm.world());
    if (lead) std::printf("%s: %s, %s, %zu images, %lld batches of %ld per epoch (x%ld per step); ViT D %ld depth %ld heads %ld, %ld px / "
                "patch %ld; loss %s, crop %s, mask ratio %.2f, alpha %.2f; %d threads (OpenMP waits: %s), GEMM %s %s\n",
                prog.c_str(), a.method.c_str(), is_fashion_mnist(a) ? "Fashion-MNIST" : a.data.c_str(), ds->size(), (long long)ipe,
                a.batch, a.accum, spec.encoder.dim, spec.encoder.depth, spec.encoder.heads, spec.encoder.image, spec.encoder.patch,
                a.method == "mae" ? "none" : a.loss.c_str(), std::string(Crop::name).c_str(),
                a.method == "lc-simmim" ? spec.simmim_mask_ratio : spec.mask_ratio, spec.alpha, ctx.threads(),
                backend::cpu::omp_wait_description().c_str(), backend::precision_name(ctx.precision()),
                ctx.precision() == backend::Precision::Bf16 ? "(own AVX512-BF16 kernel)"
                                                            : backend::cpu::gemm_provider_name(ctx.gemm_provider()));
    models::LcmaeModel<float> model(spec, seed);  // what LCMAE<...>(RunConfig) builds
    train::TrainConfig tc;
    tc.batch = a.batch;
    tc.accumulation = int(a.accum);
    tc.epochs = a.epochs;
    tc.warmup_epochs = a.warmup;
    tc.blr = a.blr;
    tc.ema_base = a.ema;
    tc.seed = a.seed;
    tc.allow_config_change = a.allow_config_change;
    using TrainerT = train::Trainer<float, backend::Cpu, Comm>;
    TrainerT trainer(ctx, model, tc, ipe, comm);
    const std::int64_t total = a.steps > 0 ? std::min<std::int64_t>(a.steps, trainer.total_steps()) : trainer.total_steps();
    if (!a.resume.empty()) {
        trainer.load(a.resume);
        // A training state from another data set or schedule (or a corrupt one) would make the
        // skip-ahead below run for ages or index past the epoch: check the counters first.
        const std::string state = (fs::path(a.resume) / "train_state.safetensors").string();
        if (trainer.iteration() < 0 || trainer.iteration() >= ipe)
            LCMAE_FAIL(prog << ": " << state << ": iteration " << trainer.iteration() << " is outside 0.." << ipe - 1
                            << " (the batches per epoch of this data set at --batch " << a.batch << ")");
        if (trainer.epoch() < 0 || trainer.epoch() > a.epochs)
            LCMAE_FAIL(prog << ": " << state << ": epoch " << trainer.epoch() << " is outside 0.." << a.epochs << " (--epochs "
                            << a.epochs << ")");
        if (lead) std::printf("resumed from %s at step %lld (epoch %lld, iteration %lld)\n", a.resume.c_str(), (long long)trainer.step(),
                    (long long)trainer.epoch(), (long long)trainer.iteration());
    }
    const fs::path out(a.out);
    std::optional<apps::MetricsLog> metrics;  // rank 0's
    if (lead) metrics.emplace(out / "metrics.jsonl", a.resume.empty() ? -1 : trainer.step());
    const std::map<std::string, std::string> meta{{"dataset", a.data},
                                                  {"method", a.method},
                                                  {"loss", a.method == "mae" ? "none" : a.loss},
                                                  {"crop", std::string(Crop::name)}};
    std::int64_t saved_step = a.resume.empty() ? -1 : trainer.step();
    const auto save = [&] {
        trainer.save(out, meta);
        saved_step = trainer.step();
    };
    apps::Progress progress;
    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t step0 = trainer.step();
    Window shown, logged;
    // Ctrl-C / SIGTERM: with several ranks, the request every rank agreed on after a micro-batch
    // (a signal reaches the ranks at different moments)
    bool agreed_stop = false;
    const auto stop_requested = [&] { return comm.world() > 1 ? agreed_stop : g_stop.load(); };
    const auto images_total = [&] { return trainer.step() * a.batch * comm.world() * a.accum; };
    // every rank stops at the same micro-batch: rank 0's clock and any rank's stop request decide
    const auto agree_stop = [&](bool mine) {
        if (comm.world() == 1) return mine;
        double v[1] = {mine ? 1.0 : 0.0};
        comm.allreduce_sum_host(v, 1, "the stop decision");
        return v[0] > 0;
    };
    const auto eta = [&](double elapsed) {
        const double done = double(trainer.step() - step0);
        return done > 0 ? elapsed / done * double(total - trainer.step()) : -1.0;
    };
    bool stop = trainer.step() >= total;  // --steps already reached (a resumed run)
    std::string why_stopped;
    while (!stop && trainer.epoch() < a.epochs) {
        loader.start_epoch(std::uint64_t(trainer.epoch()));
        // skip the micro-batches a resumed run already did in this epoch (bounded by the check
        // after load, and stoppable)
        for (std::int64_t i = 0; i < trainer.iteration() && !stop_requested(); ++i)
            if (!loader.next()) break;
        while (!stop && !stop_requested()) {
            const data::Batch* b = loader.next();
            if (!b) break;
            typename TrainerT::Report r;
            try {
                r = trainer.micro_batch(ctx, b->view1, b->view2 ? b->view2 : b->view1, b->size);
            } catch (const train::NonFiniteLoss& e) {  // every rank sees the same (all-reduced) loss
                if (!lead) return 1;
                progress.finish_line();
                std::fprintf(stderr,
                             "%s: stopped at step %lld (micro-batch %lld): the %s not finite (mim %g, gg %g); "
                             "nothing was saved after it%s\n",
                             prog.c_str(), (long long)e.step, (long long)e.micro, non_finite_parts(e.losses).c_str(), e.losses.mim,
                             e.losses.gg,
                             saved_step >= 0 ? (", the last good checkpoint in " + a.out + " is step " + std::to_string(saved_step)).c_str()
                                             : " (no checkpoint was written yet)");
                return 1;
            }
            shown.add(r.losses, b->size * comm.world());  // the global batch's images
            logged.add(r.losses, b->size * comm.world());
            const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (r.stepped && trainer.step() % a.log_every == 0) {
                if (lead) metrics->append(logged.record(trainer.step(), trainer.epoch(), images_total(), r.lr, elapsed));
                logged = Window{.since = elapsed};
            }
            if (lead && (progress.due(elapsed) || (r.stepped && trainer.step() == total))) {
                progress.update(shown.record(trainer.step(), trainer.epoch(), images_total(), r.lr, elapsed), total, a.epochs, eta(elapsed));
                shown = Window{.since = elapsed};
            }
            if (r.stepped && a.save_every > 0 && trainer.step() % a.save_every == 0) save();
            if (r.stepped && trainer.step() >= total) stop = true, why_stopped = a.steps > 0 ? "--steps reached" : "";
            if (agree_stop(a.minutes > 0 && elapsed >= a.minutes * 60 && lead) && !stop) stop = true, why_stopped = "--minutes reached";
            if (comm.world() > 1) agreed_stop = agree_stop(g_stop.load());
        }
        if (stop_requested()) break;
        // the epoch is over when all its micro-batches are done (a stop inside it keeps the position)
        if (!stop || trainer.iteration() >= ipe) trainer.end_epoch();
    }
    if (lead) progress.finish_line();
    if (!lead) {  // the final save is collective; printing, export and k-NN are rank 0's
        if (saved_step != trainer.step() || trainer.micro_step() != 0) save();
        return 0;
    }
    if (stop_requested()) std::printf("stop requested: saving and exiting\n");
    else if (!why_stopped.empty()) std::printf("%s: saving\n", why_stopped.c_str());
    if (saved_step != trainer.step() || trainer.micro_step() != 0) save();
    if (ds->skipped() > 0) std::printf("skipped %zu corrupt image(s) (--skip-corrupt)\n", ds->skipped());
    std::printf("saved %s/checkpoint.safetensors and %s/train_state.safetensors at step %lld\n", a.out.c_str(), a.out.c_str(),
                (long long)trainer.step());
    std::fflush(stdout);
    if (!a.export_encoder.empty()) {
        // the checkpoint just saved, through the code of `lcmae export` (lcmae/apps/timm_transfer.hpp)
        apps::export_checkpoint_encoder(out / "checkpoint.safetensors", a.export_encoder, spec.encoder);
        std::printf("exported the encoder (timm VisionTransformer names) to %s\n", a.export_encoder.c_str());
    }
    if (stop_requested()) return 0;
    if (!a.no_eval) run_knn(a, ctx, spec.encoder, out / "checkpoint.safetensors");
    return 0;
}

template <class Crop>
int train_run(const Args& a, const backend::Cpu& ctx, models::ModelSpec spec, bool guided, std::uint64_t seed) {
#ifdef LCMAE_HAVE_MPI
    if (g_comm) return train_loop<Crop>(a, ctx, spec, guided, seed, *g_comm);
#endif
    return train_loop<Crop>(a, ctx, spec, guided, seed, dist::Single{});
}

/// One leaf of the table: the model type gives the structure (spec), the guided flag and the crop.
template <class Model>
int run_model(const Args& a, const backend::Cpu& ctx) {
    RunConfig rc{.mask_ratio = a.mask_ratio, .target_mask_ratio = a.target_mask_ratio, .alpha = a.alpha, .max_batch = a.batch,
                 .seed = a.seed};
    if constexpr (Model::simmim) rc.simmim_mask_ratio = a.mask_ratio;
    const models::ModelSpec spec = apps::run_spec<Model>(rc);  // SimMIM's block fits the data's grid
    return train_run<typename Model::crop>(a, ctx, spec, Model::guided_enabled, rc.seed);
}

// The one table of instantiations: the run-time flags pick the model type, from
//   geometry (Fashion-MNIST 28 px gray | 32 px RGB) x preset (tiny | small)
//   x method/loss (lcmae: cosine, infonce, smoothl1 | mae | lc-simmim: cosine, infonce, smoothl1)
//   x crop (src | rrc)                                                           = 56 leaves.
// A leaf only names the type (its static_asserts check the structure) and passes its spec, guided
// flag and Crop on: everything heavy is instantiated once per crop (train_run<Crop>, the loader),
// because the engine and trainer are shared untemplated code (models::LcmaeModel<float>), which is
// what keeps the compile time of this file close to the old main job's.
template <class Backbone, class Loss, class Recipe>
int with_crop(const Args& a, const backend::Cpu& ctx) {
    if (a.crop == "rrc") return run_model<apps::MainJobModel<Backbone, Loss, crop::RandomResized, Recipe>>(a, ctx);
    return run_model<apps::MainJobModel<Backbone, Loss, crop::SimpleResized, Recipe>>(a, ctx);
}
template <class Backbone, class Recipe>
int with_loss(const Args& a, const backend::Cpu& ctx) {
    if (a.loss == "infonce") return with_crop<Backbone, loss::InfoNCE, Recipe>(a, ctx);
    if (a.loss == "smoothl1") return with_crop<Backbone, loss::SmoothL1, Recipe>(a, ctx);
    return with_crop<Backbone, loss::Cosine, Recipe>(a, ctx);
}
template <class Backbone>
int with_method(const Args& a, const backend::Cpu& ctx) {
    if (a.method == "mae") return with_crop<Backbone, loss::None, apps::MainJobRecipe>(a, ctx);
    if (a.method == "lc-simmim") return with_loss<Backbone, apps::MainJobSimMimRecipe>(a, ctx);
    return with_loss<Backbone, apps::MainJobRecipe>(a, ctx);
}
template <int Image, int Channels>
int with_preset(const Args& a, const backend::Cpu& ctx) {
    if (a.model == "small") return with_method<apps::SmallBackbone<Image, Channels>>(a, ctx);
    return with_method<apps::TinyBackbone<Image, Channels>>(a, ctx);
}
int dispatch(const Args& a, const backend::Cpu& ctx) {
    if (is_fashion_mnist(a)) return with_preset<28, 1>(a, ctx);
    return with_preset<32, 3>(a, ctx);
}

}  // namespace

namespace lcmae::tools {
int cmd_pretrain(int argc, char** argv) {
    const Args a = parse(argc, argv);
#ifdef LCMAE_HAVE_MPI
    // Under mpirun every rank runs this; a plain start never initialises MPI (dist::Single).
    std::unique_ptr<dist::MpiSession> session;
    std::unique_ptr<dist::Mpi> comm;
    if (dist::launched_by_mpirun()) {
        session = std::make_unique<dist::MpiSession>();
        comm = std::make_unique<dist::Mpi>();
        if (comm->world() > 1) g_comm = comm.get();
    }
    if (g_comm) {
        // --threads 0 under mpirun: the host's cores shared among the ranks on it
        const int threads = a.threads > 0 ? int(a.threads) : std::max(1, backend::Cpu().threads() / comm->local_size());
        try {
            std::signal(SIGINT, request_stop);
            std::signal(SIGTERM, request_stop);
            std::string setup_error;
            if (comm->rank() == 0) try {
                    check_output_dir(a.out);
                    write_atomic(std::filesystem::path(a.out) / "config.json", config_json(a));
                } catch (const std::exception& e) {
                    setup_error = e.what();
                }
            std::uint64_t len = setup_error.size();
            comm->broadcast_host(&len, sizeof len, 0, "the output directory check");
            if (len) {
                if (comm->rank() == 0) std::fprintf(stderr, "error: %s\n", setup_error.c_str());
                return 1;
            }
            return dispatch(a, backend::Cpu(threads, precision_of(a)));
        } catch (const dist::CollectiveError& e) {  // every rank has it (rank 0's save or load): rank 0 says it
            if (comm->rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
            return 1;
        } catch (const std::exception& e) {  // this rank alone: end every rank, naming this one
            comm->abort(e.what());
        }
    }
#endif
    // from here on Ctrl-C / SIGTERM stop cleanly (a stop while the data loads saves step 0)
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
    check_output_dir(a.out);  // an unusable --out fails now, not after training
    write_atomic(std::filesystem::path(a.out) / "config.json", config_json(a));
    backend::Cpu ctx = a.threads > 0 ? backend::Cpu(a.threads) : backend::Cpu();
    ctx.set_precision(precision_of(a));  // bf16 on a CPU without AVX512-BF16: an error saying so
    return dispatch(a, ctx);
}
}  // namespace lcmae::tools
