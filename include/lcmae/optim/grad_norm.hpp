// lcmae/optim/grad_norm.hpp - global L2 norm of the trainable gradients and clipping by it.
#pragma once

#include <cmath>
#include <cstddef>

#include "lcmae/core/arena.hpp"

namespace lcmae::optim {

namespace detail {
template <class T>
double sum_squares(const T* g, std::size_t n, double scale) {
    double acc = 0.0;
#pragma omp parallel for simd reduction(+ : acc) schedule(static) if (n > 65536)
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); ++i) {
        const double x = static_cast<double>(g[i]) * scale;
        acc += x * x;
    }
    return acc;
}
template <class T>
void scale_inplace(T* g, std::size_t n, T s) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(n); ++i) g[i] *= s;
}
}  // namespace detail

/// sqrt(sum over Parameter entries of (grad_scale * g)^2), accumulated in double. Buffers are
/// excluded.
template <class T>
double global_grad_norm(const ParamArena<T>& arena, double grad_scale = 1.0) {
    double acc = 0.0;
    for (const auto& e : arena.entries())
        if (e.kind == EntryKind::Parameter) acc += detail::sum_squares(arena.grad(e.slot), e.slot.count, grad_scale);
    return std::sqrt(acc);
}

/// The factor torch.nn.utils.clip_grad_norm_ applies: min(1, max_norm / (norm + 1e-6)).
inline double clip_coefficient(double norm, double max_norm) {
    const double c = max_norm / (norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

/// Scales the trainable gradients in place so their global norm is at most `max_norm`
/// (as torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
template <class T>
double clip_grad_norm(ParamArena<T>& arena, double max_norm) {
    const double norm = global_grad_norm(arena);
    const double c = clip_coefficient(norm, max_norm);
    if (c < 1.0)
        for (const auto& e : arena.entries())
            if (e.kind == EntryKind::Parameter) detail::scale_inplace(arena.grad(e.slot), e.slot.count, static_cast<T>(c));
    return norm;
}

}  // namespace lcmae::optim
