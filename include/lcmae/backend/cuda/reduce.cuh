// lcmae/backend/cuda/reduce.cuh - sum, dot and sum_squares on the GPU (contracts in
// backend/ops.hpp), accumulated in double like the CPU's.
//
// Two forms per op:
//   sum(ctx, n, x, double* out)            out[0] (device) = the result; written, not accumulated;
//                                          stream-ordered, no host sync: the training loop's form.
//   sum(ctx, n, x) -> double               the same into ctx's scratch, then downloaded (syncs).
// Deterministic: pass 1 has at most kReduceMaxBlocks blocks (a number that depends only on n) write
// one double each into ctx's scratch; pass 2, one warp, adds them in a fixed order. Every sum
// inside is a fixed tree, so the same input gives the same bits on every run.
#pragma once

#include <algorithm>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"
#include "lcmae/backend/cuda/memory.cuh"

namespace lcmae::backend::cuda_detail {

enum class ReduceKind { Sum, Dot, SumSquares };

template <ReduceKind kind, class T>
__global__ void reduce_partial_kernel(long long n, const T* __restrict__ a, const T* __restrict__ b,
                                      double* __restrict__ partials) {
    __shared__ double warps[kThreads / 32];
    double acc = 0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const double x = double(a[i]);
        if constexpr (kind == ReduceKind::Sum) acc += x;
        else if constexpr (kind == ReduceKind::Dot) acc += x * double(b[i]);
        else acc += x * x;
    }
    acc = warp_sum(acc);
    if (threadIdx.x % 32 == 0) warps[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0;
        for (int w = 0; w < kThreads / 32; ++w) s += warps[w];
        partials[blockIdx.x] = s;
    }
}

/// One warp: out[0] = sum of partials[0..count). (A template only so that a header may define it:
/// a plain __global__ function defined in two translation units would clash at link time.)
template <class Unused = void>
__global__ void reduce_final_kernel(int count, const double* __restrict__ partials, double* __restrict__ out) {
    double s = 0;
    for (int i = threadIdx.x; i < count; i += 32) s += partials[i];
    s = warp_sum(s);
    if (threadIdx.x == 0) out[0] = s;
}

template <ReduceKind kind, class T>
inline void reduce_into(const Cuda& ctx, long n, const T* a, const T* b, double* out, const char* op) {
    LCMAE_CHECK(n >= 0, op << " size must be non-negative, got " << n);
    if (n == 0) {
        fill_kernel<double><<<1, 1, 0, ctx.stream()>>>(1, 0.0, out);
        LCMAE_CUDA_CHECK_LAUNCH("fill_kernel (empty reduction)");
        return;
    }
    const int blocks = static_cast<int>(std::min<long long>(blocks_for(n), kReduceMaxBlocks));
    reduce_partial_kernel<kind, T><<<blocks, kThreads, 0, ctx.stream()>>>(n, a, b, ctx.reduce_scratch());
    LCMAE_CUDA_CHECK_LAUNCH("reduce_partial_kernel");
    reduce_final_kernel<><<<1, 32, 0, ctx.stream()>>>(blocks, ctx.reduce_scratch(), out);
    LCMAE_CUDA_CHECK_LAUNCH("reduce_final_kernel");
}

inline double download_result(const Cuda& ctx) {
    double h = 0;
    ops::download(ctx, 1, ctx.reduce_result(), &h);
    return h;
}

}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

template <class T>
inline void sum(const backend::Cuda& ctx, long n, const T* x, double* out) {
    using namespace backend::cuda_detail;
    reduce_into<ReduceKind::Sum, T>(ctx, n, x, nullptr, out, "sum");
}
template <class T>
inline void dot(const backend::Cuda& ctx, long n, const T* a, const T* b, double* out) {
    using namespace backend::cuda_detail;
    reduce_into<ReduceKind::Dot, T>(ctx, n, a, b, out, "dot");
}
template <class T>
inline void sum_squares(const backend::Cuda& ctx, long n, const T* x, double* out) {
    using namespace backend::cuda_detail;
    reduce_into<ReduceKind::SumSquares, T>(ctx, n, x, nullptr, out, "sum_squares");
}

template <class T>
inline double sum(const backend::Cuda& ctx, long n, const T* x) {
    sum(ctx, n, x, ctx.reduce_result());
    return backend::cuda_detail::download_result(ctx);
}
template <class T>
inline double dot(const backend::Cuda& ctx, long n, const T* a, const T* b) {
    dot(ctx, n, a, b, ctx.reduce_result());
    return backend::cuda_detail::download_result(ctx);
}
template <class T>
inline double sum_squares(const backend::Cuda& ctx, long n, const T* x) {
    sum_squares(ctx, n, x, ctx.reduce_result());
    return backend::cuda_detail::download_result(ctx);
}

}  // namespace lcmae::ops
