// tools/pretrain/train_loop.hpp - the main job's training loop, the same for every backend and
// communicator: data, model, trainer, progress line, metrics, saves, stopping, resume. Compiled
// for backend::Cpu by cmd_pretrain.cpp and for backend::Cuda by cmd_pretrain_cuda.cu (nvcc), so
// it touches the device only through the trainer and the model (no backend-specific call here;
// the caller describes the device in Run::device).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "lcmae/apps/main_job_models.hpp"
#include "lcmae/apps/run_log.hpp"
#include "lcmae/apps/run_spec.hpp"
#include "lcmae/apps/timm_transfer.hpp"
#include "lcmae/data/loader.hpp"
#include "lcmae/lcmae.hpp"
#include "pretrain/options.hpp"

namespace lcmae::tools::pretrain {

/// Ctrl-C / SIGTERM's request (cmd_pretrain.cpp's handler sets it): one flag for both translation
/// units, hence inline.
inline std::atomic<bool> g_stop{false};

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
inline std::string non_finite_parts(const models::StepLosses& l) {
    const bool mim = !std::isfinite(l.mim), gg = !std::isfinite(l.gg);
    return mim && gg ? "mim and gg losses are" : mim ? "mim loss is" : gg ? "gg loss is" : "total loss is";
}

/// What the caller may do after the loop: on rank 0, after a run that saved and ended normally
/// (not by a stop request), the k-NN (CPU work, the caller's) of the encoder with these dims.
struct Outcome {
    bool evaluate = false;
    vit::VitDims encoder;
};

/// Where a run trains: the backend's context, its communicator, and what the loop cannot ask the
/// backend itself (the loader's threads come from the host's cores; the banner's description of
/// the device). The loop fills `outcome` in.
template <class Backend, class Comm>
struct Run {
    const Args& a;
    const Backend& ctx;
    const Comm& comm;
    int loader_threads = 1;
    std::string device;  // "2 threads (OpenMP waits: passive), GEMM fp32 openblas", "CUDA device 0 (...)"
    Outcome* outcome = nullptr;
};

// The run, on one process (dist::Single) or as one rank of several (dist::Mpi on CPU ranks,
// dist::Nccl on GPU ranks): each rank loads its shard of every epoch (--batch per rank), all ranks
// train in step, rank 0 alone prints, logs and writes. Stopping (--minutes, --steps, Ctrl-C /
// SIGTERM) is decided for all ranks together, so none waits for a partner that has left.
template <class Crop, class Backend, class Comm>
int train_loop(const Run<Backend, Comm>& run, models::ModelSpec spec, bool guided, std::uint64_t seed) {
    namespace fs = std::filesystem;
    const Args& a = run.a;
    const Backend& ctx = run.ctx;
    const Comm& comm = run.comm;
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
    lc.threads = std::max(1, run.loader_threads);
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
                "patch %ld; loss %s, crop %s, mask ratio %.2f, alpha %.2f; %s\n",
                prog.c_str(), a.method.c_str(), is_fashion_mnist(a) ? "Fashion-MNIST" : a.data.c_str(), ds->size(), (long long)ipe,
                a.batch, a.accum, spec.encoder.dim, spec.encoder.depth, spec.encoder.heads, spec.encoder.image, spec.encoder.patch,
                a.method == "mae" ? "none" : a.loss.c_str(), std::string(Crop::name).c_str(),
                a.method == "lc-simmim" ? spec.simmim_mask_ratio : spec.mask_ratio, spec.alpha, run.device.c_str());
    models::LcmaeModel<float, Backend> model(ctx, spec, seed);  // what LCMAE<...>(RunConfig) builds
    train::TrainConfig tc;
    tc.batch = a.batch;
    tc.accumulation = int(a.accum);
    tc.epochs = a.epochs;
    tc.warmup_epochs = a.warmup;
    tc.blr = a.blr;
    tc.ema_base = a.ema;
    tc.seed = a.seed;
    tc.allow_config_change = a.allow_config_change;
    using TrainerT = train::Trainer<float, Backend, Comm>;
    TrainerT trainer(ctx, model, tc, ipe, comm);
    const std::int64_t total = a.steps > 0 ? std::min<std::int64_t>(a.steps, trainer.total_steps()) : trainer.total_steps();
    if (!a.resume.empty()) {
        trainer.load(ctx, a.resume);
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
        trainer.save(ctx, out, meta);
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
    if (!stop_requested() && run.outcome) *run.outcome = Outcome{true, spec.encoder};  // the caller's k-NN may follow
    return 0;
}

/// One leaf of the table: the model type gives the structure (spec), the guided flag and the crop.
template <class Model, class Backend, class Comm>
int run_model(const Run<Backend, Comm>& run) {
    const Args& a = run.a;
    RunConfig rc{.mask_ratio = a.mask_ratio, .target_mask_ratio = a.target_mask_ratio, .alpha = a.alpha, .max_batch = a.batch,
                 .seed = a.seed};
    if constexpr (Model::simmim) rc.simmim_mask_ratio = a.mask_ratio;
    const models::ModelSpec spec = apps::run_spec<Model>(rc);  // SimMIM's block fits the data's grid
    return train_loop<typename Model::crop>(run, spec, Model::guided_enabled, rc.seed);
}

// The one table of instantiations: the run-time flags pick the model type, from
//   geometry (Fashion-MNIST 28 px gray | 32 px RGB) x preset (tiny | small)
//   x method/loss (lcmae: cosine, infonce, smoothl1 | mae | lc-simmim: cosine, infonce, smoothl1)
//   x crop (src | rrc)                                                           = 56 leaves.
// A leaf only names the type (its static_asserts check the structure) and passes its spec, guided
// flag and Crop on: everything heavy is instantiated once per crop, backend and communicator
// (train_loop, the loader), because the engine and trainer are shared untemplated code
// (models::LcmaeModel<float, Backend>), which is what keeps the compile time of the main job low.
template <class Backbone, class Loss, class Recipe, class Backend, class Comm>
int with_crop(const Run<Backend, Comm>& run) {
    if (run.a.crop == "rrc") return run_model<apps::MainJobModel<Backbone, Loss, crop::RandomResized, Recipe>>(run);
    return run_model<apps::MainJobModel<Backbone, Loss, crop::SimpleResized, Recipe>>(run);
}
template <class Backbone, class Recipe, class Backend, class Comm>
int with_loss(const Run<Backend, Comm>& run) {
    if (run.a.loss == "infonce") return with_crop<Backbone, loss::InfoNCE, Recipe>(run);
    if (run.a.loss == "smoothl1") return with_crop<Backbone, loss::SmoothL1, Recipe>(run);
    return with_crop<Backbone, loss::Cosine, Recipe>(run);
}
template <class Backbone, class Backend, class Comm>
int with_method(const Run<Backend, Comm>& run) {
    if (run.a.method == "mae") return with_crop<Backbone, loss::None, apps::MainJobRecipe>(run);
    if (run.a.method == "lc-simmim") return with_loss<Backbone, apps::MainJobSimMimRecipe>(run);
    return with_loss<Backbone, apps::MainJobRecipe>(run);
}
template <int Image, int Channels, class Backend, class Comm>
int with_preset(const Run<Backend, Comm>& run) {
    if (run.a.model == "small") return with_method<apps::SmallBackbone<Image, Channels>>(run);
    return with_method<apps::TinyBackbone<Image, Channels>>(run);
}
/// Trains as `run` says; returns the exit status.
template <class Backend, class Comm>
int dispatch(const Run<Backend, Comm>& run) {
    if (is_fashion_mnist(run.a)) return with_preset<28, 1>(run);
    return with_preset<32, 3>(run);
}

}  // namespace lcmae::tools::pretrain
