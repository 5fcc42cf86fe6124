// lcmae/optim/lars.hpp - LARS as in MAE's linear-probe protocol (SPEC 4).
//
// For every trainable entry, with g = grad * grad_scale:
//   if the entry has more than one dim:  d = g + wd * p;  q = trust * |p| / |d|
//        (q = 1 when |p| = 0 or |d| = 0)
//   else (1-D: biases, norms):          d = g;           q = 1          (no decay, no trust ratio)
//   mu = momentum * mu + q * d;   p -= lr * mu
// Defaults: momentum 0.9, trust coefficient 0.001, weight decay 0. A step is one lars_update op over
// the arena (backend/ops.hpp) with one segment per trainable entry (never merged: the norms are per
// tensor); the per-tensor norms make it two short passes per entry on the CPU. Nothing is
// allocated in step(); the momentum buffer lives in the backend's memory.
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/optim/state.hpp"

namespace lcmae::optim {

struct LarsConfig {
    double momentum = 0.9;
    double trust_coefficient = 0.001;
    double weight_decay = 0.0;
};

template <class T, class Backend = backend::Cpu>
class Lars {
public:
    using Predicate = std::function<bool(const ParamEntry&)>;
    using Arena = ParamArena<T, Backend>;
    using Buffer = dbuffer<Backend, T>;

    explicit Lars(Arena& arena, LarsConfig cfg = {}, Predicate trainable = {}) : arena_(&arena), cfg_(cfg) {
        LCMAE_CHECK(arena.allocated(), "LARS needs an allocated arena");
        LCMAE_CHECK(cfg.momentum >= 0 && cfg.momentum < 1, "LARS momentum must lie in [0, 1), got " << cfg.momentum);
        LCMAE_CHECK(cfg.trust_coefficient > 0, "LARS trust coefficient must be positive, got " << cfg.trust_coefficient);
        LCMAE_CHECK(cfg.weight_decay >= 0, "LARS weight decay must be non-negative, got " << cfg.weight_decay);
        const auto& entries = arena.entries();
        std::vector<Segment> segs;
        for (std::size_t i = 0; i < entries.size(); ++i)  // host: the entry table
            if (entries[i].kind == EntryKind::Parameter && (!trainable || trainable(entries[i]))) {
                active_.push_back(i);
                // decay marks a matrix: weight decay and the trust ratio apply
                segs.push_back({entries[i].slot.offset, entries[i].slot.count, 1.0, entries[i].shape.rank() > 1});
            }
        segments_.set(std::move(segs));
        mu_.resize(arena.planned_size());
        norms_.resize(2 * active_.size() + 1);
    }

    /// One LARS step (one lars_update op); never waits for the backend.
    void step(const Backend& ctx, double lr, double grad_scale = 1.0) {
        LCMAE_CHECK(std::isfinite(lr) && lr >= 0, "LARS lr must be finite and >= 0, got " << lr);
        ops::LarsStep st;
        st.lr = lr;
        st.momentum = cfg_.momentum;
        st.trust_coefficient = cfg_.trust_coefficient;
        st.weight_decay = cfg_.weight_decay;
        st.grad_scale = grad_scale;
        lars_update(ctx, segments_.size(), segments_.host().data(), segments_.device(ctx), st, arena_->values().data(),
                    arena_->grads().data(), mu_.data(), norms_.data());
        ++step_;
    }
    /// On the CPU without a context (the current OpenMP thread count).
    void step(double lr, double grad_scale = 1.0)
        requires std::same_as<Backend, backend::Cpu>
    {
        step(backend::Cpu(), lr, grad_scale);
    }

    void reset(const Backend& ctx) {
        fill(ctx, static_cast<long>(mu_.size()), T(0), mu_.data());
        step_ = 0;
    }
    void reset()
        requires std::same_as<Backend, backend::Cpu>
    {
        reset(backend::Cpu());
    }
    std::uint64_t step_count() const noexcept { return step_; }
    void set_step_count(std::uint64_t s) noexcept { step_ = s; }
    const LarsConfig& config() const noexcept { return cfg_; }
    Buffer& momentum_buffer() noexcept { return mu_; }
    const Buffer& momentum_buffer() const noexcept { return mu_; }
    const std::vector<std::size_t>& active_entries() const noexcept { return active_; }
    /// One segment per optimised entry (decay = a matrix).
    const std::vector<Segment>& segments() const noexcept { return segments_.host(); }

    /// A handle for save_train_state / load_train_state; tensors "<name>.momentum_buffer.<entry>".
    OptimizerStateRef<T, Backend> state(std::string name = "lars") {
        return {std::move(name), arena_, {{"momentum_buffer", &mu_}}, &step_, active_};
    }

private:
    Arena* arena_;
    LarsConfig cfg_;
    std::vector<std::size_t> active_;
    detail::DeviceTable<Segment, Backend> segments_;
    Buffer mu_;
    dbuffer<Backend, double> norms_;  // lars_update's per-segment scratch (device backends)
    std::uint64_t step_ = 0;
};

}  // namespace lcmae::optim
