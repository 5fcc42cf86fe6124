// lcmae/backend/cuda/tokens.cuh - token gather/scatter by index and the token mean on the GPU
// (contracts in backend/ops.hpp; same names and parameters as backend/cpu/tokens.hpp, with idx a
// DEVICE pointer of B*K int64 token ids).
//
// Invalid ids: the CPU checks every id on the host and throws. Here that would need a sync per call,
// so the kernels check each id, SKIP a row whose id is outside [0, Nsrc) (never a wild read or
// write; gather leaves that dst row as it was) and record the op, the id and its position in the
// context's device error record; ctx.check_errors() throws lcmae::Error naming them.
//
// scatter_rows_add is deterministic and exact: one thread owns one column of one sample and walks k
// in order, so duplicate ids within a sample accumulate in the CPU's order with no atomics and no
// races (samples write disjoint rows of dst; threads write disjoint columns).
#pragma once

#include <cstdint>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

inline constexpr int kTokenThreads = 256;  // columns per block of the token kernels

/// Block (kTokenThreads) for destination row i = b*K + k, threads over the D columns.
template <class T>
__global__ void gather_rows_kernel(long long Nsrc, long long K, long long D, const T* __restrict__ src,
                                   const std::int64_t* __restrict__ idx, T* __restrict__ dst,
                                   DeviceErrors* errors) {
    const long long i = blockIdx.x;
    const long long b = i / K;
    const long long id = idx[i];
    if (id < 0 || id >= Nsrc) {
        if (threadIdx.x == 0) record_error(errors, kErrGatherRows, id, i);
        return;
    }
    const T* s = src + (b * Nsrc + id) * D;
    T* d = dst + i * D;
    for (long long c = threadIdx.x; c < D; c += blockDim.x) d[c] = s[c];
}

/// Grid (column chunks, B): thread c of sample b does dst[b, idx[b, k], c] += src[b, k, c] for
/// k = 0, 1, ... in order.
template <class T>
__global__ void scatter_rows_add_kernel(long long Nsrc, long long K, long long D, const T* __restrict__ src,
                                       const std::int64_t* __restrict__ idx, T* __restrict__ dst,
                                       DeviceErrors* errors) {
    const long long b = blockIdx.y;
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    for (long long k = 0; k < K; ++k) {
        const long long id = idx[b * K + k];
        if (id < 0 || id >= Nsrc) {
            if (blockIdx.x == 0 && threadIdx.x == 0) record_error(errors, kErrScatterRowsAdd, id, b * K + k);
            continue;
        }
        if (c < D) dst[(b * Nsrc + id) * D + c] += src[(b * K + k) * D + c];
    }
}

/// y[b, c] = mean_n x[b, n, c]: grid (column blocks, B), block (32, kColRows).
template <class T>
__global__ void mean_tokens_kernel(long long N, long long D, const T* __restrict__ x, T* __restrict__ y) {
    using A = acc_t<T>;
    __shared__ A sh[kColRows][32];
    const long long b = blockIdx.y;
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    A acc = A(0);
    if (c < D)
        for (long long n = threadIdx.y; n < N; n += kColRows) acc += A(x[(b * N + n) * D + c]);
    const A s = column_sum(acc, sh);
    if (c < D && threadIdx.y == 0) y[b * D + c] = T(s / A(N));
}

}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

/// dst[b, k, :] = src[b, idx[b, k], :]; idx in device memory (bad ids: see the top of this file).
template <class T>
inline void gather_rows(const backend::Cuda& ctx, long B, long Nsrc, long K, long D, const T* src,
                        const std::int64_t* idx, T* dst) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && Nsrc >= 0 && K >= 0 && D >= 0, "gather_rows sizes must be non-negative, got B " << B << " Nsrc "
                                                          << Nsrc << " K " << K << " D " << D);
    if (B == 0 || K == 0 || D == 0) return;
    const long long rows = (long long)B * K;
    LCMAE_CHECK(rows <= 0x7fffffffLL, "gather_rows: B*K = " << rows << " rows exceed one grid dimension");
    gather_rows_kernel<T><<<static_cast<unsigned int>(rows), kTokenThreads, 0, ctx.stream()>>>(Nsrc, K, D, src, idx, dst,
                                                                                              ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("gather_rows_kernel");
}

/// dst[b, idx[b, k], :] += src[b, k, :]; deterministic, duplicates accumulate in k order.
template <class T>
inline void scatter_rows_add(const backend::Cuda& ctx, long B, long Nsrc, long K, long D, const T* src,
                             const std::int64_t* idx, T* dst) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && Nsrc >= 0 && K >= 0 && D >= 0, "scatter_rows_add sizes must be non-negative, got B " << B
                                                          << " Nsrc " << Nsrc << " K " << K << " D " << D);
    if (B == 0 || K == 0 || D == 0) return;
    LCMAE_CHECK(B <= 65535, "scatter_rows_add: B = " << B << " exceeds the grid's y dimension (65535)");
    const dim3 grid(static_cast<unsigned int>((D + kTokenThreads - 1) / kTokenThreads), static_cast<unsigned int>(B));
    scatter_rows_add_kernel<T><<<grid, kTokenThreads, 0, ctx.stream()>>>(Nsrc, K, D, src, idx, dst, ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("scatter_rows_add_kernel");
}

/// y[b, :] = mean over n of x[b, n, :] (x is (B, N, D)).
template <class T>
inline void mean_tokens(const backend::Cuda& ctx, long B, long N, long D, const T* x, T* y) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && N > 0 && D >= 0, "mean_tokens needs B >= 0, N > 0, D >= 0, got " << B << ", " << N << ", " << D);
    if (B == 0 || D == 0) return;
    LCMAE_CHECK(B <= 65535, "mean_tokens: B = " << B << " exceeds the grid's y dimension (65535)");
    const dim3 grid(static_cast<unsigned int>((D + 31) / 32), static_cast<unsigned int>(B));
    mean_tokens_kernel<T><<<grid, dim3(32, kColRows), 0, ctx.stream()>>>(N, D, x, y);
    LCMAE_CUDA_CHECK_LAUNCH("mean_tokens_kernel");
}

}  // namespace lcmae::ops
