// lcmae/optim/grad_norm.hpp - zero-grad, the global L2 norm of the trainable gradients, and
// clipping by it, for an arena in any backend's memory (through the ops in backend/ops.hpp).
//
// The free functions here build their segment table (one row per Parameter entry) per call: on a
// device backend they allocate two small buffers and wait for the norm (a host double is what they
// return). Per-step code clips through AdamW (AdamWConfig::max_grad_norm), which keeps its tables
// and the norm in backend memory and never waits.
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/optim/state.hpp"

namespace lcmae::optim {

/// The factor torch.nn.utils.clip_grad_norm_ applies: min(1, max_norm / (norm + 1e-6)).
using ops::clip_coefficient;

/// Zeroes every gradient of the arena (padding included) through the backend.
template <class T, class Backend>
void zero_grad(const Backend& ctx, ParamArena<T, Backend>& arena) {
    fill(ctx, static_cast<long>(arena.grads().size()), T(0), arena.grads().data());
}

namespace detail {
/// One segment per Parameter entry, in table order (buffers excluded; nothing merged, so the sum
/// of squares adds per-entry partial sums exactly as it always has).
template <class T, class Backend>
std::vector<Segment> parameter_segments(const ParamArena<T, Backend>& arena) {
    std::vector<Segment> segs;
    for (const auto& e : arena.entries())  // host: the entry table
        if (e.kind == EntryKind::Parameter) segs.push_back({e.slot.offset, e.slot.count, 1.0, false});
    return segs;
}
}  // namespace detail

/// sqrt(sum over Parameter entries of (grad_scale * g)^2), accumulated in double. Buffers are
/// excluded. Waits for the backend (the result is a host value).
template <class T, class Backend>
    requires std::derived_from<Backend, ops::BackendTag>
double global_grad_norm(const Backend& ctx, const ParamArena<T, Backend>& arena, double grad_scale = 1.0) {
    detail::DeviceTable<Segment, Backend> table;
    table.set(detail::parameter_segments(arena));
    dbuffer<Backend, double> sumsq;
    sumsq.resize(1);
    grad_sum_squares(ctx, table.size(), table.host().data(), table.device(ctx), grad_scale, arena.grads().data(),
                     sumsq.data());
    double host = 0;  // host result: the one value this function returns
    download(ctx, 1, dptr<Backend, const double>(sumsq.data()), &host);
    return std::sqrt(host);
}
/// The same on the CPU with a default context (the current OpenMP thread count).
template <class T>
double global_grad_norm(const ParamArena<T>& arena, double grad_scale = 1.0) {
    return global_grad_norm(backend::Cpu(), arena, grad_scale);
}

/// Scales the trainable gradients in place so their global norm is at most `max_norm`
/// (as torch.nn.utils.clip_grad_norm_); returns the norm before clipping (a host value: waits).
template <class T, class Backend>
    requires std::derived_from<Backend, ops::BackendTag>
double clip_grad_norm(const Backend& ctx, ParamArena<T, Backend>& arena, double max_norm) {
    detail::DeviceTable<Segment, Backend> table;
    table.set(detail::parameter_segments(arena));
    dbuffer<Backend, double> sumsq;
    sumsq.resize(1);
    const auto dev = table.device(ctx);
    grad_sum_squares(ctx, table.size(), table.host().data(), dev, 1.0, arena.grads().data(), sumsq.data());
    grad_clip_scale(ctx, table.size(), table.host().data(), dev, max_norm, dptr<Backend, const double>(sumsq.data()),
                    arena.grads().data());
    double host = 0;  // host result: the norm this function returns
    download(ctx, 1, dptr<Backend, const double>(sumsq.data()), &host);
    return std::sqrt(host);
}
/// The same on the CPU with a default context.
template <class T>
double clip_grad_norm(ParamArena<T>& arena, double max_norm) {
    return clip_grad_norm(backend::Cpu(), arena, max_norm);
}

}  // namespace lcmae::optim
