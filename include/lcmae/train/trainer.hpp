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
//
// Data parallelism (DESIGN.md "Distributed"): the third parameter is the communicator policy
// (dist/communicator.hpp). dist::Single (the default) is one process and changes nothing. With
// N ranks (dist::Mpi, dist::Nccl) each rank runs micro_batch() on its `batch` samples of a global
// batch of batch * N (the loader's round-robin shard), and the run is the single-process run at
// that global batch:
//   * masks are drawn for the global batch and each rank takes its rows (models::BatchShard);
//   * the online heads' BatchNorm is synchronised (SyncBatchNorm through comm.reducer());
//   * the losses are local means over equal shards, so the mean of the ranks' gradients is the
//     global batch's gradient: one all-reduce (mean) of the whole gradient arena before AdamW;
//     the losses are averaged too, so every rank sees the same, finite or not, and stops together;
//   * lr scaling, the recorded configuration and the run id use the global batch, so a run saved
//     with N ranks resumes with M (same global batch, M * batch' = N * batch);
//   * only rank 0 writes files; save() and load() are collective (every rank calls them).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "lcmae/dist/communicator.hpp"
#include "lcmae/dist/single.hpp"
#include "lcmae/io/atomic_file.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/train_state.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/nn/init.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/ema.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/schedule.hpp"

namespace lcmae::train {

/// Run-time numbers of a pre-training run (SPEC 4 defaults, scaled down by the caller for short runs).
struct TrainConfig {
    long batch = 64;                 // per micro-batch, on each rank (the global batch is batch * ranks)
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
    /// load(): continue although the saved run was configured differently (schedule or model
    /// numbers); the differences are then printed as a warning instead of refused.
    bool allow_config_change = false;
};

/// What Trainer::micro_batch() throws when the loss is not finite, before the optimiser sees it:
/// the losses (which part is not finite), the optimiser step it belonged to (1-based: the step it
/// would have completed) and the micro-batch counter.
struct NonFiniteLoss : Error {
    NonFiniteLoss(const std::string& message, const models::StepLosses& l, std::int64_t s, std::int64_t m)
        : Error(message), losses(l), step(s), micro(m) {}
    models::StepLosses losses;
    std::int64_t step, micro;
};

template <class T, class Backend = backend::Cpu, class Comm = dist::Single>
class Trainer {
    static_assert(dist::Communicator<Comm, Backend, T>,
                  "Trainer's third parameter must be a communicator (dist::Single, dist::Mpi, dist::Nccl): "
                  "see lcmae/dist/communicator.hpp for what it provides");

public:
    using Model = models::LcmaeModel<T, Backend>;

    /// Single process (dist::Single and any communicator that needs no state).
    Trainer(const Backend& ctx, Model& model, const TrainConfig& cfg, std::int64_t iters_per_epoch)
        requires std::default_initializable<Comm> && std::is_empty_v<Comm>
        : Trainer(ctx, model, cfg, iters_per_epoch, default_comm()) {}
    /// Data parallel: `comm` (which must outlive the trainer) is this rank's communicator. Every rank
    /// constructs its trainer; the parameters and the EMA target are then broadcast from rank 0, so
    /// all ranks start from the same weights whatever their seeds.
    Trainer(const Backend& ctx, Model& model, const TrainConfig& cfg, std::int64_t iters_per_epoch, const Comm& comm)
        : model_(model), cfg_(cfg), iters_per_epoch_(iters_per_epoch), comm_(&comm),
          adamw_(model.params(), optim::AdamWConfig{0.9, 0.95, 1e-8, cfg.weight_decay, cfg.max_grad_norm}) {
        LCMAE_CHECK(cfg.accumulation >= 1, "accumulation must be >= 1, got " << cfg.accumulation);
        LCMAE_CHECK(iters_per_epoch >= 1, "an epoch needs at least one micro-batch, got " << iters_per_epoch);
        LCMAE_CHECK(cfg.epochs >= 1, "epochs must be >= 1, got " << cfg.epochs);
        LCMAE_CHECK(cfg.warmup_epochs >= 0 && cfg.warmup_epochs <= double(cfg.epochs),
                    "warm-up epochs " << cfg.warmup_epochs << " must lie in [0, epochs = " << cfg.epochs << "]");
        if (model.has_target())
            ema_ = std::make_unique<optim::EmaUpdater<T, Backend>>(model.target_params(), model.params());
        lr_max_ = optim::scaled_lr(cfg.blr, global_batch() * cfg.accumulation, cfg.lr_scaling);
        model_.set_batch_reducer(comm.template reducer<Backend>());
        grad_sync_ = comm.template make_gradient_sync<Backend, T>();
        if (world() > 1) {
            broadcast_arena(ctx, model_.params(), "the initial parameters");
            if (model_.has_target()) broadcast_arena(ctx, model_.target_params(), "the initial EMA target");
        }
        optim::zero_grad(ctx, model_.params());
    }
    /// On the CPU without a context.
    Trainer(Model& model, const TrainConfig& cfg, std::int64_t iters_per_epoch)
        requires std::same_as<Backend, backend::Cpu> && std::default_initializable<Comm> && std::is_empty_v<Comm>
        : Trainer(backend::Cpu(), model, cfg, iters_per_epoch) {}
    Trainer(Model& model, const TrainConfig& cfg, std::int64_t iters_per_epoch, const Comm& comm)
        requires std::same_as<Backend, backend::Cpu>
        : Trainer(backend::Cpu(), model, cfg, iters_per_epoch, comm) {}

    int rank() const { return comm_->rank(); }
    int world() const { return comm_->world(); }
    /// Samples per micro-batch over all ranks.
    long global_batch() const { return cfg_.batch * world(); }
    const Comm& communicator() const noexcept { return *comm_; }
    /// The overlapped gradient mean (null for one process, or with overlap off): its counters say
    /// how many buckets started inside the backward pass.
    const dist::GradientSync<Backend, T>* gradient_sync() const noexcept { return grad_sync_.get(); }

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
        // the last micro-batch of a cycle: its backward starts the gradient all-reduce bucket by
        // bucket (dist/grad_ready.hpp); earlier ones only accumulate
        dist::GradientSync<Backend, T>* sync = (micro_ + 1) % cfg_.accumulation == 0 ? grad_sync_.get() : nullptr;
        if (sync) {
            auto& grads = model_.params().grads();
            sync->begin(ctx, static_cast<long>(grads.size()), grads.data());
        }
        model_.set_grad_ready(sync);
        try {
            r.losses = model_.forward_backward(ctx, host_view1, host_view2, B, rng, 1.0 / cfg_.accumulation,
                                               models::BatchShard{rank(), world()});
        } catch (...) {
            model_.set_grad_ready(nullptr);
            throw;
        }
        model_.set_grad_ready(nullptr);
        if (world() > 1) {  // the global batch's losses (equal shards: the mean of the ranks'); NaN anywhere is NaN everywhere
            double l[3] = {r.losses.mim, r.losses.gg, r.losses.total};
            comm_->allreduce_sum_host(l, 3, "the loss all-reduce");
            r.losses = {l[0] / world(), l[1] / world(), l[2] / world()};
        }
        if (!std::isfinite(r.losses.total)) {
            // every rank gets here together (the loss was all-reduced): complete the buckets in
            // flight so no collective is left pending, then stop
            if (sync) sync->finish(ctx, "the gradient all-reduce");
            std::ostringstream m;
            m << "the loss is not finite (total " << r.losses.total << ": mim " << r.losses.mim << ", gg " << r.losses.gg
              << ") at micro-batch " << micro_ << " (optimiser step " << step_ + 1 << "); stopping before the weights are damaged";
            throw NonFiniteLoss(m.str(), r.losses, step_ + 1, micro_);
        }
        r.lr = lr_at(epoch_, it_);
        ++micro_;
        ++it_;
        if (micro_ % cfg_.accumulation == 0) {
            auto& grads = model_.params().grads();
            if (sync)
                sync->finish(ctx, "the gradient all-reduce");
            else
                comm_->allreduce_mean(ctx, static_cast<long>(grads.size()), grads.data(), "the gradient all-reduce");
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
    /// dir/train_state.safetensors (AdamW moments, counters; partial_grad.* inside an accumulation
    /// cycle). Both carry the same lcmae_step / lcmae_micro / lcmae_run_id metadata, which load()
    /// checks, so a checkpoint of one save beside the training state of another is refused.
    ///
    /// Nothing is written when a weight, EMA target value, Adam moment or partial gradient is not
    /// finite (an lcmae::Error names the step and the arena; the last good files stay as they were).
    /// Both files are written (fsynced) into dir/.save-<step>-<micro>.tmp/ first and renamed into
    /// place only when both are complete (checkpoint first, then training state), so a failed write
    /// (disk full ...) replaces neither. A crash between the two renames leaves the new checkpoint
    /// beside the old state, with the new state still in its staging directory: the next save() or
    /// load() finishes that save (renames the staged state, after checking that it is the
    /// checkpoint's partner), so the pair is whole again. Other stale temporary files and staging
    /// directories of a killed save (our naming patterns only) are removed.
    ///
    /// Data parallel: collective. Inside an accumulation cycle the ranks' partial gradients are
    /// averaged into the saved one (the state is global: a run with another number of ranks resumes
    /// it; each rank keeps its own partial sum to continue with). Only rank 0 writes; its success or
    /// its error message reaches every rank, which all return or all throw.
    void save(const Backend& ctx, const std::filesystem::path& dir, const std::map<std::string, std::string>& metadata = {}) {
        if (world() == 1) return save_files(ctx, dir, metadata);
        const bool partial = micro_ % cfg_.accumulation != 0;
        auto& grads = model_.params().grads();
        dbuffer<Backend, T> own;
        if (partial) {
            own.resize(grads.size());
            copy(ctx, long(grads.size()), dptr<Backend, const T>(grads.data()), own.data());
            comm_->allreduce_mean(ctx, long(grads.size()), grads.data(), "the partial-gradient all-reduce of a save");
        }
        std::string error;
        if (rank() == 0) {
            try {
                save_files(ctx, dir, metadata);
            } catch (const std::exception& e) {
                error = e.what();
            }
        }
        if (partial) copy(ctx, long(grads.size()), dptr<Backend, const T>(own.data()), grads.data());
        share_outcome(error, "the outcome of rank 0's save");
    }
    void save(const std::filesystem::path& dir, const std::map<std::string, std::string>& metadata = {})
        requires std::same_as<Backend, backend::Cpu>
    {
        save(backend::Cpu(), dir, metadata);
    }
    /// Restores what save() wrote; checks every name, shape and dtype, and that the checkpoint and
    /// the training state come from the same save (step, micro-batch counter, run id) before
    /// anything is modified. Files written before these metadata existed (neither carries them)
    /// are accepted as a pair unchecked.
    ///
    /// Data parallel: collective. Rank 0 reads the files (and alone finishes an interrupted save);
    /// the weights, EMA target, AdamW state, counters and any partial gradient are then broadcast,
    /// so every rank continues from the same bits and the files need not be visible to the others.
    void load(const Backend& ctx, const std::filesystem::path& dir) {
        if (world() == 1) return load_files(ctx, dir);
        std::string error;
        if (rank() == 0) {
            try {
                load_files(ctx, dir);
            } catch (const std::exception& e) {
                error = e.what();
            }
        }
        share_outcome(error, "the outcome of rank 0's load");
        broadcast_arena(ctx, model_.params(), "the loaded parameters");
        if (model_.has_target()) broadcast_arena(ctx, model_.target_params(), "the loaded EMA target");
        auto st = adamw_.state();
        for (auto& [name, buf] : st.buffers)
            comm_->broadcast(ctx, long(buf->size()), buf->data(), 0, "the loaded AdamW moments");
        std::int64_t counters[5] = {step_, epoch_, it_, micro_, std::int64_t(adamw_.step_count())};
        comm_->broadcast_host(counters, sizeof counters, 0, "the loaded counters");
        step_ = counters[0];
        epoch_ = counters[1];
        it_ = counters[2];
        micro_ = counters[3];
        adamw_.set_step_count(std::uint64_t(counters[4]));
        // the global partial gradient of a mid-cycle save (zero otherwise): every rank adds its own
        // micro-batches to it, and the step's mean over ranks is then the uninterrupted step's
        auto& grads = model_.params().grads();
        comm_->broadcast(ctx, long(grads.size()), grads.data(), 0, "the loaded partial gradient");
    }
    void load(const std::filesystem::path& dir)
        requires std::same_as<Backend, backend::Cpu>
    {
        load(backend::Cpu(), dir);
    }

private:
    void save_files(const Backend& ctx, const std::filesystem::path& dir, const std::map<std::string, std::string>& metadata) {
        namespace fs = std::filesystem;
        std::uint64_t partial = static_cast<std::uint64_t>(micro_ % cfg_.accumulation);
        std::vector<optim::OptimizerStateRef<T, Backend>> refs{adamw_.state()};
        if (partial != 0) refs.push_back(partial_gradient(&partial));
        require_finite(ctx, refs);  // before anything in dir is touched
        fs::create_directories(dir);
        finish_interrupted_save(dir);
        remove_stale_temporaries(dir);
        std::vector<io::NamedArena<T, Backend>> arenas{{"", model_.params()}};
        if (model_.has_target()) arenas.push_back({"target.", model_.target_params()});
        const std::map<std::string, std::string> pair = pair_metadata();
        std::map<std::string, std::string> ck_meta = metadata;
        for (const auto& [k, v] : pair) ck_meta[k] = v;  // ours win over a caller's same key
        io::TrainState st;
        st.step = step_;
        st.epoch = epoch_;
        st.iteration = it_;
        st.integers["micro"] = micro_;
        st.integers["seed"] = static_cast<std::int64_t>(cfg_.seed);
        // Inside an accumulation cycle the gradient summed so far is part of the state: without it
        // the resumed run would step with the later micro-batches' gradient only.
        const fs::path stage = dir / (std::string(kStagePrefix) + std::to_string(step_) + "-" + std::to_string(micro_) +
                                      std::string(kStageSuffix));
        const fs::path ck = dir / kCheckpoint, ts = dir / kTrainState;
        try {
            fs::remove_all(stage);
            fs::create_directory(stage);
            io::save_params<T>(ctx, stage / kCheckpoint, arenas, ck_meta);
            io::save_train_state<T, Backend>(ctx, stage / kTrainState, st, refs, pair);
        } catch (const std::exception& e) {
            std::error_code ec;
            fs::remove_all(stage, ec);
            LCMAE_FAIL("saving step " << step_ << " into '" << dir.string() << "' failed: " << e.what()
                                      << "; neither '" << ck.string() << "' nor '" << ts.string() << "' was replaced");
        }
        try {
            io::rename_replacing(stage / kCheckpoint, ck);
        } catch (const std::exception& e) {
            std::error_code ec;
            fs::remove_all(stage, ec);
            LCMAE_FAIL("saving step " << step_ << ": " << e.what() << "; neither '" << ck.string() << "' nor '"
                                      << ts.string() << "' was replaced");
        }
        try {
            io::rename_replacing(stage / kTrainState, ts);
        } catch (const std::exception& e) {
            // the staged state stays: the next save() or load() finishes this pair (see above)
            LCMAE_FAIL("saving step " << step_ << ": " << e.what() << "; '" << ck.string() << "' already holds step "
                                      << step_ << " and its training state waits in '" << stage.string()
                                      << "': the next save or resume finishes the pair, or refuses it if it cannot");
        }
        std::error_code ec;
        fs::remove_all(stage, ec);
        io::fsync_dir(dir);
    }
    void load_files(const Backend& ctx, const std::filesystem::path& dir) {
        finish_interrupted_save(dir);
        remove_stale_temporaries(dir);
        const auto ck_path = dir / kCheckpoint;
        const auto state_path = dir / kTrainState;
        const io::SafetensorsFile f(ck_path);
        const io::SafetensorsFile sf(state_path);
        check_pair(f, sf);
        check_config(f);
        // A state saved inside an accumulation cycle carries the partial gradient (see save()).
        const bool mid_cycle = sf.find(std::string(kPartial) + ".step") != nullptr;
        io::load_params(ctx, f, model_.params(), "",
                        model_.has_target() ? io::Strictness::IgnoreUnexpected : io::Strictness::Strict);
        if (model_.has_target()) io::load_params(ctx, f, model_.target_params(), "target.", io::Strictness::IgnoreUnexpected);
        io::TrainState st;
        std::uint64_t partial = 0;
        std::vector<optim::OptimizerStateRef<T, Backend>> refs{adamw_.state()};
        if (mid_cycle) refs.push_back(partial_gradient(&partial));
        optim::zero_grad(ctx, model_.params());  // a mid-cycle state then restores its partial gradient over this
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
    }

    /// Rank 0's error message (empty: success) to every rank; all throw it (dist::CollectiveError),
    /// or none does.
    void share_outcome(const std::string& error, const char* what) const {
        std::uint64_t len = error.size();
        comm_->broadcast_host(&len, sizeof len, 0, what);
        if (len == 0) return;
        std::string msg(len, ' ');
        comm_->broadcast_host(msg.data(), len, 0, what);
        throw dist::CollectiveError(msg);
    }
    void broadcast_arena(const Backend& ctx, ParamArena<T, Backend>& arena, const char* what) {
        comm_->broadcast(ctx, long(arena.values().size()), arena.values().data(), 0, what);
    }
    static const Comm& default_comm()
        requires std::default_initializable<Comm>
    {
        static const Comm c{};
        return c;
    }

public:
    const optim::AdamW<T, Backend>& optimizer() const noexcept { return adamw_; }

    /// Micro-batches done since the last optimiser step (0 at a step boundary).
    std::int64_t micro_step() const noexcept { return micro_ % cfg_.accumulation; }

    /// The run id written into both files of a save: a hash of everything a resumed run must share
    /// with the saving one (config_items(): the schedule and the model), so it is deterministic (an
    /// uninterrupted and a resumed run write byte-identical files) yet differs between runs
    /// configured differently.
    std::string run_id() const {
        std::uint64_t h = nn::name_hash(config_string());  // the project's FNV-1a (nn/init.hpp)
        static constexpr char hex[] = "0123456789abcdef";
        std::string out(16, '0');
        for (int i = 15; i >= 0; --i, h >>= 4) out[std::size_t(i)] = hex[h & 15];
        return out;
    }

private:
    static constexpr const char* kPartial = "partial_grad";
    static constexpr const char* kCheckpoint = "checkpoint.safetensors";
    static constexpr const char* kTrainState = "train_state.safetensors";
    static constexpr const char* kStagePrefix = ".save-";
    static constexpr const char* kStageSuffix = ".tmp";

    std::map<std::string, std::string> pair_metadata() const {
        return {{"lcmae_step", std::to_string(step_)}, {"lcmae_micro", std::to_string(micro_)}, {"lcmae_run_id", run_id()},
                {"lcmae_config", config_string()}};
    }

    /// Everything a resumed run must share with the run that saved: the schedule (TrainConfig,
    /// iterations per epoch) and the model (structure and numbers), as "key=value;..." in both files.
    std::vector<std::pair<std::string, std::string>> config_items() const {
        const models::ModelSpec& m = model_.spec();
        std::vector<std::pair<std::string, std::string>> v;
        const auto add = [&](const char* k, const auto& x) {
            std::ostringstream os;
            os.precision(17);
            os << x;
            v.emplace_back(k, os.str());
        };
        // the global batch (and its planned maximum): what a run with another number of ranks must share
        add("seed", cfg_.seed); add("batch", global_batch()); add("accumulation", cfg_.accumulation);
        add("epochs", cfg_.epochs); add("warmup_epochs", cfg_.warmup_epochs); add("blr", cfg_.blr);
        add("lr_scaling", int(cfg_.lr_scaling)); add("min_lr", cfg_.min_lr); add("weight_decay", cfg_.weight_decay);
        add("max_grad_norm", cfg_.max_grad_norm); add("ema_base", cfg_.ema_base); add("iters_per_epoch", iters_per_epoch_);
        add("encoder", std::to_string(m.encoder.dim) + "x" + std::to_string(m.encoder.depth) + "x" +
                           std::to_string(m.encoder.heads) + " patch " + std::to_string(m.encoder.patch) + " image " +
                           std::to_string(m.encoder.image) + " channels " + std::to_string(m.encoder.channels));
        add("decoder", std::to_string(m.decoder.dim) + "x" + std::to_string(m.decoder.depth) + "x" +
                           std::to_string(m.decoder.heads));
        add("heads", std::to_string(m.head_hidden) + " " + std::to_string(m.projector_depth) + "/" +
                         std::to_string(m.predictor_depth));
        add("loss", int(m.loss)); add("guidance", int(m.guidance)); add("pool", int(m.pool)); add("guided", int(m.guided));
        add("views", int(m.views)); add("baseline", int(m.baseline)); add("mask_ratio", m.mask_ratio);
        add("simmim_mask_ratio", m.simmim_mask_ratio); add("simmim_block", m.simmim_block);
        add("target_mask_ratio", m.target_mask_ratio); add("alpha", m.alpha); add("temperature", m.temperature);
        add("smooth_l1_beta", m.smooth_l1_beta); add("norm_pix", int(m.norm_pix)); add("max_batch", m.max_batch * world());
        return v;
    }
    std::string config_string() const {
        std::string out;
        for (const auto& [k, x] : config_items()) out += k + "=" + x + ";";
        return out;
    }
    /// Refuses (or, with allow_config_change, warns about) a saved run configured differently.
    void check_config(const io::SafetensorsFile& f) const {
        const auto it = f.metadata().find("lcmae_config");
        if (it == f.metadata().end()) return;  // written before the configuration was recorded
        std::map<std::string, std::string> saved;
        std::string_view rest = it->second;
        while (!rest.empty()) {
            const auto semi = rest.find(';');
            const std::string_view item = rest.substr(0, semi);
            const auto eq = item.find('=');
            if (eq != std::string_view::npos) saved[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
            if (semi == std::string_view::npos) break;
            rest.remove_prefix(semi + 1);
        }
        std::ostringstream diff;
        int n = 0;
        for (const auto& [k, now] : config_items()) {
            const auto s = saved.find(k);
            const std::string was = s == saved.end() ? std::string("(not recorded)") : s->second;
            if (was != now) diff << (n++ ? ", " : "") << k << " " << was << " -> " << now;
        }
        if (n == 0) return;
        if (cfg_.allow_config_change) {
            std::fprintf(stderr, "warning: resuming '%s' with %d changed setting(s): %s\n", f.path().c_str(), n,
                         diff.str().c_str());
            return;
        }
        LCMAE_FAIL("'" << f.path() << "' was saved by a run configured differently (" << n << " setting(s): " << diff.str()
                       << "); resume continues exactly only with the same configuration (allow_config_change / "
                          "--allow-config-change continues anyway)");
    }

    /// Refuses a checkpoint and a training state that do not come from the same save.
    static void check_pair(const io::SafetensorsFile& ck, const io::SafetensorsFile& ts) {
        static constexpr const char* keys[] = {"lcmae_step", "lcmae_micro", "lcmae_run_id"};
        const auto get = [](const io::SafetensorsFile& f, const char* k) -> std::string {
            const auto it = f.metadata().find(k);
            return it == f.metadata().end() ? std::string("(none)") : it->second;
        };
        bool any = false, same = true;
        for (const char* k : keys) {
            any = any || f_has(ck, k) || f_has(ts, k);
            same = same && get(ck, k) == get(ts, k);
        }
        if (!any) return;  // a pair written before these metadata existed
        LCMAE_CHECK(same, "the checkpoint and the training state come from different saves, refusing to resume: '"
                              << ck.path() << "' is step " << get(ck, "lcmae_step") << " (micro-batch "
                              << get(ck, "lcmae_micro") << ", run " << get(ck, "lcmae_run_id") << ") but '" << ts.path()
                              << "' is step " << get(ts, "lcmae_step") << " (micro-batch " << get(ts, "lcmae_micro")
                              << ", run " << get(ts, "lcmae_run_id")
                              << ") and no staged state of the checkpoint's save was left to finish it; resume from an intact save");
    }
    static bool f_has(const io::SafetensorsFile& f, const char* k) { return f.metadata().count(k) != 0; }

    /// A save killed between its two renames left dir/checkpoint.safetensors of the new save and
    /// the new training state alone in its staging directory: rename that state into place when its
    /// step, micro-batch counter and run id are the checkpoint's (so the pair is that save's). Any
    /// other state of the staging directories is left to remove_stale_temporaries(): a save killed
    /// before its first rename never touched the previous pair. Returns whether a save was finished.
    static bool finish_interrupted_save(const std::filesystem::path& dir) {
        namespace fs = std::filesystem;
        std::error_code ec;
        fs::directory_iterator it(dir, ec), end;
        if (ec) return false;
        std::vector<fs::path> stages;
        for (; it != end; it.increment(ec)) {
            if (ec) break;
            if (is_stage_name(it->path().filename().string()) && it->is_directory(ec)) stages.push_back(it->path());
        }
        const fs::path ck = dir / kCheckpoint;
        for (const auto& stage : stages) {
            if (fs::exists(stage / kCheckpoint, ec) || !fs::is_regular_file(stage / kTrainState, ec) || !fs::is_regular_file(ck, ec))
                continue;
            try {
                const io::SafetensorsFile staged(stage / kTrainState), checkpoint(ck);
                bool any = false, same = true;
                for (const char* k : {"lcmae_step", "lcmae_micro", "lcmae_run_id"}) {
                    const auto a = staged.metadata().find(k), b = checkpoint.metadata().find(k);
                    any = any || a != staged.metadata().end();
                    same = same && a != staged.metadata().end() && b != checkpoint.metadata().end() && a->second == b->second;
                }
                if (!any || !same) continue;
                io::rename_replacing(stage / kTrainState, dir / kTrainState);
                io::fsync_dir(dir);
                fs::remove_all(stage, ec);
                return true;
            } catch (const std::exception&) {
                continue;  // unreadable: not a finished state; removed as stale below
            }
        }
        return false;
    }

    /// Removes what a killed save left in `dir`: our staging directories (".save-<step>-<micro>.tmp")
    /// and AtomicFileWriter temporaries of our two files. Nothing else is touched.
    static void remove_stale_temporaries(const std::filesystem::path& dir) {
        namespace fs = std::filesystem;
        io::remove_stale_temp_files(dir, {kCheckpoint, kTrainState});
        std::error_code ec;
        fs::directory_iterator it(dir, ec), end;
        if (ec) return;
        std::vector<fs::path> stale;
        for (; it != end; it.increment(ec)) {
            if (ec) break;
            if (is_stage_name(it->path().filename().string()) && it->is_directory(ec)) stale.push_back(it->path());
        }
        for (const auto& p : stale) fs::remove_all(p, ec);
    }
    static bool is_stage_name(std::string_view n) {
        const std::string_view pre = kStagePrefix, suf = kStageSuffix;
        if (n.size() <= pre.size() + suf.size() || !n.starts_with(pre) || !n.ends_with(suf)) return false;
        const std::string_view mid = n.substr(pre.size(), n.size() - pre.size() - suf.size());
        const auto dash = mid.find('-');
        if (dash == std::string_view::npos || dash == 0 || dash + 1 == mid.size()) return false;
        for (std::size_t i = 0; i < mid.size(); ++i)
            if (i != dash && (mid[i] < '0' || mid[i] > '9')) return false;
        return true;
    }

    /// Throws, naming the step, the arena and the tensor, if any value that save() would write is
    /// not finite. A host-memory backend is scanned in place; any other is downloaded first.
    void require_finite(const Backend& ctx, const std::vector<optim::OptimizerStateRef<T, Backend>>& refs) const {
        const auto& online = model_.params();
        std::vector<std::size_t> all(online.entries().size());
        for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
        check_buffer(ctx, "online", online, online.values(), all);
        if (model_.has_target()) {
            const auto& target = model_.target_params();
            std::vector<std::size_t> tall(target.entries().size());
            for (std::size_t i = 0; i < tall.size(); ++i) tall[i] = i;
            check_buffer(ctx, "target", target, target.values(), tall);
        }
        for (const auto& o : refs)
            for (const auto& [bname, buf] : o.buffers)
                check_buffer(ctx, o.name == kPartial ? std::string(kPartial) : bname, *o.arena, *buf, o.entry_indices);
    }
    template <class Buf>
    void check_buffer(const Backend& ctx, const std::string& what, const ParamArena<T, Backend>& arena, const Buf& buf,
                      const std::vector<std::size_t>& entries) const {
        std::vector<T> staging;
        const T* host = nullptr;
        if constexpr (Backend::host_memory) {
            (void)ctx;
            host = buf.data();
        } else {
            staging.resize(buf.size());
            download(ctx, static_cast<long>(staging.size()), dptr<Backend, const T>(buf.data()), staging.data());
            host = staging.data();
        }
        for (std::size_t idx : entries) {
            const ParamEntry& e = arena.entries()[idx];
            for (std::size_t i = 0; i < e.slot.count; ++i)
                if (!std::isfinite(static_cast<double>(host[e.slot.offset + i])))
                    LCMAE_FAIL("refusing to save step " << step_ << ": the " << what << " arena holds a non-finite value ("
                                                        << host[e.slot.offset + i] << ") in '" << e.name << "' at index " << i
                                                        << "; the last saved files were left untouched");
        }
    }
    /// The gradient summed so far in the current accumulation cycle, as a train-state entry
    /// ("partial_grad.sum.<name>" for every optimised tensor; its "step" is the micro-batch count).
    optim::OptimizerStateRef<T, Backend> partial_gradient(std::uint64_t* count) {
        return {kPartial, &model_.params(), {{"sum", &model_.params().grads()}}, count, adamw_.active_entries()};
    }

    Model& model_;
    TrainConfig cfg_;
    std::int64_t iters_per_epoch_;
    const Comm* comm_;
    std::unique_ptr<dist::GradientSync<Backend, T>> grad_sync_;  // null: the all-reduce follows the backward
    optim::AdamW<T, Backend> adamw_;
    std::unique_ptr<optim::EmaUpdater<T, Backend>> ema_;
    double lr_max_ = 0;
    std::int64_t step_ = 0, epoch_ = 0, it_ = 0, micro_ = 0;
};

}  // namespace lcmae::train
