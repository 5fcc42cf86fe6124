// lcmae/optim/schedule.hpp - learning-rate and EMA-momentum schedules (SPEC 4 and 3).
//
// All schedules are pure functions of the position, so a resumed run only needs the position.
//
//   fractional_epoch(epoch, it, iters_per_epoch) = epoch + it / iters_per_epoch
//   lr(e) = lr_max * e / W                                                   for e < W
//         = min_lr + (lr_max - min_lr) * (1 + cos(pi (e - W) / (E - W))) / 2  otherwise
//   scaled_lr(blr, batch, Linear) = blr * batch / 256;  Sqrt: blr * sqrt(batch) / 4
//   ema_momentum(i, n, base) = 1 - (1 - base) * (1 + cos(pi i / n)) / 2   (base at 0, 1 at n)
//
// `batch` in the scaling rules is the effective batch: per-rank batch * accumulation steps * ranks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "lcmae/core/error.hpp"

namespace lcmae::optim {

/// Lr scaling rule (SPEC 4): linear (default) or square root.
enum class LrScaling { Linear, Sqrt };

/// The absolute lr from a base lr and the effective batch size.
inline double scaled_lr(double blr, std::int64_t effective_batch, LrScaling rule = LrScaling::Linear) {
    LCMAE_CHECK(effective_batch > 0, "the effective batch must be positive, got " << effective_batch);
    const double b = static_cast<double>(effective_batch);
    return rule == LrScaling::Linear ? blr * b / 256.0 : blr * std::sqrt(b) / 4.0;
}

/// epoch + it / iters_per_epoch: the schedule position of iteration `it` of epoch `epoch`.
inline double fractional_epoch(std::int64_t epoch, std::int64_t it, std::int64_t iters_per_epoch) {
    LCMAE_CHECK(iters_per_epoch > 0, "iters_per_epoch must be positive, got " << iters_per_epoch);
    return static_cast<double>(epoch) + static_cast<double>(it) / static_cast<double>(iters_per_epoch);
}

/// Linear warm-up then half-cosine decay, a function of the fractional epoch (SPEC 4, as MAE's
/// adjust_learning_rate).
struct WarmupCosine {
    double lr_max = 1.5e-4 * 4096 / 256;  // set from scaled_lr()
    double min_lr = 0.0;
    double warmup_epochs = 40;
    double epochs = 1600;

    void validate() const {
        LCMAE_CHECK(epochs > 0, "the schedule needs a positive number of epochs, got " << epochs);
        LCMAE_CHECK(warmup_epochs >= 0 && warmup_epochs <= epochs,
                    "warm-up epochs " << warmup_epochs << " must lie in [0, " << epochs << "]");
        LCMAE_CHECK(lr_max >= 0 && min_lr >= 0, "learning rates must be non-negative (lr_max " << lr_max << ", min_lr "
                                                                                            << min_lr << ")");
    }
    /// lr at fractional epoch `e`; e beyond `epochs` clamps to min_lr.
    double operator()(double e) const {
        validate();
        if (e < warmup_epochs) return lr_max * e / warmup_epochs;
        if (epochs <= warmup_epochs) return lr_max;
        const double t = std::min(1.0, (e - warmup_epochs) / (epochs - warmup_epochs));
        return min_lr + (lr_max - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
    }
    double at(std::int64_t epoch, std::int64_t it, std::int64_t iters_per_epoch) const {
        return (*this)(fractional_epoch(epoch, it, iters_per_epoch));
    }
    /// lr_max = scaled_lr(blr, batch) (the linear rule), then warm-up and cosine as given.
    static WarmupCosine from_blr(double blr, std::int64_t batch, double min_lr, double warmup_epochs, double epochs) {
        WarmupCosine s;
        s.lr_max = scaled_lr(blr, batch);
        s.min_lr = min_lr;
        s.warmup_epochs = warmup_epochs;
        s.epochs = epochs;
        return s;
    }
};

/// EMA momentum of optimiser step i of n: cosine from `base` (i = 0) to 1 (i = n).
inline double ema_momentum(std::int64_t i, std::int64_t n, double base = 0.996) {
    LCMAE_CHECK(n > 0, "the EMA schedule needs a positive number of steps, got " << n);
    LCMAE_CHECK(i >= 0, "EMA step index must be non-negative, got " << i);
    const double t = std::min(1.0, static_cast<double>(i) / static_cast<double>(n));
    return 1.0 - (1.0 - base) * (1.0 + std::cos(std::numbers::pi * t)) / 2.0;
}

}  // namespace lcmae::optim
