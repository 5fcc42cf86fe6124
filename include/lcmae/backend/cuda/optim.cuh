// lcmae/backend/cuda/optim.cuh - the optimiser ops on the GPU (contracts in backend/ops.hpp,
// "Optimisers"; same names and parameters as backend/cpu/optim.hpp): grad_sum_squares,
// grad_clip_scale, adamw_update, lars_update, ema_update.
//
// The segment (or run) table comes twice: host_segments (read here only for the launch geometry:
// the total element count) and segments, its copy in device memory, which the kernels read (the
// generic optimisers upload it when it changes: optim::detail::DeviceTable). One launch covers the
// whole arena: every thread walks the table in order and, inside each segment, takes the elements
// tid, tid + threads, ... (a grid-stride loop per segment). The grid is capped (kOptimMaxBlocks), so
// the per-thread walk over the table stays short.
//
// Arithmetic: the per-element update is the CPU's expression operation by operation, written with
// round-to-nearest intrinsics (mul_rn, add_rn, ...: no FMA contraction), and the per-step scalars
// (grad scale, clip coefficient, per-segment lr, decay and step size) are computed in double exactly
// as the CPU computes them (the clip coefficient from the device sum of squares, in the kernel). So
// given the same inputs and sum of squares, AdamW, EMA and clipping give the CPU's bits (a CPU built
// with -march=native may contract into FMAs and differ by an ulp). The sums (grad_sum_squares, the
// LARS norms) are deterministic block sums in double, in another order than the CPU's OpenMP
// reduction: equal to double rounding.
#pragma once

#include <algorithm>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"
#include "lcmae/backend/cuda/memory.cuh"
#include "lcmae/backend/optim_types.hpp"

namespace lcmae::backend::cuda_detail {

/// At most this many blocks of kThreads for the table-walking kernels (enough to fill an H100/H200).
inline constexpr int kOptimMaxBlocks = 2048;

/// clip_coefficient (optim_types.hpp), the same double operations on the device.
__device__ inline double clip_coefficient_dev(double norm, double max_norm) {
    const double c = __ddiv_rn(max_norm, __dadd_rn(norm, 1e-6));
    return c < 1.0 ? c : 1.0;
}

template <class Row>
inline long long table_elements(long n, const Row* host_rows) {
    long long total = 0;
    for (long k = 0; k < n; ++k) total += static_cast<long long>(host_rows[k].count);
    return total;
}

inline int optim_blocks(long long total, int cap = kOptimMaxBlocks) {
    return static_cast<int>(std::min<long long>(blocks_for(total), cap));
}

template <class T>
__global__ void grad_sum_squares_kernel(long nseg, const ops::OptimSegment* __restrict__ segs, double scale,
                                        const T* __restrict__ g, double* __restrict__ partials) {
    __shared__ double sh[32];
    const long long tid = blockIdx.x * (long long)blockDim.x + threadIdx.x, stride = (long long)gridDim.x * blockDim.x;
    double acc = 0;
    for (long s = 0; s < nseg; ++s) {
        const long long off = (long long)segs[s].offset, cnt = (long long)segs[s].count;
        for (long long i = tid; i < cnt; i += stride) {
            const double x = double(g[off + i]) * scale;
            acc += x * x;
        }
    }
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

/// *out = sum of partials[0..count) (one warp, fixed order).
template <class Unused = void>
__global__ void optim_final_sum_kernel(int count, const double* __restrict__ partials, double* __restrict__ out) {
    double s = 0;
    for (int i = threadIdx.x; i < count; i += 32) s += partials[i];
    s = warp_sum(s);
    if (threadIdx.x == 0) out[0] = s;
}

template <class T>
__global__ void grad_clip_scale_kernel(long nseg, const ops::OptimSegment* __restrict__ segs, double max_norm,
                                       const double* __restrict__ sumsq, T* __restrict__ g) {
    const double c = clip_coefficient_dev(__dsqrt_rn(sumsq[0]), max_norm);
    if (!(c < 1.0)) return;
    const T s = T(c);
    const long long tid = blockIdx.x * (long long)blockDim.x + threadIdx.x, stride = (long long)gridDim.x * blockDim.x;
    for (long k = 0; k < nseg; ++k) {
        const long long off = (long long)segs[k].offset, cnt = (long long)segs[k].count;
        for (long long i = tid; i < cnt; i += stride) g[off + i] = mul_rn(g[off + i], s);
    }
}

/// The T constants of one AdamW step (computed on the host as the CPU does).
template <class T>
struct AdamWConsts {
    T b1, b2, omb1, omb2, eps, bc2s;
};

template <class T>
__global__ void adamw_kernel(long nseg, const ops::OptimSegment* __restrict__ segs, ops::AdamWStep st,
                             const double* __restrict__ grad_sumsq, AdamWConsts<T> k, T* __restrict__ p,
                             const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v) {
    double gs = st.grad_scale;
    if (grad_sumsq != nullptr) gs = __dmul_rn(gs, clip_coefficient_dev(__dsqrt_rn(grad_sumsq[0]), st.max_grad_norm));
    const T g_scale = T(gs);
    const long long tid = blockIdx.x * (long long)blockDim.x + threadIdx.x, stride = (long long)gridDim.x * blockDim.x;
    for (long s = 0; s < nseg; ++s) {
        const long long off = (long long)segs[s].offset, cnt = (long long)segs[s].count;
        const double lr_e = __dmul_rn(st.lr, segs[s].lr_scale);
        const T decay = T(segs[s].decay ? __dsub_rn(1.0, __dmul_rn(lr_e, st.weight_decay)) : 1.0);
        const T step_size = T(__ddiv_rn(lr_e, st.bias_correction1));
        for (long long i = tid; i < cnt; i += stride) {
            const long long e = off + i;
            const T gg = mul_rn(g[e], g_scale);
            const T mk = add_rn(mul_rn(k.b1, m[e]), mul_rn(k.omb1, gg));
            const T vk = add_rn(mul_rn(k.b2, v[e]), mul_rn(k.omb2, mul_rn(gg, gg)));
            m[e] = mk;
            v[e] = vk;
            const T denom = add_rn(div_rn(sqrt_rn(vk), k.bc2s), k.eps);
            p[e] = sub_rn(mul_rn(p[e], decay), div_rn(mul_rn(step_size, mk), denom));
        }
    }
}

/// LARS pass 1: per matrix segment (decay), norms[2s] = sum p^2, norms[2s+1] = sum d^2 with
/// d = g gs + wd p (in T, as the CPU). One block per segment (grid-stride over segments).
template <class T>
__global__ void lars_norms_kernel(long nseg, const ops::OptimSegment* __restrict__ segs, T gs, T wd,
                                  const T* __restrict__ p, const T* __restrict__ g, double* __restrict__ norms) {
    __shared__ double sh[32];
    for (long s = blockIdx.x; s < nseg; s += gridDim.x) {
        if (!segs[s].decay) continue;  // uniform over the block
        const long long off = (long long)segs[s].offset, cnt = (long long)segs[s].count;
        double pn = 0, dn = 0;
        for (long long i = threadIdx.x; i < cnt; i += blockDim.x) {
            const T pi = p[off + i];
            const T d = add_rn(mul_rn(g[off + i], gs), mul_rn(wd, pi));
            pn += double(pi) * double(pi);
            dn += double(d) * double(d);
        }
        pn = block_sum(pn, sh);
        dn = block_sum(dn, sh);
        if (threadIdx.x == 0) {
            norms[2 * s] = pn;
            norms[2 * s + 1] = dn;
        }
    }
}

/// LARS pass 2: the update over every segment.
template <class T>
__global__ void lars_update_kernel(long nseg, const ops::OptimSegment* __restrict__ segs, double trust, T mom, T lr,
                                   T gs, T wd, const double* __restrict__ norms, T* __restrict__ p,
                                   const T* __restrict__ g, T* __restrict__ mu) {
    const long long tid = blockIdx.x * (long long)blockDim.x + threadIdx.x, stride = (long long)gridDim.x * blockDim.x;
    for (long s = 0; s < nseg; ++s) {
        const long long off = (long long)segs[s].offset, cnt = (long long)segs[s].count;
        if (segs[s].decay) {
            const double pn = __dsqrt_rn(norms[2 * s]), dn = __dsqrt_rn(norms[2 * s + 1]);
            const T q = (pn > 0 && dn > 0) ? T(__ddiv_rn(__dmul_rn(trust, pn), dn)) : T(1);
            for (long long i = tid; i < cnt; i += stride) {
                const long long e = off + i;
                const T d = mul_rn(add_rn(mul_rn(g[e], gs), mul_rn(wd, p[e])), q);
                const T mk = add_rn(mul_rn(mom, mu[e]), d);
                mu[e] = mk;
                p[e] = sub_rn(p[e], mul_rn(lr, mk));
            }
        } else {
            for (long long i = tid; i < cnt; i += stride) {
                const long long e = off + i;
                const T mk = add_rn(mul_rn(mom, mu[e]), mul_rn(g[e], gs));
                mu[e] = mk;
                p[e] = sub_rn(p[e], mul_rn(lr, mk));
            }
        }
    }
}

template <class T>
__global__ void ema_kernel(long nrun, const ops::EmaRun* __restrict__ runs, T a, T b, T* __restrict__ target,
                           const T* __restrict__ online) {
    const long long tid = blockIdx.x * (long long)blockDim.x + threadIdx.x, stride = (long long)gridDim.x * blockDim.x;
    for (long r = 0; r < nrun; ++r) {
        const long long to = (long long)runs[r].target_offset, oo = (long long)runs[r].online_offset;
        const long long cnt = (long long)runs[r].count;
        for (long long i = tid; i < cnt; i += stride)
            target[to + i] = add_rn(mul_rn(a, target[to + i]), mul_rn(b, online[oo + i]));
    }
}

}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

/// *out (device) = sum over the segments of sum_i (double(g[offset + i]) * scale)^2 (written).
template <class T>
inline void grad_sum_squares(const backend::Cuda& ctx, long nseg, const OptimSegment* host_segments,
                             const OptimSegment* segments, double scale, const T* g, double* out) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(nseg >= 0, "grad_sum_squares: negative segment count " << nseg);
    const long long total = nseg > 0 ? table_elements(nseg, host_segments) : 0;
    if (total == 0) {
        fill_kernel<double><<<1, 1, 0, ctx.stream()>>>(1, 0.0, out);
        LCMAE_CUDA_CHECK_LAUNCH("fill_kernel (empty grad_sum_squares)");
        return;
    }
    const int blocks = optim_blocks(total, kOpMaxBlocks);
    grad_sum_squares_kernel<T><<<blocks, kThreads, 0, ctx.stream()>>>(nseg, segments, scale, g, ctx.op_partials());
    LCMAE_CUDA_CHECK_LAUNCH("grad_sum_squares_kernel");
    optim_final_sum_kernel<><<<1, 32, 0, ctx.stream()>>>(blocks, ctx.op_partials(), out);
    LCMAE_CUDA_CHECK_LAUNCH("optim_final_sum_kernel");
}

/// c = clip_coefficient(sqrt(*sumsq), max_norm) on the device; when c < 1, g *= T(c) over the segments.
template <class T>
inline void grad_clip_scale(const backend::Cuda& ctx, long nseg, const OptimSegment* host_segments,
                            const OptimSegment* segments, double max_norm, const double* sumsq, T* g) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(nseg >= 0, "grad_clip_scale: negative segment count " << nseg);
    const long long total = nseg > 0 ? table_elements(nseg, host_segments) : 0;
    if (total == 0) return;
    grad_clip_scale_kernel<T><<<optim_blocks(total), kThreads, 0, ctx.stream()>>>(nseg, segments, max_norm, sumsq, g);
    LCMAE_CUDA_CHECK_LAUNCH("grad_clip_scale_kernel");
}

/// One AdamW step over every segment, one launch (see ops.hpp). grad_sumsq: null or the device double
/// grad_sum_squares wrote (the clip coefficient is then applied, computed in the kernel).
template <class T>
inline void adamw_update(const backend::Cuda& ctx, long nseg, const OptimSegment* host_segments,
                         const OptimSegment* segments, const AdamWStep& st, const double* grad_sumsq, T* p, const T* g,
                         T* m, T* v) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(nseg >= 0, "adamw_update: negative segment count " << nseg);
    const long long total = nseg > 0 ? table_elements(nseg, host_segments) : 0;
    if (total == 0) return;
    AdamWConsts<T> k;
    k.b1 = T(st.beta1);
    k.b2 = T(st.beta2);
    k.omb1 = T(1.0 - st.beta1);
    k.omb2 = T(1.0 - st.beta2);
    k.eps = T(st.eps);
    k.bc2s = T(st.bias_correction2_sqrt);
    adamw_kernel<T><<<optim_blocks(total), kThreads, 0, ctx.stream()>>>(nseg, segments, st, grad_sumsq, k, p, g, m, v);
    LCMAE_CUDA_CHECK_LAUNCH("adamw_kernel");
}

/// One LARS step over every segment (see ops.hpp): per-segment norms into `norms` (2 * nseg device
/// doubles), then one update launch.
template <class T>
inline void lars_update(const backend::Cuda& ctx, long nseg, const OptimSegment* host_segments,
                        const OptimSegment* segments, const LarsStep& st, T* p, const T* g, T* mu, double* norms) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(nseg >= 0, "lars_update: negative segment count " << nseg);
    const long long total = nseg > 0 ? table_elements(nseg, host_segments) : 0;
    if (total == 0) return;
    const T gs = T(st.grad_scale), wd = T(st.weight_decay), mom = T(st.momentum), lr = T(st.lr);
    const int norm_blocks = static_cast<int>(std::min<long>(nseg, 65535));
    lars_norms_kernel<T><<<norm_blocks, kThreads, 0, ctx.stream()>>>(nseg, segments, gs, wd, p, g, norms);
    LCMAE_CUDA_CHECK_LAUNCH("lars_norms_kernel");
    lars_update_kernel<T><<<optim_blocks(total), kThreads, 0, ctx.stream()>>>(nseg, segments, st.trust_coefficient, mom,
                                                                               lr, gs, wd, norms, p, g, mu);
    LCMAE_CUDA_CHECK_LAUNCH("lars_update_kernel");
}

/// target = T(d) target + T(1 - d) online over every run, one launch.
template <class T>
inline void ema_update(const backend::Cuda& ctx, long nrun, const EmaRun* host_runs, const EmaRun* runs, double d,
                       T* target, const T* online) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(nrun >= 0, "ema_update: negative run count " << nrun);
    const long long total = nrun > 0 ? table_elements(nrun, host_runs) : 0;
    if (total == 0) return;
    ema_kernel<T><<<optim_blocks(total), kThreads, 0, ctx.stream()>>>(nrun, runs, T(d), T(1.0 - d), target, online);
    LCMAE_CUDA_CHECK_LAUNCH("ema_kernel");
}

}  // namespace lcmae::ops
