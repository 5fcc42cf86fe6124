// examples/lcmae_pretrain.cpp - the main job: pre-train LC-MAE (or plain MAE) on Fashion-MNIST
// (the default) or on any folder of images, printing loss and images/s, and saving an atomic
// checkpoint (online + EMA target, safetensors) plus the training state at the end and every
// --save-every optimiser steps. --resume DIR continues a run exactly.
//
//   lcmae_pretrain [--data DIR|fashion-mnist] [--minutes M] [--epochs E] [--batch B] [--threads T]
//                  [--loss cosine|infonce|smoothl1|none] [--crop src|rrc] [--mask-ratio R] [--alpha A]
//                  [--blr LR] [--warmup EPOCHS] [--out DIR] [--resume DIR] [--save-every N] [--seed S]
//                  [--skip-corrupt]          (image folders: warn about undecodable files and go on)
//                  [--allow-config-change]   (--resume a run saved with other settings: warn, do not refuse)
//                  [--export-encoder FILE]   (the online encoder under timm's VisionTransformer names,
//                                             pos_embed included: load_state_dict(strict=True) works)
// Defaults are sized for a few minutes on 2 cores: 1 epoch schedule, 0.02 warm-up epochs, blr 1.5e-3.
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/apps/timm_transfer.hpp"
#include "lcmae/data/idx.hpp"
#include "lcmae/data/image_folder.hpp"
#include "lcmae/data/loader.hpp"
#include "lcmae/lcmae.hpp"

using namespace lcmae;

// The main job's models, as types (shared with tools/lcmae.cpp, which evaluates its checkpoints).
using apps::FashionMnistBackbone;
using apps::FolderBackbone;
using apps::MainJobModel;

namespace {
// Ctrl-C / SIGTERM ask for a clean stop: the current micro-batch finishes, then the checkpoint and
// training state are written (atomically) and the program exits, so an interrupted run resumes.
std::atomic<bool> g_stop{false};
extern "C" void request_stop(int) { g_stop.store(true); }

struct Args {
    std::string data = "fashion-mnist", out = "runs/fashion-mnist", resume, loss = "cosine", crop = "src", export_encoder;
    double minutes = 3.0, mask_ratio = 0.75, alpha = 0.25, blr = 1.5e-3, warmup = 0.02;
    long epochs = 1, batch = 64, save_every = 200;
    int threads = 0;
    std::uint64_t seed = 0;
    bool skip_corrupt = false;
    bool allow_config_change = false;
};

const char* const kUsage =
    "usage: lcmae_pretrain [--data DIR|fashion-mnist] [--minutes M] [--epochs E] [--batch B] [--threads T]\n"
    "       [--loss cosine|infonce|smoothl1|none] [--crop src|rrc] [--mask-ratio R] [--alpha A] [--blr LR]\n"
    "       [--warmup EPOCHS] [--out DIR]\n"
    "       [--resume DIR] [--save-every N] [--seed S] [--export-encoder FILE] [--skip-corrupt] [--allow-config-change]\n"
    "  --minutes M      wall-clock budget, > 0 (default 3)\n"
    "  --epochs E       schedule length, integer 1..1000000 (default 1)\n"
    "  --batch B        images per micro-batch, integer 1..65536 (default 64)\n"
    "  --threads T      integer 0..1024, 0 = all cores (default 0)\n"
    "  --mask-ratio R   in [0, 1) (default 0.75);  --alpha A  >= 0 (default 0.25)\n"
    "  --blr LR         base learning rate, > 0 (default 1.5e-3);  --warmup EPOCHS  >= 0 (default 0.02)\n"
    "  --save-every N   save every N optimiser steps, integer >= 0, 0 = only at the end (default 200)\n"
    "  --seed S         unsigned integer 0..18446744073709551615 (default 0)\n"
    "exit status: 0 done, 1 run-time error, 2 bad command line\n";

// Errors on the command line: the reason and the usage to stderr, exit status 2.
[[noreturn]] void usage(const std::string& why) {
    std::cerr << "lcmae_pretrain: " << why << "\n" << kUsage;
    std::exit(2);
}

// An integer option: the whole string must be a decimal integer (no sign for unsigned types, no
// fraction, no exponent) within [lo, hi].
template <class T>
T int_option(const std::string& flag, const std::string& v, T lo, T hi) {
    T x{};
    const char* const b = v.data();
    const char* const e = b + v.size();
    const auto [ptr, ec] = std::from_chars(b, e, x);
    const std::string expected = "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    if (v.empty() || ec == std::errc::invalid_argument || (ec == std::errc{} && ptr != e))
        usage(flag + " expects " + expected + ", got '" + v + "'");
    if (ec == std::errc::result_out_of_range || x < lo || x > hi)
        usage(flag + " is out of range: expected " + expected + ", got '" + v + "'");
    return x;
}

// A real option: the whole string must be a finite number accepted by `ok` (described by `expected`).
template <class Ok>
double real_option(const std::string& flag, const std::string& v, Ok ok, const std::string& expected) {
    double x = 0;
    const char* const b = v.data();
    const char* const e = b + v.size();
    const auto [ptr, ec] = std::from_chars(b, e, x);
    if (v.empty() || ec != std::errc{} || ptr != e || !std::isfinite(x))
        usage(flag + " expects a finite number " + expected + ", got '" + v + "'");
    if (!ok(x)) usage(flag + " is out of range: expected a number " + expected + ", got '" + v + "'");
    return x;
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage("option " + k + " needs a value");
            return argv[++i];
        };
        if (k == "--data") a.data = val();
        else if (k == "--out") a.out = val();
        else if (k == "--resume") a.resume = val();
        else if (k == "--export-encoder") a.export_encoder = val();
        else if (k == "--skip-corrupt") a.skip_corrupt = true;
        else if (k == "--allow-config-change") a.allow_config_change = true;
        else if (k == "--loss") a.loss = val();
        else if (k == "--crop") a.crop = val();
        else if (k == "--minutes") a.minutes = real_option(k, val(), [](double x) { return x > 0; }, "> 0");
        else if (k == "--epochs") a.epochs = int_option<long>(k, val(), 1, 1'000'000);
        else if (k == "--batch") a.batch = int_option<long>(k, val(), 1, 65536);
        else if (k == "--threads") a.threads = int_option<int>(k, val(), 0, 1024);
        else if (k == "--mask-ratio") a.mask_ratio = real_option(k, val(), [](double x) { return x >= 0 && x < 1; }, "in [0, 1)");
        else if (k == "--alpha") a.alpha = real_option(k, val(), [](double x) { return x >= 0; }, ">= 0");
        else if (k == "--blr") a.blr = real_option(k, val(), [](double x) { return x > 0; }, "> 0");
        else if (k == "--warmup") a.warmup = real_option(k, val(), [](double x) { return x >= 0; }, ">= 0");
        else if (k == "--save-every") a.save_every = int_option<long>(k, val(), 0, std::numeric_limits<long>::max());
        else if (k == "--seed") a.seed = int_option<std::uint64_t>(k, val(), 0, std::numeric_limits<std::uint64_t>::max());
        else if (k == "--help" || k == "-h") {
            std::cout << "lcmae_pretrain: pre-train LC-MAE (or plain MAE) on Fashion-MNIST or a folder of images\n" << kUsage;
            std::exit(0);
        } else usage("unknown option '" + k + "'");
    }
    if (a.data.empty()) usage("--data must not be empty");
    if (a.out.empty()) usage("--out must not be empty");
    if (a.loss != "cosine" && a.loss != "infonce" && a.loss != "smoothl1" && a.loss != "none")
        usage("--loss must be cosine, infonce, smoothl1 or none, got '" + a.loss + "'");
    if (a.crop != "src" && a.crop != "rrc") usage("--crop must be src (simple resized) or rrc (random resized), got '" + a.crop + "'");
    return a;
}

// Checks, before any data is read or any step is taken, that --out can hold the checkpoint: the
// directory is created if needed and a probe file is written, flushed and removed. Throws an
// lcmae::Error naming the path and the reason.
void check_output_dir(const std::string& out) {
    namespace fs = std::filesystem;
    const auto fail = [](const std::ostream& m) { throw std::runtime_error(static_cast<const std::ostringstream&>(m).str()); };
    std::error_code ec;
    const fs::path dir(out);
    fs::create_directories(dir, ec);
    if (ec) fail(std::ostringstream{} << "cannot use --out '" << out << "': cannot create the directory: " << ec.message());
    if (!fs::is_directory(dir, ec))
        fail(std::ostringstream{} << "cannot use --out '" << out << "': it exists and is not a directory");
    const fs::path probe = dir / (".lcmae_write_probe." + std::to_string(::getpid()));
    {
        std::FILE* f = std::fopen(probe.c_str(), "wb");
        if (!f) {
            const int err = errno;
            fail(std::ostringstream{} << "cannot use --out '" << out << "': cannot write a file there: " << std::strerror(err));
        }
        const bool ok = std::fputs("probe\n", f) >= 0 && std::fflush(f) == 0;
        const int err = errno;
        const bool closed = std::fclose(f) == 0;
        if (!ok || !closed) {
            fs::remove(probe, ec);
            fail(std::ostringstream{} << "cannot use --out '" << out << "': writing a file there failed: " << std::strerror(err));
        }
    }
    if (!fs::remove(probe, ec) || ec)
        fail(std::ostringstream{} << "cannot use --out '" << out << "': cannot remove the probe file " << probe.string() << ": "
                                                       << (ec ? ec.message() : std::string("not found")));
}

template <class Model>
int run(const Args& a, const backend::Cpu& ctx);

// The one table of instantiations: run-time flags pick the model type (data geometry x loss x
// crop); everything after this line is typed. The engine, trainer and loader code is shared by all
// of them (LCMAE is a thin typed wrapper over one LcmaeModel<float>), so the table costs little.
template <class Backbone, class Loss>
int with_crop(const Args& a, const backend::Cpu& ctx) {
    if (a.crop == "rrc") return run<MainJobModel<Backbone, Loss, crop::RandomResized>>(a, ctx);
    return run<MainJobModel<Backbone, Loss, crop::SimpleResized>>(a, ctx);
}
template <class Backbone>
int with_loss(const Args& a, const backend::Cpu& ctx) {
    if (a.loss == "infonce") return with_crop<Backbone, loss::InfoNCE>(a, ctx);
    if (a.loss == "smoothl1") return with_crop<Backbone, loss::SmoothL1>(a, ctx);
    if (a.loss == "none") return with_crop<Backbone, loss::None>(a, ctx);
    return with_crop<Backbone, loss::Cosine>(a, ctx);
}
int dispatch(const Args& a, const backend::Cpu& ctx) {
    if (a.data == "fashion-mnist") return with_loss<FashionMnistBackbone>(a, ctx);
    return with_loss<FolderBackbone>(a, ctx);
}
}  // namespace

int main(int argc, char** argv) try {
    const Args a = parse(argc, argv);
    check_output_dir(a.out);  // an unusable --out fails now, not after training
    const backend::Cpu ctx = a.threads > 0 ? backend::Cpu(a.threads) : backend::Cpu();
    return dispatch(a, ctx);
} catch (const lcmae::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "lcmae_pretrain: %s\n", e.what());
    return 1;
}

namespace {
template <class Model>
int run(const Args& a, const backend::Cpu& ctx) {
    const bool fmnist = a.data == "fashion-mnist";
    const models::ModelSpec spec = Model::spec(RunConfig{.mask_ratio = a.mask_ratio, .alpha = a.alpha, .max_batch = a.batch});
    std::shared_ptr<const data::Dataset> ds;
    data::LoaderConfig lc;
    lc.batch = int(a.batch);
    lc.image_size = int(spec.encoder.image);
    lc.channels = int(spec.encoder.channels);
    lc.seed = a.seed;
    lc.threads = std::max(1, ctx.threads() / 2);
    if (fmnist) {
        ds = data::load_fashion_mnist(true);
        lc.norm = data::Normalization::fashion_mnist();
    } else {
        data::ImageFolderOptions fo;
        fo.skip_corrupt = a.skip_corrupt;  // warn per file, count, and go on instead of stopping
        ds = std::make_shared<data::ImageFolder>(a.data, fo);
    }
    lc.views = Model::guided_enabled ? data::Views::Pair : data::Views::Single;
    data::Loader<typename Model::crop> loader(ds, lc);  // the model's Crop policy makes its views
    const std::int64_t ipe = loader.batches_per_epoch();
    std::printf("lcmae_pretrain: %s, %zu images, %lld batches of %ld per epoch; ViT D %ld depth %ld heads %ld, %ld px / patch %ld; "
                "loss %s, crop %s, mask ratio %.2f, alpha %.2f; %d threads\n",
                fmnist ? "Fashion-MNIST" : a.data.c_str(), ds->size(), (long long)ipe, a.batch, spec.encoder.dim,
                spec.encoder.depth, spec.encoder.heads, spec.encoder.image, spec.encoder.patch, a.loss.c_str(),
                std::string(Model::crop::name).c_str(), a.mask_ratio, a.alpha, ctx.threads());
    Model typed(RunConfig{.mask_ratio = a.mask_ratio, .alpha = a.alpha, .max_batch = a.batch, .seed = a.seed});
    auto& model = typed.engine();
    train::TrainConfig tc;
    tc.batch = a.batch;
    tc.epochs = a.epochs;
    tc.warmup_epochs = std::min<double>(a.warmup, double(a.epochs));
    tc.blr = a.blr;
    tc.seed = a.seed;
    tc.allow_config_change = a.allow_config_change;  // --resume of a differently configured run
    typename Model::trainer_type trainer(model, tc, ipe);
    if (!a.resume.empty()) {
        trainer.load(a.resume);
        // A training state from another data set or schedule (or a corrupt one) would make the
        // skip-ahead below run for ages or index past the epoch: check the counters first.
        const std::string state = (std::filesystem::path(a.resume) / "train_state.safetensors").string();
        if (trainer.iteration() < 0 || trainer.iteration() >= ipe)
            LCMAE_FAIL("lcmae_pretrain: " << state << ": iteration " << trainer.iteration() << " is outside 0.." << ipe - 1
                                          << " (the batches per epoch of this data set at --batch " << a.batch << ")");
        if (trainer.epoch() < 0 || trainer.epoch() > a.epochs)
            LCMAE_FAIL("lcmae_pretrain: " << state << ": epoch " << trainer.epoch() << " is outside 0.." << a.epochs
                                          << " (--epochs " << a.epochs << ")");
        std::printf("resumed from %s at step %lld (epoch %lld, iteration %lld)\n", a.resume.c_str(),
                    (long long)trainer.step(), (long long)trainer.epoch(), (long long)trainer.iteration());
    }
    const std::map<std::string, std::string> meta{{"dataset", a.data}, {"loss", a.loss}, {"crop", std::string(Model::crop::name)}};
    std::signal(SIGINT, request_stop);
    std::signal(SIGTERM, request_stop);
    const auto t0 = std::chrono::steady_clock::now();
    auto last = t0;
    long images_since = 0;
    double loss_sum = 0, mim_sum = 0, gg_sum = 0;
    long n_sum = 0;
    bool done = false;
    while (!done && trainer.epoch() < a.epochs && !g_stop.load()) {
        loader.start_epoch(std::uint64_t(trainer.epoch()));
        // skip the micro-batches a resumed run already did in this epoch (bounded by the check
        // after load, and stoppable)
        for (std::int64_t i = 0; i < trainer.iteration() && !g_stop.load(); ++i)
            if (!loader.next()) break;
        if (g_stop.load()) {
            std::printf("stop requested: saving and exiting\n");
            break;
        }
        while (const data::Batch* b = loader.next()) {
            const auto r = trainer.micro_batch(ctx, b->view1, b->view2 ? b->view2 : b->view1, b->size);
            loss_sum += r.losses.total; mim_sum += r.losses.mim; gg_sum += r.losses.gg; ++n_sum;
            images_since += b->size;
            const auto now = std::chrono::steady_clock::now();
            const double since = std::chrono::duration<double>(now - last).count();
            const double elapsed = std::chrono::duration<double>(now - t0).count();
            if (since >= 10.0) {
                std::printf("epoch %lld  step %6lld  loss %.4f (mim %.4f, gg %.4f)  lr %.2e  %.1f images/s  %.1f min\n",
                            (long long)trainer.epoch(), (long long)trainer.step(), loss_sum / n_sum, mim_sum / n_sum,
                            gg_sum / n_sum, r.lr, images_since / since, elapsed / 60);
                std::fflush(stdout);
                last = now; images_since = 0; loss_sum = mim_sum = gg_sum = 0; n_sum = 0;
            }
            if (r.stepped && a.save_every > 0 && trainer.step() % a.save_every == 0) trainer.save(a.out, meta);
            if (elapsed >= a.minutes * 60 || g_stop.load()) {
                if (g_stop.load()) std::printf("stop requested: saving and exiting\n");
                done = true;
                break;
            }
        }
        if (!done) trainer.end_epoch();
    }
    trainer.save(a.out, meta);
    if (ds->skipped() > 0) std::printf("skipped %zu corrupt image(s) (--skip-corrupt)\n", ds->skipped());
    std::printf("saved %s/checkpoint.safetensors and %s/train_state.safetensors at step %lld\n", a.out.c_str(),
                a.out.c_str(), (long long)trainer.step());
    if (!a.export_encoder.empty()) {
        // the checkpoint just saved, through the code of `lcmae export` (lcmae/apps/timm_transfer.hpp)
        apps::export_checkpoint_encoder(std::filesystem::path(a.out) / "checkpoint.safetensors", a.export_encoder,
                                        spec.encoder);
        std::printf("exported the encoder (timm VisionTransformer names) to %s\n", a.export_encoder.c_str());
    }
    return 0;
}
}  // namespace
