// lcmae/optim/adamw.hpp - AdamW over a parameter arena, as torch.optim.AdamW (SPEC 4).
//
// Per trainable element, at step t (1-based), with lr_e = lr * lr_scale(entry):
//   g  = grad * grad_scale * clip            (clip = 1 unless gradient-norm clipping is on)
//   p *= 1 - lr_e * wd                       (only entries with weight_decay == true)
//   m  = b1 m + (1 - b1) g
//   v  = b2 v + (1 - b2) g^2
//   p -= (lr_e / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Defaults betas (0.9, 0.95), eps 1e-8, wd 0.05 (SPEC 4 pre-training; fine-tuning uses 0.999).
// Entries of kind Buffer (BatchNorm running statistics) are never touched; an optional predicate
// can exclude more (e.g. a frozen encoder).
//
// Memory: the two moments are buffers of the arena's planned size in the backend's memory, so
// moment i belongs to value i and a state file stores them with the arena's own table. Entries that
// touch (no padding between them, i.e. sizes that are multiples of 16 as in every ViT preset) with
// equal (lr scale, decay) are merged into one segment at construction, so a step is one
// adamw_update op over the whole arena (backend/ops.hpp) and allocates nothing. Padding is never
// read or written. The segment table is host data; its backend copy is uploaded at the first step
// after it changed.
//
// Backends: step(ctx, lr, grad_scale) runs on any backend and never waits for it (the clipping
// norm stays in backend memory, read by the update op; last_grad_norm(ctx) downloads it on
// request). On the CPU step(lr, grad_scale) also works without a context and returns the norm.
//
// Gradient accumulation over k micro-batches: zero_grad(ctx, arena) once, run forward/backward k
// times (every layer accumulates into the grads with +=), then step(ctx, lr, 1.0 / k) - the grad scale turns the sum
// into the mean without an extra pass. With data parallelism, all-reduce (sum) the grad buffer first
// and use grad_scale = 1 / (k * ranks).
//
// Gradient-norm clipping (max_grad_norm > 0): the global L2 norm of the scaled trainable grads is
// computed first (a second pass), then clip = min(1, max_norm / (norm + 1e-6)) as
// torch.nn.utils.clip_grad_norm_; grads themselves are not modified.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/state.hpp"

namespace lcmae::optim {

struct AdamWConfig {
    double beta1 = 0.9;
    double beta2 = 0.95;
    double eps = 1e-8;
    double weight_decay = 0.05;
    double max_grad_norm = 0.0;  // 0 = no clipping
};

template <class T, class Backend = backend::Cpu>
class AdamW {
public:
    using Predicate = std::function<bool(const ParamEntry&)>;
    using Arena = ParamArena<T, Backend>;
    using Buffer = dbuffer<Backend, T>;

    /// `trainable` (optional) further restricts which Parameter entries are optimised.
    explicit AdamW(Arena& arena, AdamWConfig cfg = {}, Predicate trainable = {}) : arena_(&arena), cfg_(cfg) {
        LCMAE_CHECK(arena.allocated(), "AdamW needs an allocated arena");
        LCMAE_CHECK(cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1,
                    "AdamW betas must lie in [0, 1), got (" << cfg.beta1 << ", " << cfg.beta2 << ")");
        LCMAE_CHECK(cfg.eps > 0, "AdamW eps must be positive, got " << cfg.eps);
        LCMAE_CHECK(cfg.weight_decay >= 0, "AdamW weight decay must be non-negative, got " << cfg.weight_decay);
        const auto& entries = arena.entries();
        for (std::size_t i = 0; i < entries.size(); ++i)  // host: the entry table
            if (entries[i].kind == EntryKind::Parameter && (!trainable || trainable(entries[i]))) active_.push_back(i);
        scales_.assign(entries.size(), 1.0);
        m_.resize(arena.planned_size());
        v_.resize(arena.planned_size());
        sumsq_.resize(1);
        build_segments();
    }

    /// Per-entry lr multipliers, one per arena entry in table order (see layer_lr_scales()).
    void set_lr_scales(std::vector<double> scales) {
        LCMAE_CHECK(scales.size() == arena_->entries().size(),
                    "set_lr_scales got " << scales.size() << " scales for " << arena_->entries().size() << " entries");
        for (double s : scales)  // host: the lr scales
            LCMAE_CHECK(s >= 0 && std::isfinite(s), "lr scale " << s << " is not a finite value >= 0");
        scales_ = std::move(scales);
        build_segments();
    }

    /// One optimiser step at learning rate `lr`: one adamw_update op over the arena (after a
    /// grad_sum_squares op when clipping is on). Never waits for the backend.
    void step(const Backend& ctx, double lr, double grad_scale = 1.0) {
        LCMAE_CHECK(std::isfinite(lr) && lr >= 0, "AdamW lr must be finite and >= 0, got " << lr);
        const long nseg = segments_.size();
        const Segment* host_segs = segments_.host().data();
        const auto segs = segments_.device(ctx);
        dptr<Backend, const double> sumsq = nullptr;
        if (cfg_.max_grad_norm > 0) {
            grad_sum_squares(ctx, nseg, host_segs, segs, grad_scale, arena_->grads().data(), sumsq_.data());
            sumsq = sumsq_.data();
        }
        ++step_;
        const double t = static_cast<double>(step_);
        ops::AdamWStep st;
        st.lr = lr;
        st.beta1 = cfg_.beta1;
        st.beta2 = cfg_.beta2;
        st.eps = cfg_.eps;
        st.weight_decay = cfg_.weight_decay;
        st.bias_correction1 = 1.0 - std::pow(cfg_.beta1, t);
        st.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(cfg_.beta2, t));
        st.grad_scale = grad_scale;
        st.max_grad_norm = cfg_.max_grad_norm;
        adamw_update(ctx, nseg, host_segs, segs, st, sumsq, arena_->values().data(), arena_->grads().data(), m_.data(),
                     v_.data());
    }
    /// On the CPU without a context (the current OpenMP thread count). Returns the global gradient
    /// norm (after grad_scale, before clipping) when clipping is on, NaN otherwise.
    double step(double lr, double grad_scale = 1.0)
        requires std::same_as<Backend, backend::Cpu>
    {
        const backend::Cpu ctx;
        step(ctx, lr, grad_scale);
        return last_grad_norm(ctx);
    }

    /// The gradient norm the last clipped step used (a download: waits), NaN when clipping is off.
    double last_grad_norm(const Backend& ctx) const {
        if (!(cfg_.max_grad_norm > 0) || step_ == 0) return std::numeric_limits<double>::quiet_NaN();
        double host = 0;  // host result of the download
        download(ctx, 1, dptr<Backend, const double>(sumsq_.data()), &host);
        return std::sqrt(host);
    }
    /// The backend double holding the last clipped step's sum of squared (scaled) gradients, for
    /// callers that download several step scalars at once.
    dptr<Backend, const double> grad_sum_squares_device() const noexcept { return sumsq_.data(); }

    /// Global L2 norm of the optimised entries' grads times grad_scale (a download: waits).
    double grad_norm(const Backend& ctx, double grad_scale = 1.0) const {
        grad_sum_squares(ctx, segments_.size(), segments_.host().data(), segments_.device(ctx), grad_scale,
                         arena_->grads().data(), sumsq_.data());
        double host = 0;  // host result of the download
        download(ctx, 1, dptr<Backend, const double>(sumsq_.data()), &host);
        return std::sqrt(host);
    }
    double grad_norm(double grad_scale = 1.0) const
        requires std::same_as<Backend, backend::Cpu>
    {
        return grad_norm(backend::Cpu(), grad_scale);
    }

    /// Zeroes the moments and the step count.
    void reset(const Backend& ctx) {
        fill(ctx, static_cast<long>(m_.size()), T(0), m_.data());
        fill(ctx, static_cast<long>(v_.size()), T(0), v_.data());
        step_ = 0;
    }
    void reset()
        requires std::same_as<Backend, backend::Cpu>
    {
        reset(backend::Cpu());
    }

    std::uint64_t step_count() const noexcept { return step_; }
    void set_step_count(std::uint64_t s) noexcept { step_ = s; }
    const AdamWConfig& config() const noexcept { return cfg_; }
    Buffer& exp_avg() noexcept { return m_; }
    Buffer& exp_avg_sq() noexcept { return v_; }
    const Buffer& exp_avg() const noexcept { return m_; }
    const Buffer& exp_avg_sq() const noexcept { return v_; }
    const Arena& arena() const noexcept { return *arena_; }
    const std::vector<Segment>& segments() const noexcept { return segments_.host(); }
    /// Indices (into arena().entries()) of the optimised entries.
    const std::vector<std::size_t>& active_entries() const noexcept { return active_; }

    /// A handle for save_train_state / load_train_state; tensors "<name>.exp_avg.<entry>" etc.
    OptimizerStateRef<T, Backend> state(std::string name = "adamw") {
        return {std::move(name), arena_, {{"exp_avg", &m_}, {"exp_avg_sq", &v_}}, &step_, active_};
    }

private:
    void build_segments() {
        std::vector<Segment> segs;
        const auto& entries = arena_->entries();
        for (std::size_t idx : active_) {  // host: builds the segment table
            const ParamEntry& e = entries[idx];
            if (e.slot.count == 0) continue;
            const double scale = scales_[idx];
            if (!segs.empty()) {
                Segment& last = segs.back();
                if (last.lr_scale == scale && last.decay == e.weight_decay && last.offset + last.count == e.slot.offset) {
                    last.count = e.slot.offset + e.slot.count - last.offset;
                    continue;
                }
            }
            segs.push_back({e.slot.offset, e.slot.count, scale, e.weight_decay});
        }
        segments_.set(std::move(segs));
    }

    Arena* arena_;
    AdamWConfig cfg_;
    std::vector<std::size_t> active_;
    std::vector<double> scales_;
    detail::DeviceTable<Segment, Backend> segments_;
    Buffer m_, v_;
    mutable dbuffer<Backend, double> sumsq_;  // grad_sum_squares' result (backend memory)
    std::uint64_t step_ = 0;
};

}  // namespace lcmae::optim
