// lcmae/optim/lars.hpp - LARS as in MAE's linear-probe protocol (SPEC 4).
//
// For every trainable entry, with g = grad * grad_scale:
//   if the entry has more than one dim:  d = g + wd * p;  q = trust * |p| / |d|
//        (q = 1 when |p| = 0 or |d| = 0)
//   else (1-D: biases, norms):          d = g;           q = 1          (no decay, no trust ratio)
//   mu = momentum * mu + q * d;   p -= lr * mu
// Defaults: momentum 0.9, trust coefficient 0.001, weight decay 0. The per-tensor norms make this
// two short passes per entry (norms, then update); nothing is allocated in step().
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/buffer.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/optim/state.hpp"

namespace lcmae::optim {

struct LarsConfig {
    double momentum = 0.9;
    double trust_coefficient = 0.001;
    double weight_decay = 0.0;
};

template <class T>
class Lars {
public:
    using Predicate = std::function<bool(const ParamEntry&)>;

    explicit Lars(ParamArena<T>& arena, LarsConfig cfg = {}, Predicate trainable = {}) : arena_(&arena), cfg_(cfg) {
        LCMAE_CHECK(arena.allocated(), "LARS needs an allocated arena");
        LCMAE_CHECK(cfg.momentum >= 0 && cfg.momentum < 1, "LARS momentum must lie in [0, 1), got " << cfg.momentum);
        LCMAE_CHECK(cfg.trust_coefficient > 0, "LARS trust coefficient must be positive, got " << cfg.trust_coefficient);
        LCMAE_CHECK(cfg.weight_decay >= 0, "LARS weight decay must be non-negative, got " << cfg.weight_decay);
        const auto& entries = arena.entries();
        for (std::size_t i = 0; i < entries.size(); ++i)
            if (entries[i].kind == EntryKind::Parameter && (!trainable || trainable(entries[i]))) active_.push_back(i);
        mu_.resize(arena.planned_size());
    }

    void step(double lr, double grad_scale = 1.0) {
        LCMAE_CHECK(std::isfinite(lr) && lr >= 0, "LARS lr must be finite and >= 0, got " << lr);
        const T mom = T(cfg_.momentum), lr_t = T(lr), gs = T(grad_scale);
        for (std::size_t idx : active_) {
            const ParamEntry& e = arena_->entries()[idx];
            T* p = arena_->value(e.slot);
            const T* g = arena_->grad(e.slot);
            T* mu = mu_.data() + e.slot.offset;
            const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(e.slot.count);
            if (e.shape.rank() > 1) {
                const T wd = T(cfg_.weight_decay);
                double pn = 0.0, dn = 0.0;
#pragma omp parallel for simd reduction(+ : pn, dn) schedule(static) if (n > 65536)
                for (std::ptrdiff_t i = 0; i < n; ++i) {
                    const T d = g[i] * gs + wd * p[i];
                    pn += double(p[i]) * double(p[i]);
                    dn += double(d) * double(d);
                }
                pn = std::sqrt(pn);
                dn = std::sqrt(dn);
                const T q = (pn > 0 && dn > 0) ? T(cfg_.trust_coefficient * pn / dn) : T(1);
#pragma omp parallel for simd schedule(static) if (n > 65536)
                for (std::ptrdiff_t i = 0; i < n; ++i) {
                    const T d = (g[i] * gs + wd * p[i]) * q;
                    mu[i] = mom * mu[i] + d;
                    p[i] -= lr_t * mu[i];
                }
            } else {
#pragma omp parallel for simd schedule(static) if (n > 65536)
                for (std::ptrdiff_t i = 0; i < n; ++i) {
                    mu[i] = mom * mu[i] + g[i] * gs;
                    p[i] -= lr_t * mu[i];
                }
            }
        }
        ++step_;
    }

    void reset() {
        mu_.fill(T(0));
        step_ = 0;
    }
    std::uint64_t step_count() const noexcept { return step_; }
    void set_step_count(std::uint64_t s) noexcept { step_ = s; }
    const LarsConfig& config() const noexcept { return cfg_; }
    AlignedBuffer<T>& momentum_buffer() noexcept { return mu_; }
    const AlignedBuffer<T>& momentum_buffer() const noexcept { return mu_; }
    const std::vector<std::size_t>& active_entries() const noexcept { return active_; }

    /// A handle for save_train_state / load_train_state; tensors "<name>.momentum_buffer.<entry>".
    OptimizerStateRef<T> state(std::string name = "lars") {
        return {std::move(name), arena_, {{"momentum_buffer", &mu_}}, &step_, active_};
    }

private:
    ParamArena<T>* arena_;
    LarsConfig cfg_;
    std::vector<std::size_t> active_;
    AlignedBuffer<T> mu_;
    std::uint64_t step_ = 0;
};

}  // namespace lcmae::optim
