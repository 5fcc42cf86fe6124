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
// Memory: the two moments are AlignedBuffers of the arena's planned size, so moment i belongs to
// value i and a state file stores them with the arena's own table. Entries that touch (no padding
// between them, i.e. sizes that are multiples of 16 as in every ViT preset) with equal
// (lr scale, decay) are merged into one segment at construction, so step() is a few long loops over
// contiguous memory and allocates nothing. Padding is never read or written.
//
// Gradient accumulation over k micro-batches: zero_grad() once, run forward/backward k times (every
// layer accumulates into the grads with +=), then step(lr, 1.0 / k) - the grad scale turns the sum
// into the mean without an extra pass. With data parallelism, all-reduce (sum) the grad buffer first
// and use grad_scale = 1 / (k * ranks).
//
// Gradient-norm clipping (max_grad_norm > 0): the global L2 norm of the scaled trainable grads is
// computed first (a second pass), then clip = min(1, max_norm / (norm + 1e-6)) as
// torch.nn.utils.clip_grad_norm_; grads themselves are not modified.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/buffer.hpp"
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

template <class T>
class AdamW {
public:
    using Predicate = std::function<bool(const ParamEntry&)>;

    /// `trainable` (optional) further restricts which Parameter entries are optimised.
    explicit AdamW(ParamArena<T>& arena, AdamWConfig cfg = {}, Predicate trainable = {})
        : arena_(&arena), cfg_(cfg) {
        LCMAE_CHECK(arena.allocated(), "AdamW needs an allocated arena");
        LCMAE_CHECK(cfg.beta1 >= 0 && cfg.beta1 < 1 && cfg.beta2 >= 0 && cfg.beta2 < 1,
                    "AdamW betas must lie in [0, 1), got (" << cfg.beta1 << ", " << cfg.beta2 << ")");
        LCMAE_CHECK(cfg.eps > 0, "AdamW eps must be positive, got " << cfg.eps);
        LCMAE_CHECK(cfg.weight_decay >= 0, "AdamW weight decay must be non-negative, got " << cfg.weight_decay);
        const auto& entries = arena.entries();
        for (std::size_t i = 0; i < entries.size(); ++i)
            if (entries[i].kind == EntryKind::Parameter && (!trainable || trainable(entries[i]))) active_.push_back(i);
        scales_.assign(entries.size(), 1.0);
        m_.resize(arena.planned_size());
        v_.resize(arena.planned_size());
        build_segments();
    }

    /// Per-entry lr multipliers, one per arena entry in table order (see layer_lr_scales()).
    void set_lr_scales(std::vector<double> scales) {
        LCMAE_CHECK(scales.size() == arena_->entries().size(),
                    "set_lr_scales got " << scales.size() << " scales for " << arena_->entries().size() << " entries");
        for (double s : scales) LCMAE_CHECK(s >= 0 && std::isfinite(s), "lr scale " << s << " is not a finite value >= 0");
        scales_ = std::move(scales);
        build_segments();
    }

    /// One optimiser step at learning rate `lr`. Returns the global gradient norm (after
    /// grad_scale, before clipping) when clipping is on, NaN otherwise.
    double step(double lr, double grad_scale = 1.0) {
        LCMAE_CHECK(std::isfinite(lr) && lr >= 0, "AdamW lr must be finite and >= 0, got " << lr);
        double norm = std::numeric_limits<double>::quiet_NaN();
        double gs = grad_scale;
        if (cfg_.max_grad_norm > 0) {
            norm = grad_norm(grad_scale);
            gs *= clip_coefficient(norm, cfg_.max_grad_norm);
        }
        ++step_;
        const double t = static_cast<double>(step_);
        const double bc1 = 1.0 - std::pow(cfg_.beta1, t);
        const double bc2_sqrt = std::sqrt(1.0 - std::pow(cfg_.beta2, t));
        const T b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), omb1 = T(1.0 - cfg_.beta1), omb2 = T(1.0 - cfg_.beta2);
        const T eps = T(cfg_.eps), g_scale = T(gs), bc2s = T(bc2_sqrt);
        T* p = arena_->values().data();
        const T* g = arena_->grads().data();
        T* m = m_.data();
        T* v = v_.data();
        for (const Segment& s : segments_) {
            const double lr_e = lr * s.lr_scale;
            const T decay = T(s.decay ? 1.0 - lr_e * cfg_.weight_decay : 1.0);
            const T step_size = T(lr_e / bc1);
            // chunks small enough to stay in L1/L2, so the three Eigen passes (vectorised sqrt and
            // division, which plain loops are not while sqrt may set errno) read memory once
            const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(s.count);
            const std::ptrdiff_t chunks = (n + kChunk - 1) / kChunk;
            T* ps = p + s.offset;
            const T* gs_ptr = g + s.offset;
            T* ms = m + s.offset;
            T* vs = v + s.offset;
#pragma omp parallel for schedule(static) if (n > 65536)
            for (std::ptrdiff_t c = 0; c < chunks; ++c) {
                const std::ptrdiff_t off = c * kChunk;
                const std::ptrdiff_t len = std::min(kChunk, n - off);
                const ConstArr gc(gs_ptr + off, len);
                Arr mc(ms + off, len), vc(vs + off, len), pc(ps + off, len);
                mc = b1 * mc + omb1 * (gc * g_scale);
                vc = b2 * vc + omb2 * (gc * g_scale).square();
                pc = pc * decay - step_size * mc / (vc.sqrt() / bc2s + eps);
            }
        }
        return norm;
    }

    /// Global L2 norm of the optimised entries' grads times grad_scale.
    double grad_norm(double grad_scale = 1.0) const {
        double acc = 0.0;
        for (const Segment& s : segments_)
            acc += detail::sum_squares(arena_->grads().data() + s.offset, s.count, grad_scale);
        return std::sqrt(acc);
    }

    /// Zeroes the moments and the step count.
    void reset() {
        m_.fill(T(0));
        v_.fill(T(0));
        step_ = 0;
    }

    std::uint64_t step_count() const noexcept { return step_; }
    void set_step_count(std::uint64_t s) noexcept { step_ = s; }
    const AdamWConfig& config() const noexcept { return cfg_; }
    AlignedBuffer<T>& exp_avg() noexcept { return m_; }
    AlignedBuffer<T>& exp_avg_sq() noexcept { return v_; }
    const AlignedBuffer<T>& exp_avg() const noexcept { return m_; }
    const AlignedBuffer<T>& exp_avg_sq() const noexcept { return v_; }
    const ParamArena<T>& arena() const noexcept { return *arena_; }
    const std::vector<Segment>& segments() const noexcept { return segments_; }
    /// Indices (into arena().entries()) of the optimised entries.
    const std::vector<std::size_t>& active_entries() const noexcept { return active_; }

    /// A handle for save_train_state / load_train_state; tensors "<name>.exp_avg.<entry>" etc.
    OptimizerStateRef<T> state(std::string name = "adamw") {
        return {std::move(name), arena_, {{"exp_avg", &m_}, {"exp_avg_sq", &v_}}, &step_, active_};
    }

private:
    static constexpr std::ptrdiff_t kChunk = 2048;
    using Arr = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
    using ConstArr = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

    void build_segments() {
        segments_.clear();
        const auto& entries = arena_->entries();
        for (std::size_t idx : active_) {
            const ParamEntry& e = entries[idx];
            if (e.slot.count == 0) continue;
            const double scale = scales_[idx];
            if (!segments_.empty()) {
                Segment& last = segments_.back();
                if (last.lr_scale == scale && last.decay == e.weight_decay && last.offset + last.count == e.slot.offset) {
                    last.count = e.slot.offset + e.slot.count - last.offset;
                    continue;
                }
            }
            segments_.push_back({e.slot.offset, e.slot.count, scale, e.weight_decay});
        }
    }

    ParamArena<T>* arena_;
    AdamWConfig cfg_;
    std::vector<std::size_t> active_;
    std::vector<double> scales_;
    std::vector<Segment> segments_;
    AlignedBuffer<T> m_, v_;
    std::uint64_t step_ = 0;
};

}  // namespace lcmae::optim
