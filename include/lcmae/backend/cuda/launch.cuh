// lcmae/backend/cuda/launch.cuh - what the kernels share: grid sizing, the accumulator type of a
// storage type, warp reductions, and the deterministic per-column reduction used by every op that
// sums over rows (bias_grad, LayerNorm's dgamma/dbeta, BatchNorm, mean_tokens).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace lcmae::backend::cuda_detail {

/// Threads per block of the 1-D elementwise kernels.
inline constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over n elements: enough to fill the chip, capped so that the
/// grid size stays an int (each thread then takes several elements).
inline unsigned int blocks_for(long long n, int threads = kThreads) {
    const long long b = (n + threads - 1) / threads;
    return static_cast<unsigned int>(std::min<long long>(std::max<long long>(b, 1), 1LL << 20));
}

/// Arithmetic type for a storage type: float storage (and bf16 later) computes in float, double in
/// double.
template <class T>
struct Acc {
    using type = float;
};
template <>
struct Acc<double> {
    using type = double;
};
template <class T>
using acc_t = typename Acc<T>::type;

/// exp/erf/sqrt in the accumulator type (explicit, so float never silently runs in double).
__device__ inline float dev_exp(float x) { return expf(x); }
__device__ inline double dev_exp(double x) { return exp(x); }
__device__ inline float dev_erf(float x) { return erff(x); }
__device__ inline double dev_erf(double x) { return erf(x); }
__device__ inline float dev_sqrt(float x) { return sqrtf(x); }  // IEEE-rounded (nvcc's default -prec-sqrt)
__device__ inline double dev_sqrt(double x) { return sqrt(x); }

/// -infinity of the accumulator type (std::numeric_limits is host-only without relaxed constexpr).
template <class A>
__device__ inline A neg_inf();
template <>
__device__ inline float neg_inf<float>() { return __int_as_float(0xff800000); }
template <>
__device__ inline double neg_inf<double>() { return __longlong_as_double(0xfff0000000000000ULL); }

/// Sum / max over the 32 lanes of a warp; every lane gets the result (butterfly order is fixed, so
/// the result is deterministic).
template <class A>
__device__ inline A warp_sum(A v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <class A>
__device__ inline A warp_max(A v) {
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/// Column reductions: a block of (32 columns) x (kColRows row lanes). Thread (tx, ty) sums rows
/// ty, ty + kColRows, ... of column c = blockIdx.x * 32 + tx, then the kColRows partials of a column
/// are added in a fixed order by column_sum: deterministic, no atomics. Adjacent threads read
/// adjacent columns, so the loads are coalesced.
inline constexpr int kColRows = 16;

/// Sums the per-thread value v over threadIdx.y for each threadIdx.x; the result is returned to
/// every thread of the column. `sh` is __shared__ storage of kColRows x 32 accumulators. Contains
/// __syncthreads: every thread of the block must call it.
template <class A>
__device__ inline A column_sum(A v, A (*sh)[32]) {
    sh[threadIdx.y][threadIdx.x] = v;
    __syncthreads();
    A s = A(0);
    for (int i = 0; i < kColRows; ++i) s += sh[i][threadIdx.x];
    __syncthreads();  // sh may be reused right after
    return s;
}

/// Sum of v over a 1-D block (blockDim.x a multiple of 32, at most 1024); every thread gets the
/// same value (lane 0 of each warp posts its warp's sum, then every thread adds the posts in warp
/// order): deterministic. `sh` is __shared__ storage of 32 accumulators; contains __syncthreads, so
/// every thread of the block must call it (no early returns before it).
template <class A>
__device__ inline A block_sum(A v, A* sh) {
    v = warp_sum(v);
    __syncthreads();  // the previous call's readers are done with sh
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
    __syncthreads();
    A s = A(0);
    const int warps = int(blockDim.x / 32);
    for (int w = 0; w < warps; ++w) s += sh[w];
    return s;
}

/// Round-to-nearest arithmetic that nvcc may not contract into an FMA: the optimisers use these so
/// their update is the CPU's expression, operation by operation (the CPU build has no FMA
/// contraction without -march=native).
__device__ inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ inline double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ inline float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ inline double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ inline float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ inline double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ inline float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ inline double sqrt_rn(double a) { return __dsqrt_rn(a); }

}  // namespace lcmae::backend::cuda_detail
