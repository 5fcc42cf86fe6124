// tools/cmd_eval.cpp - `lcmae eval`: evaluation of pre-trained encoders (SPEC 4).
//
//   lcmae eval knn    --ckpt FILE|random [--feature mean|cls|both] [--k 20] [--limit-train N] ...
//   lcmae eval knn    --pixels                     (k-NN on raw normalised pixels: the floor)
//   lcmae eval linear --ckpt FILE|random [--epochs 90] [--batch 256] [--blr 0.1] ...
//   lcmae eval finetune --ckpt FILE|random [--epochs 10] [--batch 64] [--blr 1e-3] [--layer-decay 0.75]
//                     [--drop-path 0.1] [--mixup 0.8] [--cutmix 1.0] [--randaug 2,9|off] [--reprob 0.25] ...
//   lcmae --help | lcmae eval --help               (every option with its default)
//
// A checkpoint is the main job's checkpoint.safetensors (`lcmae pretrain`, or `lcmae import`): its
// online encoder (or, with --encoder target, its EMA target) is read by timm name into an encoder of
// the geometry the file records (lcmae/apps/checkpoint_dims.hpp). --data is Fashion-MNIST, CIFAR-10
// or a folder with train/ and test/ splits (lcmae/data/source.hpp); images are resized and
// converted to the encoder's input. Each run prints top-1 (top-5) and writes
// a JSON result next to the checkpoint (eval-knn.json / eval-linear.json / eval-finetune.json) or
// to --out.
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
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lcmae/apps/checkpoint_dims.hpp"
#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/data/source.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/eval/features.hpp"
#include "lcmae/eval/finetune.hpp"
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
        {"--pixels", "", "off", "evaluate raw normalised pixels instead of an encoder (the floor of the table)", Kind::Flag, "knn,linear"},
        {"--encoder", "online|target", "online", "which encoder of the checkpoint: the online one or the EMA target ('target.' names)", Kind::Text, "all"},
        {"--data", "fashion-mnist|cifar10:DIR|DIR", "fashion-mnist",
         "the labelled dataset: its train split fits, its test split scores (a folder: DIR/train/<class>/<image> and DIR/test/<class>/<image>)", Kind::Text, "all"},
        {"--model", "tiny|small", "tiny", "--ckpt random: the preset to build at the data's geometry (a checkpoint brings its own)", Kind::Text, "all"},
        {"--data-dir", "DIR", data::kFashionMnistDir, "where the Fashion-MNIST IDX files are", Kind::Text, "all"},
        {"--feature", "mean|cls|both", "both (knn), cls (linear)", "mean of the patch tokens or the CLS token, both after the final norm", Kind::Text, "knn,linear"},
        {"--limit-train", "N", "0 (all)", "use the first N training images", Kind::Int, "all"},
        {"--limit-test", "N", "0 (all)", "use the first N test images", Kind::Int, "all"},
        {"--feature-batch", "N", "256", "images per encoder forward", Kind::Int, "knn,linear"},
        {"--threads", "T", "0 (all cores)", "CPU threads", Kind::Int, "all"},
        {"--seed", "S", "0", "seed of the random encoder (--ckpt random), of the head's initialisation, the shuffling and (finetune) the augmentation draws", Kind::Int, "all"},
        {"--out", "FILE", "<checkpoint dir>/eval-<protocol>.json; runs/eval/<protocol>-<random|pixels>.json", "where the JSON result goes", Kind::Text, "all"},
        {"--k", "N", "20", "neighbours that vote", Kind::Int, "knn"},
        {"--temperature", "T", "0.07", "votes are weighted exp(cosine / T)", Kind::Number, "knn"},
        {"--epochs", "E", "90 (linear), 10 (finetune)", "training epochs (MAE: 90 linear, 100 fine-tuning; scale down for a quick look)", Kind::Int, "linear,finetune"},
        {"--warmup", "E", "linear: 10 (epochs / 9 below 90); finetune: 5 (epochs / 10 below 50)", "linear warm-up epochs, then half-cosine decay", Kind::Number, "linear,finetune"},
        {"--batch", "B", "256 (linear), 64 (finetune)", "training batch; lr = blr * B / 256", Kind::Int, "linear,finetune"},
        {"--blr", "LR", "0.1 (linear, LARS), 1e-3 (finetune, AdamW)", "base learning rate (SPEC 4)", Kind::Number, "linear,finetune"},
        {"--label-smoothing", "E", "0 (linear), 0.1 (finetune)", "label smoothing of the cross-entropy (finetune: folded into the mixup targets)", Kind::Number, "linear,finetune"},
        {"--layer-decay", "F", "0.75", "layer-wise lr decay: block k trains at F^(depth - k), the patch embedding at F^(depth + 1)", Kind::Number, "finetune"},
        {"--weight-decay", "W", "0.05", "AdamW weight decay (not on biases, norms, cls_token)", Kind::Number, "finetune"},
        {"--min-lr", "LR", "1e-6", "the cosine schedule's floor", Kind::Number, "finetune"},
        {"--drop-path", "R", "0.1", "stochastic depth: rate linspace(0, R, depth) per block", Kind::Number, "finetune"},
        {"--mixup", "A", "0.8", "mixup Beta(A, A) (0 = off)", Kind::Number, "finetune"},
        {"--cutmix", "A", "1.0", "CutMix Beta(A, A) (0 = off); with both on, half the batches use each", Kind::Number, "finetune"},
        {"--randaug", "N,M|off", "2,9", "RandAugment: N ops at magnitude M of 10 (gray-image subset, data/randaugment.hpp)", Kind::Text, "finetune"},
        {"--crop-scale", "S", "0.08", "RandomResizedCrop's smallest area fraction (MAE / timm: 0.08)", Kind::Number, "finetune"},
        {"--reprob", "P", "0.25", "random erasing probability (0 = off)", Kind::Number, "finetune"},
        {"--eval-every", "E", "0 (at the end only)", "also score the test split every E epochs", Kind::Int, "finetune"},
        {"--help", "", "", "this text", Kind::Flag, "all"},
    };
    return table;
}

void print_options(std::ostream& os, const std::string& scope) { cli::print_options(os, options(), scope); }

void print_help(std::ostream& os, const std::string& scope) {
    if (scope == "eval") {
        os << "usage: lcmae eval knn|linear|finetune --ckpt FILE|random [options]   (or --pixels instead of --ckpt: knn, linear)\n\n"
              "options:\n";
        print_options(os, "all");
        return;
    }
    os << "usage: lcmae eval " << scope << " --ckpt FILE|random [options]" << (scope == "finetune" ? "" : "   (or --pixels instead of --ckpt)")
       << "\n\noptions:\n";
    print_options(os, scope);
}

[[noreturn]] void usage_error(const std::string& why, const std::string& scope = "top") {
    cli::usage_error(why, scope == "top" ? "lcmae eval" : "lcmae eval " + scope);
}

struct Args {
    std::string protocol;  // knn | linear | finetune
    std::string ckpt, encoder = "online", data = "fashion-mnist", data_dir = data::kFashionMnistDir, feature, out, model = "tiny";
    std::string randaug = "2,9";
    bool pixels = false;
    long limit_train = 0, limit_test = 0, feature_batch = 256, k = 20, epochs = 0, batch = 0, eval_every = 0;
    int threads = 0;
    std::uint64_t seed = 0;
    double temperature = 0.07, warmup = 0, blr = 0, label_smoothing = 0;  // protocol defaults when not given
    std::set<std::string> given;  // the options on the command line
    double crop_scale = 0.08, layer_decay = 0.75, weight_decay = 0.05, min_lr = 1e-6, drop_path = 0.1, mixup = 0.8, cutmix = 1.0, reprob = 0.25;
    int randaug_n = 2;
    double randaug_m = 9;
};

long parse_int(const std::string& name, const std::string& v, const std::string& scope, long lo) {
    return static_cast<long>(cli::parse_int(name, v, lo, std::numeric_limits<long>::max(), "lcmae eval " + scope));
}
double parse_number(const std::string& name, const std::string& v, const std::string& scope) {
    return cli::parse_number(name, v, "lcmae eval " + scope);
}

Args parse(int argc, char** argv) {
    Args a;
    if (argc < 2) usage_error("'lcmae eval' needs a protocol: knn, linear or finetune");
    const std::string proto = argv[1];
    if (proto == "--help" || proto == "-h") {
        print_help(std::cout, "eval");
        std::exit(0);
    }
    if (proto != "knn" && proto != "linear" && proto != "finetune")
        usage_error("unknown protocol '" + proto + "' (expected knn, linear or finetune)");
    a.protocol = proto;
    for (int i = 2; i < argc; ++i) {
        const auto [opt, v] = cli::next_option(options(), argc, argv, i, "lcmae eval", proto);
        const std::string n = opt->name;
        a.given.insert(n);
        if (n == "--help") {
            print_help(std::cout, proto);
            std::exit(0);
        } else if (n == "--ckpt") a.ckpt = v;
        else if (n == "--pixels") a.pixels = true;
        else if (n == "--encoder") a.encoder = v;
        else if (n == "--data") a.data = v;
        else if (n == "--data-dir") a.data_dir = v;
        else if (n == "--model") a.model = v;
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
        else if (n == "--warmup") a.warmup = parse_number(n, v, proto);
        else if (n == "--batch") a.batch = parse_int(n, v, proto, 2);
        else if (n == "--blr") a.blr = parse_number(n, v, proto);
        else if (n == "--label-smoothing") a.label_smoothing = parse_number(n, v, proto);
        else if (n == "--layer-decay") a.layer_decay = parse_number(n, v, proto);
        else if (n == "--weight-decay") a.weight_decay = parse_number(n, v, proto);
        else if (n == "--min-lr") a.min_lr = parse_number(n, v, proto);
        else if (n == "--drop-path") a.drop_path = parse_number(n, v, proto);
        else if (n == "--mixup") a.mixup = parse_number(n, v, proto);
        else if (n == "--cutmix") a.cutmix = parse_number(n, v, proto);
        else if (n == "--randaug") a.randaug = v;
        else if (n == "--reprob") a.reprob = parse_number(n, v, proto);
        else if (n == "--crop-scale") a.crop_scale = parse_number(n, v, proto);
        else if (n == "--eval-every") a.eval_every = parse_int(n, v, proto, 0);
    }
    const bool ft = proto == "finetune";
    if (!a.given.count("--epochs")) a.epochs = ft ? 10 : 90;
    if (!a.given.count("--batch")) a.batch = ft ? 64 : 256;
    if (!a.given.count("--blr")) a.blr = ft ? 1e-3 : 0.1;
    if (!a.given.count("--label-smoothing")) a.label_smoothing = ft ? 0.1 : 0.0;
    if (ft) {
        if (a.randaug == "off") {
            a.randaug_n = 0;
        } else {
            const std::size_t comma = a.randaug.find(',');
            if (comma == std::string::npos) usage_error("--randaug expects N,M (e.g. 2,9) or off, got '" + a.randaug + "'", proto);
            a.randaug_n = static_cast<int>(cli::parse_int("--randaug N", a.randaug.substr(0, comma), 0, 16, "lcmae eval finetune"));
            a.randaug_m = cli::parse_number("--randaug M", a.randaug.substr(comma + 1), "lcmae eval finetune");
            if (!(a.randaug_m >= 0 && a.randaug_m <= 10))
                usage_error("--randaug expects a magnitude M in [0, 10], got '" + a.randaug + "'", proto);
        }
        if (!(a.layer_decay > 0 && a.layer_decay <= 1))
            usage_error("--layer-decay expects a number in (0, 1], got " + std::to_string(a.layer_decay), proto);
        if (!(a.drop_path >= 0 && a.drop_path < 1))
            usage_error("--drop-path expects a number in [0, 1), got " + std::to_string(a.drop_path), proto);
        if (!(a.mixup >= 0) || !(a.cutmix >= 0))
            usage_error("--mixup and --cutmix expect numbers >= 0 (0 = off)", proto);
        if (!(a.crop_scale > 0 && a.crop_scale <= 1))
            usage_error("--crop-scale expects a number in (0, 1], got " + std::to_string(a.crop_scale), proto);
        if (!(a.reprob >= 0 && a.reprob <= 1)) usage_error("--reprob expects a number in [0, 1], got " + std::to_string(a.reprob), proto);
        if (!(a.weight_decay >= 0) || !(a.min_lr >= 0)) usage_error("--weight-decay and --min-lr expect numbers >= 0", proto);
    }
    if (a.feature.empty()) a.feature = proto == "knn" ? "both" : "cls";
    if (a.feature != "mean" && a.feature != "cls" && a.feature != "both")
        usage_error("--feature expects mean, cls or both, got '" + a.feature + "'", proto);
    if (a.encoder != "online" && a.encoder != "target")
        usage_error("--encoder expects online or target, got '" + a.encoder + "'", proto);
    if (a.data.empty() || a.data == "cifar10:" ||
        (a.data != "fashion-mnist" && a.data.rfind("cifar10:", 0) != 0 && !std::filesystem::is_directory(a.data)))
        usage_error("--data expects fashion-mnist, cifar10:DIR or a folder with train/ and test/ class sub-folders, got '" + a.data +
                        "'" + (a.data.empty() || a.data == "cifar10:" ? "" : " (no such folder)"),
                    proto);
    if (a.model != "tiny" && a.model != "small") usage_error("--model expects tiny or small, got '" + a.model + "'", proto);
    if (a.given.count("--model") && a.ckpt != "random")
        usage_error("--model applies to --ckpt random only (a checkpoint's geometry is read from the file)", proto);
    if (a.pixels && !a.ckpt.empty()) usage_error("--pixels evaluates raw pixels: give it without --ckpt", proto);
    if (!a.pixels && a.ckpt.empty())
        usage_error(std::string("--ckpt FILE|random is required") + (proto == "finetune" ? "" : " (or --pixels)"), proto);
    if (!(a.temperature > 0)) usage_error("--temperature expects a positive number, got " + std::to_string(a.temperature), proto);
    if (!(a.blr > 0)) usage_error("--blr expects a positive number, got " + std::to_string(a.blr), proto);
    if (!(a.label_smoothing >= 0 && a.label_smoothing < 1))
        usage_error("--label-smoothing expects a number in [0, 1), got " + std::to_string(a.label_smoothing), proto);
    if (!a.given.count("--warmup"))  // MAE: 10 of 90 epochs (linear probe), 5 of 100 (fine-tuning)
        a.warmup = ft ? std::min(5.0, double(a.epochs) / 10.0) : std::min(10.0, double(a.epochs) / 9.0);
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
    std::string feature;  // the JSON key
    std::string label;    // how the result line starts
    double top1, top5;
    bool has_top5;
};

/// What the encoder sees: the data at the encoder's geometry, normalised with the data's statistics.
struct Input {
    vit::VitDims dims;
    eval::ImagePrep prep;
};

void run_frozen(const backend::Cpu& ctx, const Args& a, const Input& in, const data::Dataset& train_ds, const data::Dataset& test_ds,
                std::size_t ntr, std::size_t nte, std::vector<Row>& rows, std::ostringstream& fields, double& feature_seconds,
                double& eval_seconds);

/// Fine-tunes the encoder (eval/finetune.hpp) and scores it on the test split.
Row finetune(const backend::Cpu& ctx, const Args& a, const Input& in, const data::Dataset& train_ds, const data::Dataset& test_ds,
             std::size_t ntr, std::size_t nte, std::ostringstream& fields) {
    eval::FineTuneConfig fc;
    fc.epochs = a.epochs;
    fc.warmup_epochs = a.warmup;
    fc.batch = a.batch;
    fc.blr = a.blr;
    fc.min_lr = a.min_lr;
    fc.layer_decay = a.layer_decay;
    fc.weight_decay = a.weight_decay;
    fc.drop_path = a.drop_path;
    fc.mix = eval::MixupConfig{.mixup_alpha = a.mixup, .cutmix_alpha = a.cutmix, .label_smoothing = a.label_smoothing};
    fc.randaug_n = a.randaug_n;
    fc.randaug_m = a.randaug_m;
    fc.reprob = a.reprob;
    fc.crop_scale_lo = a.crop_scale;
    fc.seed = a.seed;
    fc.limit_train = ntr;
    fc.limit_test = nte;
    fc.eval_every = a.eval_every;
    fc.threads = ctx.threads();
    const long max_batch = std::min<long>(a.batch, static_cast<long>(ntr));
    eval::FineTuneModel<float> model(ctx, in.dims, train_ds.num_classes(), max_batch, a.drop_path > 0);
    model.init_random(ctx, a.seed, fc.head_init_std);  // the encoder part is then replaced by the checkpoint's
    if (a.ckpt != "random") {
        const auto rep = model.load_encoder(ctx, a.ckpt, a.encoder == "target" ? "target." : "");
        std::printf("  loaded %zu encoder tensors from %s\n", rep.loaded.size(), a.ckpt.c_str());
    }
    const long ipe = static_cast<long>(ntr) / max_batch;
    std::printf("  fine-tune: %ld epochs x %ld steps of batch %ld, lr %.3g (blr %g), warm-up %g epochs, layer decay %g, drop path %g, "
                "mixup %g, cutmix %g, smoothing %g, crop scale %g-1, randaug %s, reprob %g\n",
                a.epochs, ipe, max_batch, optim::scaled_lr(a.blr, max_batch), a.blr, a.warmup, a.layer_decay, a.drop_path, a.mixup,
                a.cutmix, a.label_smoothing, a.crop_scale, a.randaug_n > 0 ? a.randaug.c_str() : "off", a.reprob);
    std::fflush(stdout);
    const auto r = eval::fine_tune(ctx, model, train_ds, test_ds, in.prep, fc,
                                   [&](long epoch, double loss, double lr, double ips, double top1) {
                                       std::printf("  epoch %ld/%ld  loss %.4f  lr %.3g  %.0f images/s (%.1f s/epoch)", epoch + 1,
                                                   a.epochs, loss, lr, ips, ips > 0 ? double(ipe * max_batch) / ips : 0.0);
                                       if (top1 >= 0) std::printf("  test top-1 %.2f%%", top1);
                                       std::printf("\n");
                                       std::fflush(stdout);
                                   });
    fields << ",\n  \"epochs\": " << a.epochs << ",\n  \"warmup_epochs\": " << json_number(a.warmup) << ",\n  \"batch\": " << r.batch
           << ",\n  \"blr\": " << json_number(a.blr) << ",\n  \"lr\": " << json_number(r.lr) << ",\n  \"min_lr\": " << json_number(a.min_lr)
           << ",\n  \"steps\": " << r.steps << ",\n  \"layer_decay\": " << json_number(a.layer_decay)
           << ",\n  \"weight_decay\": " << json_number(a.weight_decay) << ",\n  \"drop_path\": " << json_number(a.drop_path)
           << ",\n  \"label_smoothing\": " << json_number(a.label_smoothing) << ",\n  \"mixup\": " << json_number(a.mixup)
           << ",\n  \"cutmix\": " << json_number(a.cutmix) << ",\n  \"randaug\": " << json_string(a.randaug_n > 0 ? a.randaug : "off")
           << ",\n  \"crop_scale\": " << json_number(a.crop_scale) << ",\n  \"reprob\": " << json_number(a.reprob) << ",\n  \"train_loss\": " << json_number(r.train_loss)
           << ",\n  \"images_per_second\": " << json_number(r.images_per_second);
    char label[128];
    std::snprintf(label, sizeof label, "fine-tune (%ld epochs, batch %ld, lr %.3g) final weights", a.epochs, r.batch, r.lr);
    return {"finetune", label, r.top1, r.top5, r.has_top5};
}

int run(const Args& a) {
    const backend::Cpu ctx = a.threads > 0 ? backend::Cpu(a.threads) : backend::Cpu();
    const int threads = ctx.threads();
    if (!a.pixels && a.ckpt != "random" && !std::filesystem::is_regular_file(a.ckpt))
        LCMAE_FAIL("checkpoint file '" << a.ckpt << "' does not exist"
                                       << (std::filesystem::is_directory(a.ckpt) ? " (that is a folder: name its checkpoint.safetensors)" : ""));
    const auto data_source = data::DataSource::parse(a.data, a.data_dir);
    // The encoder: the checkpoint's own geometry; a random one (or the pixels' size) is the preset
    // at the data's geometry.
    Input in;
    if (a.pixels || a.ckpt == "random") {
        in.dims = a.model == "small" ? apps::small_dims(data_source.image_size(), data_source.channels())
                                     : apps::tiny_dims(data_source.image_size(), data_source.channels());
    } else {
        const auto cd = apps::checkpoint_encoder_dims(a.ckpt, a.encoder == "target" ? "target." : "", data_source.image_size());
        in.dims = cd.dims;
        if (!cd.from_metadata)
            std::printf("note: %s records no lcmae_config; its encoder was measured from its tensors (heads = width / 64 = %ld)\n",
                        a.ckpt.c_str(), in.dims.heads);
    }
    const vit::VitDims& dims = in.dims;
    in.prep = eval::ImagePrep{.image = int(dims.image), .channels = int(dims.channels), .norm = data_source.normalization()};
    const auto train_ds = data_source.open(true);
    const auto test_ds = data_source.open(false);
    if (!test_ds)
        LCMAE_FAIL("--data " << a.data << " has no test split to score on (a folder needs " << a.data << "/train and " << a.data
                             << "/test, each with the same class sub-folders)");
    if (train_ds->num_classes() < 2)
        LCMAE_FAIL("--data " << a.data << ": the training split has " << train_ds->num_classes()
                             << " classes; evaluation needs labelled images of at least 2 classes");
    if (dims.channels != data_source.channels())
        std::printf("note: the encoder takes %ld channel(s) and the data has %d; images are converted (gray replicated, or RGB to luma)\n",
                    dims.channels, data_source.channels());
    const std::size_t ntr = a.limit_train > 0 ? std::min<std::size_t>(std::size_t(a.limit_train), train_ds->size()) : train_ds->size();
    const std::size_t nte = a.limit_test > 0 ? std::min<std::size_t>(std::size_t(a.limit_test), test_ds->size()) : test_ds->size();
    if (a.protocol == "knn" && std::size_t(a.k) > ntr)
        usage_error("--k " + std::to_string(a.k) + " is larger than the " + std::to_string(ntr) + " training images", a.protocol);
    const std::string source = a.pixels ? "pixels" : a.ckpt == "random" ? "random" : a.encoder;
    std::string described = a.pixels ? "raw pixels (normalised, " + std::to_string(in.prep.floats()) + " values)"
                          : a.ckpt == "random" ? "a random encoder (seed " + std::to_string(a.seed) + ")"
                                               : a.ckpt + " (" + a.encoder + " encoder)";
    std::printf("lcmae eval %s: %s, %zu train / %zu test images, %d classes; %s; ViT D %ld depth %ld heads %ld, %ld px x %ld ch / patch %ld; %d threads\n",
                a.protocol.c_str(), a.data.c_str(), ntr, nte, train_ds->num_classes(), described.c_str(), dims.dim, dims.depth, dims.heads, dims.image, dims.channels, dims.patch, threads);
    std::fflush(stdout);

    std::vector<Row> rows;
    std::ostringstream fields;  // the protocol's own JSON fields
    double feature_seconds = 0, eval_seconds = 0;
    if (a.protocol == "finetune") {
        const auto t1 = Clock::now();
        rows.push_back(finetune(ctx, a, in, *train_ds, *test_ds, ntr, nte, fields));
        eval_seconds = seconds_since(t1);
    } else {
        run_frozen(ctx, a, in, *train_ds, *test_ds, ntr, nte, rows, fields, feature_seconds, eval_seconds);
    }
    for (const auto& r : rows) {
        std::printf("%s top-1 %.2f%%", r.label.c_str(), r.top1);
        if (r.has_top5) std::printf("  top-5 %.2f%%", r.top5);
        std::printf("\n");
    }
    if (a.protocol == "finetune")
        std::printf("fine-tuning %.1f s\n", eval_seconds);
    else
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
       << ",\n  \"n_train\": " << ntr << ",\n  \"n_test\": " << nte << ",\n  \"seed\": " << a.seed << ",\n  \"threads\": " << threads
       << fields.str() << ",\n  \"results\": {";
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

/// k-NN or the linear probe on frozen features (or raw pixels).
void run_frozen(const backend::Cpu& ctx, const Args& a, const Input& in, const data::Dataset& train_ds, const data::Dataset& test_ds,
                std::size_t ntr, std::size_t nte, std::vector<Row>& rows, std::ostringstream& fields, double& feature_seconds,
                double& eval_seconds) {
    const int threads = ctx.threads();
    const vit::VitDims& dims = in.dims;
    const eval::ImagePrep& prep = in.prep;
    const auto t0 = Clock::now();
    // features: one set per kind (pixels: one set)
    std::vector<std::pair<std::string, std::pair<eval::FeatureSet, eval::FeatureSet>>> sets;
    if (a.pixels) {
        sets.push_back({"pixels", {eval::pixel_features(train_ds, prep, ntr, threads), eval::pixel_features(test_ds, prep, nte, threads)}});
    } else {
        eval::FrozenEncoder<float> enc(ctx, dims, a.feature_batch);
        if (a.ckpt == "random") {
            enc.init_random(ctx, a.seed);
        } else {
            enc.load(ctx, a.ckpt, a.encoder == "target" ? "target." : "");
        }
        auto ftr = enc.extract(ctx, train_ds, prep, ntr, progress_printer("train"), threads);
        auto fte = enc.extract(ctx, test_ds, prep, nte, progress_printer("test"), threads);
        if (a.feature != "cls") sets.push_back({"mean", {std::move(ftr.mean), std::move(fte.mean)}});
        if (a.feature != "mean") sets.push_back({"cls", {std::move(ftr.cls), std::move(fte.cls)}});
    }
    feature_seconds = seconds_since(t0);
    const auto t1 = Clock::now();
    double lr = 0;
    long steps = 0;
    for (const auto& [name, tt] : sets) {
        if (a.protocol == "knn") {
            eval::KnnConfig kc;
            kc.k = int(a.k);
            kc.temperature = a.temperature;
            kc.threads = threads;
            const auto r = eval::knn_classify(tt.first, tt.second, kc);
            char label[96];
            std::snprintf(label, sizeof label, "k-NN (k %ld, T %g) %-6s", a.k, a.temperature, name.c_str());
            rows.push_back({name, label, r.top1, r.top5, r.has_top5});
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
            char label[128];
            std::snprintf(label, sizeof label, "linear probe (%ld epochs, batch %ld, lr %.3g) %-6s", a.epochs, a.batch, lr, name.c_str());
            rows.push_back({name, label, r.top1, r.top5, r.has_top5});
        }
    }
    eval_seconds = seconds_since(t1);
    if (a.protocol == "knn") {
        fields << ",\n  \"k\": " << a.k << ",\n  \"temperature\": " << json_number(a.temperature);
    } else {
        fields << ",\n  \"epochs\": " << a.epochs << ",\n  \"warmup_epochs\": " << json_number(a.warmup) << ",\n  \"batch\": " << a.batch
               << ",\n  \"blr\": " << json_number(a.blr) << ",\n  \"lr\": " << json_number(lr) << ",\n  \"steps\": " << steps
               << ",\n  \"label_smoothing\": " << json_number(a.label_smoothing);
    }
}

}  // namespace

namespace lcmae::tools {
int cmd_eval(int argc, char** argv) { return run(parse(argc, argv)); }
}  // namespace lcmae::tools
