// lcmae/train/trainer.hpp - the pre-training loop around an LcmaeModel: micro-batches with
// gradient accumulation, warm-up + cosine lr per iteration, AdamW, the EMA target with its cosine
// momentum per optimiser step (SPEC 3-4), checkpoints and exact resume.
//
// Everything random in a step (the masks) comes from Rng(seed, stream_id(step, micro-batch)), so
// the training state is just counters: a resumed run draws exactly what the uninterrupted run
// would have drawn, and the continued losses and weights are bit-identical on the CPU.
//
// Backends: Trainer<T, Backend> drives a models::LcmaeModel<T, Backend>; every method that touches
// tensors takes the backend context first (micro_batch, save, load); zero-grad, AdamW and the EMA
// are backend ops over the arenas. The losses come back as host doubles (the model downloads its
// loss scalars once per micro-batch), which is what the finiteness check reads. On the CPU the
// constructor, save and load also work without a context.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/train_state.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/ema.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/schedule.hpp"

namespace lcmae::train {

/// Run-time numbers of a pre-training run (SPEC 4 defaults, scaled down by the caller for short runs).
struct TrainConfig {
    long batch = 64;                 // per micro-batch
    int accumulation = 1;            // micro-batches per optimiser step
    std::int64_t epochs = 1600;
    double warmup_epochs = 40;
    double blr = 1.5e-4;             // base lr; lr = blr * effective batch / 256 (or sqrt rule)
    optim::LrScaling lr_scaling = optim::LrScaling::Linear;
    double min_lr = 0.0;
    double weight_decay = 0.05;
    double max_grad_norm = 0.0;      // 0 = no clipping
    double ema_base = 0.996;         // EMA momentum cosine from ema_base to 1 (SPEC 3)
    std::uint64_t seed = 0;
};

template <class T, class Backend = backend::Cpu>
class Trainer {
public:
    using Model = models::LcmaeModel<T, Backend>;

    Trainer(const Backend& ctx, Model& model, const TrainConfig& cfg, std::int64_t iters_per_epoch)
        : model_(model), cfg_(cfg), iters_per_epoch_(iters_per_epoch),
          adamw_(model.params(), optim::AdamWConfig{0.9, 0.95, 1e-8, cfg.weight_decay, cfg.max_grad_norm}) {
        LCMAE_CHECK(cfg.accumulation >= 1, "accumulation must be >= 1, got " << cfg.accumulation);
        LCMAE_CHECK(iters_per_epoch >= 1, "an epoch needs at least one micro-batch, got " << iters_per_epoch);
        LCMAE_CHECK(cfg.epochs >= 1, "epochs must be >= 1, got " << cfg.epochs);
        LCMAE_CHECK(cfg.warmup_epochs >= 0 && cfg.warmup_epochs <= double(cfg.epochs),
                    "warm-up epochs " << cfg.warmup_epochs << " must lie in [0, epochs = " << cfg.epochs << "]");
        if (model.has_target())
            ema_ = std::make_unique<optim::EmaUpdater<T, Backend>>(model.target_params(), model.params());
        lr_max_ = optim::scaled_lr(cfg.blr, cfg.batch * cfg.accumulation, cfg.lr_scaling);
        optim::zero_grad(ctx, model_.params());
    }
    /// On the CPU without a context.
    Trainer(Model& model, const TrainConfig& cfg, std::int64_t iters_per_epoch)
        requires std::same_as<Backend, backend::Cpu>
        : Trainer(backend::Cpu(), model, cfg, iters_per_epoch) {}

    /// Total optimiser steps of the run (the EMA schedule's n).
    std::int64_t total_steps() const { return cfg_.epochs * iters_per_epoch_ / cfg_.accumulation; }
    /// The lr at micro-batch `it` of `epoch` (SPEC 4: per iteration, fractional epoch).
    double lr_at(std::int64_t epoch, std::int64_t it) const {
        const double e = optim::fractional_epoch(epoch, it, iters_per_epoch_);
        return optim::WarmupCosine{lr_max_, cfg_.min_lr, cfg_.warmup_epochs, double(cfg_.epochs)}(e);
    }

    struct Report {
        models::StepLosses losses;
        bool stepped = false;  // an optimiser step happened after this micro-batch
        double lr = 0, ema_decay = 0;
    };

    /// One micro-batch at (epoch, it); after every `accumulation` micro-batches, AdamW + EMA.
    /// The views are host arrays (B, C, S, S); the model uploads them.
    Report micro_batch(const Backend& ctx, const T* host_view1, const T* host_view2, long B) {
        Report r;
        Rng rng(cfg_.seed, stream_id(0x4D41534Bull /* "MASK" */, std::uint64_t(micro_)));
        r.losses = model_.forward_backward(ctx, host_view1, host_view2, B, rng, 1.0 / cfg_.accumulation);
        LCMAE_CHECK(std::isfinite(r.losses.total), "the loss is not finite (" << r.losses.total << ") at micro-batch "
                                                                             << micro_ << "; stopping before the weights are damaged");
        r.lr = lr_at(epoch_, it_);
        ++micro_;
        ++it_;
        if (micro_ % cfg_.accumulation == 0) {
            adamw_.step(ctx, r.lr);
            if (ema_) {
                r.ema_decay = optim::ema_momentum(step_, std::max<std::int64_t>(1, total_steps()), cfg_.ema_base);
                ema_->update(ctx, r.ema_decay);
            }
            ++step_;
            optim::zero_grad(ctx, model_.params());
            r.stepped = true;
        }
        return r;
    }
    /// Marks the end of an epoch (the schedule's position moves to the next one).
    void end_epoch() {
        ++epoch_;
        it_ = 0;
    }

    std::int64_t step() const noexcept { return step_; }
    std::int64_t epoch() const noexcept { return epoch_; }
    std::int64_t iteration() const noexcept { return it_; }
    double lr_max() const noexcept { return lr_max_; }

    /// Writes dir/checkpoint.safetensors (online + target under "target.") and
    /// dir/train_state.safetensors (AdamW moments, counters). Both writes are atomic.
    void save(const Backend& ctx, const std::filesystem::path& dir, const std::map<std::string, std::string>& metadata = {}) {
        std::filesystem::create_directories(dir);
        std::vector<io::NamedArena<T, Backend>> arenas{{"", model_.params()}};
        if (model_.has_target()) arenas.push_back({"target.", model_.target_params()});
        io::save_params<T>(ctx, dir / "checkpoint.safetensors", arenas, metadata);
        io::TrainState st;
        st.step = step_;
        st.epoch = epoch_;
        st.iteration = it_;
        st.integers["micro"] = micro_;
        st.integers["seed"] = static_cast<std::int64_t>(cfg_.seed);
        // Inside an accumulation cycle the gradient summed so far is part of the state: without it
        // the resumed run would step with the later micro-batches' gradient only.
        std::uint64_t partial = static_cast<std::uint64_t>(micro_ % cfg_.accumulation);
        std::vector<optim::OptimizerStateRef<T, Backend>> refs{adamw_.state()};
        if (partial != 0) refs.push_back(partial_gradient(&partial));
        io::save_train_state<T, Backend>(ctx, dir / "train_state.safetensors", st, refs);
    }
    void save(const std::filesystem::path& dir, const std::map<std::string, std::string>& metadata = {})
        requires std::same_as<Backend, backend::Cpu>
    {
        save(backend::Cpu(), dir, metadata);
    }
    /// Restores what save() wrote; checks every name, shape and dtype.
    void load(const Backend& ctx, const std::filesystem::path& dir) {
        const io::SafetensorsFile f(dir / "checkpoint.safetensors");
        io::load_params(ctx, f, model_.params(), "",
                        model_.has_target() ? io::Strictness::IgnoreUnexpected : io::Strictness::Strict);
        if (model_.has_target()) io::load_params(ctx, f, model_.target_params(), "target.", io::Strictness::IgnoreUnexpected);
        io::TrainState st;
        const auto state_path = dir / "train_state.safetensors";
        // A state saved inside an accumulation cycle carries the partial gradient (see save()).
        const bool mid_cycle = io::SafetensorsFile(state_path).find(std::string(kPartial) + ".step") != nullptr;
        std::uint64_t partial = 0;
        std::vector<optim::OptimizerStateRef<T, Backend>> refs{adamw_.state()};
        if (mid_cycle) refs.push_back(partial_gradient(&partial));
        optim::zero_grad(ctx, model_.params());  // entries the partial gradient does not cover stay zero
        io::load_train_state<T, Backend>(ctx, state_path, st, refs);
        LCMAE_CHECK(st.integers.count("seed") && std::uint64_t(st.integers.at("seed")) == cfg_.seed,
                    "'" << state_path.string() << "' was written with another seed; resume needs the same seed");
        LCMAE_CHECK(st.integers.count("micro"), "'" << state_path.string() << "' has no micro-batch counter (int.micro)");
        const std::int64_t micro = st.integers.at("micro");
        LCMAE_CHECK(std::uint64_t(micro % cfg_.accumulation) == partial,
                    "'" << state_path.string() << "' was saved " << partial << " micro-batch(es) into an accumulation cycle "
                        << "but its counter says " << micro << " with accumulation " << cfg_.accumulation
                        << "; resume needs the same --accum as the run that saved it");
        step_ = st.step;
        epoch_ = st.epoch;
        it_ = st.iteration;
        micro_ = micro;
        if (!mid_cycle) optim::zero_grad(ctx, model_.params());
    }
    void load(const std::filesystem::path& dir)
        requires std::same_as<Backend, backend::Cpu>
    {
        load(backend::Cpu(), dir);
    }

    const optim::AdamW<T, Backend>& optimizer() const noexcept { return adamw_; }

    /// Micro-batches done since the last optimiser step (0 at a step boundary).
    std::int64_t micro_step() const noexcept { return micro_ % cfg_.accumulation; }

private:
    static constexpr const char* kPartial = "partial_grad";
    /// The gradient summed so far in the current accumulation cycle, as a train-state entry
    /// ("partial_grad.sum.<name>" for every optimised tensor; its "step" is the micro-batch count).
    optim::OptimizerStateRef<T, Backend> partial_gradient(std::uint64_t* count) {
        return {kPartial, &model_.params(), {{"sum", &model_.params().grads()}}, count, adamw_.active_entries()};
    }

    Model& model_;
    TrainConfig cfg_;
    std::int64_t iters_per_epoch_;
    optim::AdamW<T, Backend> adamw_;
    std::unique_ptr<optim::EmaUpdater<T, Backend>> ema_;
    double lr_max_ = 0;
    std::int64_t step_ = 0, epoch_ = 0, it_ = 0, micro_ = 0;
};

}  // namespace lcmae::train
