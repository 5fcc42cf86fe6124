// lcmae/backend/optim_types.hpp - the plain structs the optimiser ops take (contracts in ops.hpp,
// "Optimisers"). They are trivially copyable and hold no pointers, so a backend can keep a copy of
// a table in its own memory (upload) and a kernel can take the per-step scalars by value.
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

namespace lcmae::ops {

/// One run of contiguous arena elements an optimiser updates, with its per-run settings.
/// Offsets and counts are in elements of the arena's value (= gradient = moment) buffers.
struct OptimSegment {
    std::size_t offset = 0;
    std::size_t count = 0;
    double lr_scale = 1.0;  // AdamW: lr multiplier of this run (layer-wise decay); unused by LARS
    bool decay = false;     // AdamW: decoupled weight decay; LARS: a matrix (weight decay + trust ratio)
};

/// One run of matched EMA entries: target[target_offset + i] follows online[online_offset + i].
struct EmaRun {
    std::size_t target_offset = 0;
    std::size_t online_offset = 0;
    std::size_t count = 0;
};

/// The per-step scalars of adamw_update (all double; the op converts to T as written there).
struct AdamWStep {
    double lr = 0;                     // base lr; each segment uses lr * lr_scale
    double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0;
    double bias_correction1 = 1;       // 1 - beta1^t
    double bias_correction2_sqrt = 1;  // sqrt(1 - beta2^t)
    double grad_scale = 1;             // 1 / accumulation (times 1 / ranks)
    double max_grad_norm = 0;          // read only when the op is given a sum of squares
};

/// The per-step scalars of lars_update.
struct LarsStep {
    double lr = 0;
    double momentum = 0.9, trust_coefficient = 0.001, weight_decay = 0;
    double grad_scale = 1;
};

static_assert(std::is_trivially_copyable_v<OptimSegment> && std::is_trivially_copyable_v<EmaRun> &&
              std::is_trivially_copyable_v<AdamWStep> && std::is_trivially_copyable_v<LarsStep>);

/// The factor torch.nn.utils.clip_grad_norm_ applies: min(1, max_norm / (norm + 1e-6)). Every
/// backend computes it exactly so from the norm (a device backend inside its kernel).
inline double clip_coefficient(double norm, double max_norm) {
    const double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

}  // namespace lcmae::ops
