// examples/lcmae_pretrain.cpp - the main job: pre-train LC-MAE (or plain MAE) on Fashion-MNIST
// (the default) or on any folder of images, printing loss and images/s, and saving an atomic
// checkpoint (online + EMA target, safetensors) plus the training state at the end and every
// --save-every optimiser steps. --resume DIR continues a run exactly.
//
//   lcmae_pretrain [--data DIR|fashion-mnist] [--minutes M] [--epochs E] [--batch B] [--threads T]
//                  [--loss cosine|infonce|smoothl1|none] [--crop src|rrc] [--mask-ratio R] [--alpha A]
//                  [--blr LR] [--warmup EPOCHS] [--out DIR] [--resume DIR] [--save-every N] [--seed S]
//                  [--skip-corrupt]          (image folders: warn about undecodable files and go on)
//                  [--export-encoder FILE]   (the online encoder under timm's VisionTransformer names,
//                                             pos_embed included: load_state_dict(strict=True) works)
// Defaults are sized for a few minutes on 2 cores: 1 epoch schedule, 0.02 warm-up epochs, blr 1.5e-3.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "lcmae/apps/main_job_models.hpp"
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
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "lcmae_pretrain: " << why << "\n"
              << "usage: lcmae_pretrain [--data DIR|fashion-mnist] [--minutes M] [--epochs E] [--batch B] [--threads T]\n"
              << "       [--loss cosine|infonce|smoothl1|none] [--crop src|rrc] [--mask-ratio R] [--alpha A] [--blr LR]\n"
              << "       [--warmup EPOCHS] [--out DIR]\n"
              << "       [--resume DIR] [--save-every N] [--seed S] [--export-encoder FILE] [--skip-corrupt]\n";
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) usage("option " + k + " needs a value");
            return argv[++i];
        };
        auto num = [&](const std::string& v) {
            char* end = nullptr;
            const double d = std::strtod(v.c_str(), &end);
            if (end == v.c_str() || *end != '\0') usage("option " + k + " expects a number, got '" + v + "'");
            return d;
        };
        if (k == "--data") a.data = val();
        else if (k == "--out") a.out = val();
        else if (k == "--resume") a.resume = val();
        else if (k == "--export-encoder") a.export_encoder = val();
        else if (k == "--skip-corrupt") a.skip_corrupt = true;
        else if (k == "--loss") a.loss = val();
        else if (k == "--crop") a.crop = val();
        else if (k == "--minutes") a.minutes = num(val());
        else if (k == "--epochs") a.epochs = long(num(val()));
        else if (k == "--batch") a.batch = long(num(val()));
        else if (k == "--threads") a.threads = int(num(val()));
        else if (k == "--mask-ratio") a.mask_ratio = num(val());
        else if (k == "--alpha") a.alpha = num(val());
        else if (k == "--blr") a.blr = num(val());
        else if (k == "--warmup") a.warmup = num(val());
        else if (k == "--save-every") a.save_every = long(num(val()));
        else if (k == "--seed") a.seed = std::uint64_t(num(val()));
        else if (k == "--help" || k == "-h") usage("help");
        else usage("unknown option '" + k + "'");
    }
    if (a.threads < 0) usage("--threads must be >= 1 (or 0 for all cores), got " + std::to_string(a.threads));
    if (!(a.minutes > 0)) usage("--minutes must be positive, got " + std::to_string(a.minutes));
    if (a.loss != "cosine" && a.loss != "infonce" && a.loss != "smoothl1" && a.loss != "none")
        usage("--loss must be cosine, infonce, smoothl1 or none, got '" + a.loss + "'");
    if (a.crop != "src" && a.crop != "rrc") usage("--crop must be src (simple resized) or rrc (random resized), got '" + a.crop + "'");
    return a;
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
    typename Model::trainer_type trainer(model, tc, ipe);
    if (!a.resume.empty()) {
        trainer.load(a.resume);
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
    while (!done && trainer.epoch() < a.epochs) {
        loader.start_epoch(std::uint64_t(trainer.epoch()));
        // skip the micro-batches a resumed run already did in this epoch
        for (std::int64_t i = 0; i < trainer.iteration(); ++i) loader.next();
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
        io::EncoderExport<float> ex;
        ex.pos_embed = model.encoder().pos_embed().data();
        ex.pos_embed_shape = Shape{1, 1 + spec.encoder.tokens(), spec.encoder.dim};
        ex.metadata = meta;
        io::export_encoder(a.export_encoder, model.params(), ex);
        std::printf("exported the encoder (timm VisionTransformer names) to %s\n", a.export_encoder.c_str());
    }
    return 0;
}
}  // namespace
