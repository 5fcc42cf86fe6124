// lcmae/backend/cpu/optim.hpp - the optimiser ops of backend::Cpu (contracts in ../ops.hpp,
// "Optimisers"): AdamW, LARS, EMA, the gradient sum of squares and clipping, each one call over a
// whole arena given its segment (or run) table. The CPU reads the HOST copy of a table; the backend
// copy exists for device kernels. The arithmetic (Eigen chunks, OpenMP reductions, their order) is
// exactly what optim/ did before it moved here, so results are bit-identical to earlier versions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <Eigen/Core>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/optim_types.hpp"

namespace lcmae::ops {

namespace cpu_optim {
// Below this many elements a run stays on one thread (forking costs more than the work).
inline constexpr std::ptrdiff_t kParallelMin = 65536;
// AdamW chunks: small enough to stay in L1/L2, so the three Eigen passes read memory once.
inline constexpr std::ptrdiff_t kChunk = 2048;

/// sum_i (double(g[i]) * scale)^2 over one run.
template <class T>
inline double sum_squares_scaled(const backend::Cpu& ctx, const T* g, std::size_t count, double scale) {
    const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(count);
    double acc = 0.0;
#pragma omp parallel for simd reduction(+ : acc) schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
    for (std::ptrdiff_t i = 0; i < n; ++i) {
        const double x = static_cast<double>(g[i]) * scale;
        acc += x * x;
    }
    return acc;
}
}  // namespace cpu_optim

/// *out = sum over segments (in table order) of sum_i (scale * g[offset + i])^2, in double.
template <class T>
inline void grad_sum_squares(const backend::Cpu& ctx, long nseg, const OptimSegment* host_segments,
                             const OptimSegment* /*segments: device copy*/, double scale, const T* g, double* out) {
    double acc = 0.0;
    for (long s = 0; s < nseg; ++s)
        acc += cpu_optim::sum_squares_scaled(ctx, g + host_segments[s].offset, host_segments[s].count, scale);
    *out = acc;
}

/// c = clip_coefficient(sqrt(*sumsq), max_norm); when c < 1, g *= T(c) over every segment.
template <class T>
inline void grad_clip_scale(const backend::Cpu& ctx, long nseg, const OptimSegment* host_segments,
                            const OptimSegment* /*segments*/, double max_norm, const double* sumsq, T* g) {
    const double c = clip_coefficient(std::sqrt(*sumsq), max_norm);
    if (!(c < 1.0)) return;
    const T s = static_cast<T>(c);
    for (long k = 0; k < nseg; ++k) {
        T* gk = g + host_segments[k].offset;
        const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(host_segments[k].count);
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (n > cpu_optim::kParallelMin)
        for (std::ptrdiff_t i = 0; i < n; ++i) gk[i] *= s;
    }
}

/// One AdamW step over every segment (see ops.hpp). grad_sumsq: null, or the backend double that
/// grad_sum_squares wrote (then the grads are also scaled by the clip coefficient).
template <class T>
inline void adamw_update(const backend::Cpu& ctx, long nseg, const OptimSegment* host_segments,
                         const OptimSegment* /*segments*/, const AdamWStep& st, const double* grad_sumsq, T* p,
                         const T* g, T* m, T* v) {
    using Arr = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
    using ConstArr = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
    using cpu_optim::kChunk;
    double gs = st.grad_scale;
    if (grad_sumsq != nullptr) gs *= clip_coefficient(std::sqrt(*grad_sumsq), st.max_grad_norm);
    const T b1 = T(st.beta1), b2 = T(st.beta2), omb1 = T(1.0 - st.beta1), omb2 = T(1.0 - st.beta2);
    const T eps = T(st.eps), g_scale = T(gs), bc2s = T(st.bias_correction2_sqrt);
    for (long k = 0; k < nseg; ++k) {
        const OptimSegment& s = host_segments[k];
        const double lr_e = st.lr * s.lr_scale;
        const T decay = T(s.decay ? 1.0 - lr_e * st.weight_decay : 1.0);
        const T step_size = T(lr_e / st.bias_correction1);
        // chunks small enough to stay in L1/L2, so the three Eigen passes (vectorised sqrt and
        // division, which plain loops are not while sqrt may set errno) read memory once
        const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(s.count);
        const std::ptrdiff_t chunks = (n + kChunk - 1) / kChunk;
        T* ps = p + s.offset;
        const T* gs_ptr = g + s.offset;
        T* ms = m + s.offset;
        T* vs = v + s.offset;
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (n > cpu_optim::kParallelMin)
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
}

/// One LARS step over every segment (see ops.hpp); segments with `decay` are matrices (weight
/// decay and trust ratio), the rest 1-D. norms: scratch for a device backend (2 * nseg doubles of
/// backend memory); the CPU keeps its norms in registers and does not touch it.
template <class T>
inline void lars_update(const backend::Cpu& ctx, long nseg, const OptimSegment* host_segments,
                        const OptimSegment* /*segments*/, const LarsStep& st, T* p_all, const T* g_all, T* mu_all,
                        double* /*norms*/) {
    using cpu_optim::kParallelMin;
    const T mom = T(st.momentum), lr_t = T(st.lr), gs = T(st.grad_scale);
    for (long k = 0; k < nseg; ++k) {
        const OptimSegment& s = host_segments[k];
        T* p = p_all + s.offset;
        const T* g = g_all + s.offset;
        T* mu = mu_all + s.offset;
        const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(s.count);
        if (s.decay) {
            const T wd = T(st.weight_decay);
            double pn = 0.0, dn = 0.0;
#pragma omp parallel for simd reduction(+ : pn, dn) schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
            for (std::ptrdiff_t i = 0; i < n; ++i) {
                const T d = g[i] * gs + wd * p[i];
                pn += double(p[i]) * double(p[i]);
                dn += double(d) * double(d);
            }
            pn = std::sqrt(pn);
            dn = std::sqrt(dn);
            const T q = (pn > 0 && dn > 0) ? T(st.trust_coefficient * pn / dn) : T(1);
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
            for (std::ptrdiff_t i = 0; i < n; ++i) {
                const T d = (g[i] * gs + wd * p[i]) * q;
                mu[i] = mom * mu[i] + d;
                p[i] -= lr_t * mu[i];
            }
        } else {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
            for (std::ptrdiff_t i = 0; i < n; ++i) {
                mu[i] = mom * mu[i] + g[i] * gs;
                p[i] -= lr_t * mu[i];
            }
        }
    }
}

/// target = T(d) * target + T(1 - d) * online over every run.
template <class T>
inline void ema_update(const backend::Cpu& ctx, long nrun, const EmaRun* host_runs, const EmaRun* /*runs*/, double d,
                       T* target, const T* online) {
    const T a = T(d), b = T(1.0 - d);
    for (long k = 0; k < nrun; ++k) {
        const EmaRun& r = host_runs[k];
        T* tr = target + r.target_offset;
        const T* orun = online + r.online_offset;
        const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(r.count);
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > cpu_optim::kParallelMin)
        for (std::ptrdiff_t i = 0; i < n; ++i) tr[i] = a * tr[i] + b * orun[i];
    }
}

}  // namespace lcmae::ops
