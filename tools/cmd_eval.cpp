// tools/cmd_eval.cpp - `lcmae eval`: evaluation of pre-trained encoders (SPEC 4).
//
//   lcmae eval knn    --ckpt FILE|random [--feature mean|cls|both] [--k 20] [--limit-train N] ...
//   lcmae eval knn    --pixels                     (k-NN on raw normalised pixels: the floor)
//   lcmae eval linear --ckpt FILE|random [--epochs 90] [--batch 256] [--blr 0.1] ...
//   lcmae --help | lcmae eval --help               (every option with its default)
//
// A checkpoint is the main job's checkpoint.safetensors (examples/lcmae_pretrain.cpp): its online
// encoder (or, with --encoder target, its EMA target) is read by timm name into the main job's
// Fashion-MNIST geometry (lcmae/apps/main_job_models.hpp). Each run prints top-1 (top-5) and writes
// a JSON result next to the checkpoint (eval-knn.json / eval-linear.json) or to --out.
// Exit codes: 0 done; 1 a run-time failure (missing or mismatched checkpoint, missing dataset,
// unwritable output); 2 a usage error (unknown subcommand or option, bad or missing value).
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/eval/knn.hpp"
#include "lcmae/eval/linear_probe.hpp"
#include "lcmae/io/atomic_file.hpp"
#include "lcmae/io/json.hpp"
#include "cli/options.hpp"
#include "commands.hpp"

using namespace lcmae;

namespace {

// ---- options: one table drives parsing and --help ------------------------------------------

using cli::Kind;
using cli::Option;

const std::vector<Option>& options() {
    static const std::vector<Option> table{
        {"--ckpt", "FILE|random", "(required unless --pixels)",
         "the main job's checkpoint.safetensors, or 'random' for a randomly initialised encoder (the baseline)", Kind::Text, "all"},
        {"--pixels", "", "off", "evaluate raw normalised pixels instead of an encoder (the floor of the table)", Kind::Flag, "all"},
        {"--encoder", "online|target", "online", "which encoder of the checkpoint: the online one or the EMA target ('target.' names)", Kind::Text, "all"},
        {"--data", "NAME", "fashion-mnist", "the labelled dataset; only fashion-mnist so far (train split to fit, test split to score)", Kind::Text, "all"},
        {"--data-dir", "DIR", data::kFashionMnistDir, "where the Fashion-MNIST IDX files are", Kind::Text, "all"},
        {"--feature", "mean|cls|both", "both (knn), cls (linear)", "mean of the patch tokens or the CLS token, both after the final norm", Kind::Text, "all"},
        {"--limit-train", "N", "0 (all 60000)", "use the first N training images", Kind::Int, "all"},
        {"--limit-test", "N", "0 (all 10000)", "use the first N test images", Kind::Int, "all"},
        {"--feature-batch", "N", "256", "images per encoder forward", Kind::Int, "all"},
        {"--threads", "T", "0 (all cores)", "CPU threads", Kind::Int, "all"},
        {"--seed", "S", "0", "seed of the random encoder (--ckpt random) and of the probe's initialisation and shuffling", Kind::Int, "all"},
        {"--out", "FILE", "<checkpoint dir>/eval-<protocol>.json; runs/eval/<protocol>-<random|pixels>.json", "where the JSON result goes", Kind::Text, "all"},
        {"--k", "N", "20", "neighbours that vote", Kind::Int, "knn"},
        {"--temperature", "T", "0.07", "votes are weighted exp(cosine / T)", Kind::Number, "knn"},
        {"--epochs", "E", "90", "probe epochs (MAE: 90; scale down for a quick look)", Kind::Int, "linear"},
        {"--warmup", "E", "10 (epochs / 9 below 90 epochs)", "linear warm-up epochs, then half-cosine decay to 0", Kind::Number, "linear"},
        {"--batch", "B", "256", "probe batch; lr = blr * B / 256", Kind::Int, "linear"},
        {"--blr", "LR", "0.1", "base learning rate of LARS (SPEC 4)", Kind::Number, "linear"},
        {"--label-smoothing", "E", "0", "label smoothing of the probe's cross-entropy", Kind::Number, "linear"},
        {"--help", "", "", "this text", Kind::Flag, "all"},
    };
    return table;
}

void print_options(std::ostream& os, const std::string& scope) { cli::print_options(os, options(), scope); }

void print_help(std::ostream& os, const std::string& scope) {
    if (scope == "eval") {
        os << "usage: lcmae eval knn|linear --ckpt FILE|random [options]   (or --pixels instead of --ckpt)\n\n"
              "options:\n";
        print_options(os, "all");
        return;
    }
    os << "usage: lcmae eval " << scope << " --ckpt FILE|random [options]   (or --pixels instead of --ckpt)\n\noptions:\n";
    print_options(os, scope);
}

[[noreturn]] void usage_error(const std::string& why, const std::string& scope = "top") {
    cli::usage_error(why, scope == "top" ? "lcmae eval" : "lcmae eval " + scope);
}

struct Args {
    std::string protocol;  // knn | linear
    std::string ckpt, encoder = "online", data = "fashion-mnist", data_dir = data::kFashionMnistDir, feature, out;
    bool pixels = false;
    long limit_train = 0, limit_test = 0, feature_batch = 256, k = 20, epochs = 90, batch = 256;
    int threads = 0;
    std::uint64_t seed = 0;
    double temperature = 0.07, warmup = 10, blr = 0.1, label_smoothing = 0;
    bool warmup_given = false;
};

long parse_int(const std::string& name, const std::string& v, const std::string& scope, long lo) {
    return static_cast<long>(cli::parse_int(name, v, lo, std::numeric_limits<long>::max(), "lcmae eval " + scope));
}
double parse_number(const std::string& name, const std::string& v, const std::string& scope) {
    return cli::parse_number(name, v, "lcmae eval " + scope);
}

Args parse(int argc, char** argv) {
    Args a;
    if (argc < 2) usage_error("'lcmae eval' needs a protocol: knn or linear");
    const std::string proto = argv[1];
    if (proto == "--help" || proto == "-h") {
        print_help(std::cout, "eval");
        std::exit(0);
    }
    if (proto != "knn" && proto != "linear") usage_error("unknown protocol '" + proto + "' (expected knn or linear)");
    a.protocol = proto;
    for (int i = 2; i < argc; ++i) {
        const auto [opt, v] = cli::next_option(options(), argc, argv, i, "lcmae eval", proto);
        const std::string n = opt->name;
        if (n == "--help") {
            print_help(std::cout, proto);
            std::exit(0);
        } else if (n == "--ckpt") a.ckpt = v;
        else if (n == "--pixels") a.pixels = true;
        else if (n == "--encoder") a.encoder = v;
        else if (n == "--data") a.data = v;
        else if (n == "--data-dir") a.data_dir = v;
        else if (n == "--feature") a.feature = v;
        else if (n == "--out") a.out = v;
        else if (n == "--limit-train") a.limit_train = parse_int(n, v, proto, 0);
        else if (n == "--limit-test") a.limit_test = parse_int(n, v, proto, 0);
        else if (n == "--feature-batch") a.feature_batch = parse_int(n, v, proto, 1);
        else if (n == "--threads") a.threads = static_cast<int>(parse_int(n, v, proto, 0));
        else if (n == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(n, v, proto, 0));
        else if (n == "--k") a.k = parse_int(n, v, proto, 1);
        else if (n == "--temperature") a.temperature = parse_number(n, v, proto);
        else if (n == "--epochs") a.epochs = parse_int(n, v, proto, 1);
        else if (n == "--warmup") { a.warmup = parse_number(n, v, proto); a.warmup_given = true; }
        else if (n == "--batch") a.batch = parse_int(n, v, proto, 2);
        else if (n == "--blr") a.blr = parse_number(n, v, proto);
        else if (n == "--label-smoothing") a.label_smoothing = parse_number(n, v, proto);
    }
    if (a.feature.empty()) a.feature = proto == "knn" ? "both" : "cls";
    if (a.feature != "mean" && a.feature != "cls" && a.feature != "both")
        usage_error("--feature expects mean, cls or both, got '" + a.feature + "'", proto);
    if (a.encoder != "online" && a.encoder != "target")
        usage_error("--encoder expects online or target, got '" + a.encoder + "'", proto);
    if (a.data != "fashion-mnist")
        usage_error("--data expects fashion-mnist (the only labelled dataset eval reads so far), got '" + a.data + "'", proto);
    if (a.pixels && !a.ckpt.empty()) usage_error("--pixels evaluates raw pixels: give it without --ckpt", proto);
    if (!a.pixels && a.ckpt.empty()) usage_error("--ckpt FILE|random is required (or --pixels)", proto);
    if (!(a.temperature > 0)) usage_error("--temperature expects a positive number, got " + std::to_string(a.temperature), proto);
    if (!(a.blr > 0)) usage_error("--blr expects a positive number, got " + std::to_string(a.blr), proto);
    if (!(a.label_smoothing >= 0 && a.label_smoothing < 1))
        usage_error("--label-smoothing expects a number in [0, 1), got " + std::to_string(a.label_smoothing), proto);
    if (!a.warmup_given) a.warmup = std::min(10.0, double(a.epochs) / 9.0);  // MAE: 10 of 90 epochs
    if (!(a.warmup >= 0 && a.warmup <= double(a.epochs)))
        usage_error("--warmup expects a number in [0, --epochs = " + std::to_string(a.epochs) + "], got " + std::to_string(a.warmup), proto);
    return a;
}

// ---- running ----------------------------------------------------------------------------------

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Prints "features train 12800/60000 (850 images/s)" at most every 10 s and at the end.
eval::Progress progress_printer(const std::string& what) {
    auto t0 = std::make_shared<Clock::time_point>(Clock::now());
    auto last = std::make_shared<Clock::time_point>(Clock::now());
    return [=](std::size_t done, std::size_t total) {
        const auto now = Clock::now();
        if (done < total && std::chrono::duration<double>(now - *last).count() < 10.0) return;
        *last = now;
        const double s = std::chrono::duration<double>(now - *t0).count();
        std::printf("  features %s %zu/%zu (%.0f images/s, %.1f s)\n", what.c_str(), done, total, s > 0 ? done / s : 0.0, s);
        std::fflush(stdout);
    };
}

std::string json_number(double x) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", x);
    return buf;
}
std::string json_string(const std::string& s) {
    std::string out;
    json::detail::write_string(out, s);
    return out;
}

struct Row {
    std::string feature;
    double top1, top5;
    bool has_top5;
};

int run(const Args& a) {
    const backend::Cpu ctx = a.threads > 0 ? backend::Cpu(a.threads) : backend::Cpu();
    const int threads = ctx.threads();
    const vit::VitDims dims = apps::FashionMnistBackbone::dims();
    const eval::ImagePrep prep{.image = int(dims.image), .channels = int(dims.channels), .norm = data::Normalization::fashion_mnist()};
    if (!a.pixels && a.ckpt != "random" && !std::filesystem::is_regular_file(a.ckpt))
        LCMAE_FAIL("checkpoint file '" << a.ckpt << "' does not exist"
                                       << (std::filesystem::is_directory(a.ckpt) ? " (that is a folder: name its checkpoint.safetensors)" : ""));
    const auto t0 = Clock::now();
    const auto train_ds = data::load_fashion_mnist(true, a.data_dir);
    const auto test_ds = data::load_fashion_mnist(false, a.data_dir);
    const std::size_t ntr = a.limit_train > 0 ? std::min<std::size_t>(std::size_t(a.limit_train), train_ds->size()) : train_ds->size();
    const std::size_t nte = a.limit_test > 0 ? std::min<std::size_t>(std::size_t(a.limit_test), test_ds->size()) : test_ds->size();
    if (a.protocol == "knn" && std::size_t(a.k) > ntr)
        usage_error("--k " + std::to_string(a.k) + " is larger than the " + std::to_string(ntr) + " training images", a.protocol);
    const std::string source = a.pixels ? "pixels" : a.ckpt == "random" ? "random" : a.encoder;
    std::string described = a.pixels ? "raw pixels (normalised, 784 values)"
                          : a.ckpt == "random" ? "a random encoder (seed " + std::to_string(a.seed) + ")"
                                               : a.ckpt + " (" + a.encoder + " encoder)";
    std::printf("lcmae eval %s: fashion-mnist, %zu train / %zu test images; %s; ViT D %ld depth %ld heads %ld, %ld px / patch %ld; %d threads\n",
                a.protocol.c_str(), ntr, nte, described.c_str(), dims.dim, dims.depth, dims.heads, dims.image, dims.patch, threads);
    std::fflush(stdout);

    // features: one set per kind (pixels: one set)
    std::vector<std::pair<std::string, std::pair<eval::FeatureSet, eval::FeatureSet>>> sets;
    if (a.pixels) {
        sets.push_back({"pixels", {eval::pixel_features(*train_ds, prep, ntr, threads), eval::pixel_features(*test_ds, prep, nte, threads)}});
    } else {
        eval::FrozenEncoder<float> enc(ctx, dims, a.feature_batch);
        if (a.ckpt == "random") {
            enc.init_random(ctx, a.seed);
        } else {
            enc.load(ctx, a.ckpt, a.encoder == "target" ? "target." : "");
        }
        auto ftr = enc.extract(ctx, *train_ds, prep, ntr, progress_printer("train"), threads);
        auto fte = enc.extract(ctx, *test_ds, prep, nte, progress_printer("test"), threads);
        if (a.feature != "cls") sets.push_back({"mean", {std::move(ftr.mean), std::move(fte.mean)}});
        if (a.feature != "mean") sets.push_back({"cls", {std::move(ftr.cls), std::move(fte.cls)}});
    }
    const double feature_seconds = seconds_since(t0);
    const auto t1 = Clock::now();

    std::vector<Row> rows;
    double lr = 0;
    long steps = 0;
    for (const auto& [name, tt] : sets) {
        if (a.protocol == "knn") {
            eval::KnnConfig kc;
            kc.k = int(a.k);
            kc.temperature = a.temperature;
            kc.threads = threads;
            const auto r = eval::knn_classify(tt.first, tt.second, kc);
            rows.push_back({name, r.top1, r.top5, r.has_top5});
        } else {
            eval::LinearProbeConfig pc;
            pc.epochs = a.epochs;
            pc.warmup_epochs = a.warmup;
            pc.batch = a.batch;
            pc.blr = a.blr;
            pc.label_smoothing = a.label_smoothing;
            pc.seed = a.seed;
            const long report_every = std::max(1L, a.epochs / 10);
            // The probe's ops are tiny (batch x D x classes): one thread, no parallel regions to
            // wake per op (on 2 busy cores that was 9x faster than 2 threads).
            const backend::Cpu probe_ctx(1);
            const auto r = eval::linear_probe(probe_ctx, tt.first, tt.second, pc, [&](long epoch, double loss, double elr) {
                if ((epoch + 1) % report_every == 0 || epoch + 1 == a.epochs) {
                    std::printf("  probe %s epoch %ld/%ld  loss %.4f  lr %.3g\n", name.c_str(), epoch + 1, a.epochs, loss, elr);
                    std::fflush(stdout);
                }
            });
            lr = r.lr;
            steps = r.steps;
            if (steps < 2000 && a.blr <= 0.1)
                std::printf("  note: %ld LARS steps at lr %.3g move the head by about lr x 0.001 of its norm per step; "
                            "SPEC 4's blr 0.1 is sized for thousands of steps, so short runs need a larger --blr\n",
                            steps, lr);
            rows.push_back({name, r.top1, r.top5, r.has_top5});
        }
    }
    const double eval_seconds = seconds_since(t1);
    for (const auto& r : rows) {
        if (a.protocol == "knn")
            std::printf("k-NN (k %ld, T %g) %-6s top-1 %.2f%%", a.k, a.temperature, r.feature.c_str(), r.top1);
        else
            std::printf("linear probe (%ld epochs, batch %ld, lr %.3g) %-6s top-1 %.2f%%", a.epochs, a.batch, lr, r.feature.c_str(), r.top1);
        if (r.has_top5) std::printf("  top-5 %.2f%%", r.top5);
        std::printf("\n");
    }
    std::printf("features %.1f s, %s %.1f s\n", feature_seconds, a.protocol == "knn" ? "k-NN" : "probe", eval_seconds);

    // JSON result
    std::filesystem::path out = a.out;
    if (out.empty()) {
        if (a.pixels || a.ckpt == "random")
            out = std::filesystem::path("runs/eval") / (a.protocol + "-" + source + ".json");
        else
            out = std::filesystem::path(a.ckpt).parent_path() / ("eval-" + a.protocol + (a.encoder == "target" ? "-target" : "") + ".json");
    }
    std::ostringstream js;
    js << "{\n  \"protocol\": " << json_string(a.protocol) << ",\n  \"source\": " << json_string(source)
       << ",\n  \"checkpoint\": " << json_string(a.pixels ? "" : a.ckpt) << ",\n  \"data\": " << json_string(a.data)
       << ",\n  \"n_train\": " << ntr << ",\n  \"n_test\": " << nte << ",\n  \"seed\": " << a.seed << ",\n  \"threads\": " << threads;
    if (a.protocol == "knn") {
        js << ",\n  \"k\": " << a.k << ",\n  \"temperature\": " << json_number(a.temperature);
    } else {
        js << ",\n  \"epochs\": " << a.epochs << ",\n  \"warmup_epochs\": " << json_number(a.warmup) << ",\n  \"batch\": " << a.batch
           << ",\n  \"blr\": " << json_number(a.blr) << ",\n  \"lr\": " << json_number(lr) << ",\n  \"steps\": " << steps
           << ",\n  \"label_smoothing\": " << json_number(a.label_smoothing);
    }
    js << ",\n  \"results\": {";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        js << (i ? ",\n" : "\n") << "    " << json_string(rows[i].feature) << ": {\"top1\": " << json_number(rows[i].top1);
        if (rows[i].has_top5) js << ", \"top5\": " << json_number(rows[i].top5);
        js << "}";
    }
    js << "\n  },\n  \"seconds\": {\"features\": " << json_number(feature_seconds) << ", \"eval\": " << json_number(eval_seconds)
       << "}\n}\n";
    if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
    io::AtomicFileWriter w(out);
    w.write(js.str());
    w.commit();
    std::printf("wrote %s\n", out.string().c_str());
    return 0;
}

}  // namespace

namespace lcmae::tools {
int cmd_eval(int argc, char** argv) { return run(parse(argc, argv)); }
}  // namespace lcmae::tools
