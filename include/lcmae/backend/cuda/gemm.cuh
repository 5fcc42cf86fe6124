// lcmae/backend/cuda/gemm.cuh - the catalogue's row-major GEMMs through column-major cuBLAS
// (contracts in backend/ops.hpp; same names and parameters as backend/cpu/gemm.hpp).
//
// The mapping. A row-major (R, C) matrix with row stride ld is, byte for byte, the column-major
// (C, R) matrix - its transpose - with leading dimension ld. So the row-major product
//     C(M,N) = alpha op(A) op(B) + beta C
// is, read column-major, C^T(N,M) = alpha op(B)^T op(A)^T + beta C^T: cuBLAS is called with the
// operands swapped (B first, A second), m = N, n = M, and each operand's transpose flag kept as it
// is (row-major A stored untransposed IS column-major A^T = op(A)^T; stored transposed, its
// column-major view is op(A), which cuBLAS transposes). The leading dimensions pass through
// unchanged, and cuBLAS's own checks (ld >= rows of its column-major view) are exactly the row-major
// ones (ld >= stored columns).
//
// Precision: double is cublasDgemm; float follows ctx.precision(): Fp32 = cublasGemmEx with
// CUBLAS_COMPUTE_32F (strict: no TF32, whatever the handle's math mode), Tf32 =
// CUBLAS_COMPUTE_32F_FAST_TF32, Bf16 = not implemented for float storage (throws).
//
// K == 0 is handled here (C = beta C, or zeros when beta == 0) rather than trusting every cuBLAS
// version to honour "beta == 0 ignores NaN" on that degenerate path; for K > 0 cuBLAS follows the
// BLAS rule that C is not read when beta == 0.
#pragma once

#include <cublas_v2.h>

#include <climits>
#include <type_traits>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

/// C(b)[i, j] = beta == 0 ? 0 : beta * C(b)[i, j] for `batch` row-major (M, N) matrices at stride sC.
template <class T>
__global__ void gemm_k0_kernel(long long M, long long N, T beta, T* C, long long ldc, long long sC, long long batch) {
    const long long n = batch * M * N;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long b = i / (M * N), r = (i / N) % M, c = i % N;
        T* p = C + b * sC + r * ldc + c;
        *p = beta == T(0) ? T(0) : beta * *p;
    }
}

inline void check_int(long v, const char* what) {
    LCMAE_CHECK(v >= 0 && v <= long(INT_MAX), "cuBLAS takes int sizes: " << what << " = " << v << " is out of range");
}

/// The cuBLAS compute type for float storage under the context's precision.
inline cublasComputeType_t float_compute_type(const Cuda& ctx) {
    switch (ctx.precision()) {
        case Precision::Fp32: return CUBLAS_COMPUTE_32F;
        case Precision::Tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
        case Precision::Bf16: break;
    }
    LCMAE_FAIL("Precision::Bf16 is not implemented for float storage yet (use Fp32 or Tf32)");
}

inline cublasOperation_t op_of(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

template <class T>
inline void gemm_k0(const Cuda& ctx, long M, long N, T beta, T* C, long ldc, long sC, long batch) {
    const long long n = (long long)batch * M * N;
    if (n == 0) return;
    gemm_k0_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(M, N, beta, C, ldc, sC, batch);
    LCMAE_CUDA_CHECK_LAUNCH("gemm_k0_kernel");
}

}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

template <class T>
inline void gemm(const backend::Cuda& ctx, bool ta, bool tb, long M, long N, long K, T alpha, const T* A,
                 long lda, const T* B, long ldb, T beta, T* C, long ldc) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "CUDA gemm: float or double");
    using namespace backend::cuda_detail;
    LCMAE_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm sizes must be non-negative, got M " << M << " N " << N << " K " << K);
    if (M == 0 || N == 0) return;
    if (K == 0) return gemm_k0(ctx, M, N, beta, C, ldc, 0, 1);
    check_int(M, "M"); check_int(N, "N"); check_int(K, "K");
    check_int(lda, "lda"); check_int(ldb, "ldb"); check_int(ldc, "ldc");
    // Column-major: C^T(N,M) = op(B)^T(N,K) op(A)^T(K,M) (see the top of this file).
    if constexpr (std::is_same_v<T, double>) {
        LCMAE_CUBLAS_CHECK(cublasDgemm(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K), &alpha, B,
                                       int(ldb), A, int(lda), &beta, C, int(ldc)));
    } else {
        LCMAE_CUBLAS_CHECK(cublasGemmEx(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K), &alpha, B,
                                        CUDA_R_32F, int(ldb), A, CUDA_R_32F, int(lda), &beta, C, CUDA_R_32F,
                                        int(ldc), float_compute_type(ctx), CUBLAS_GEMM_DEFAULT));
    }
}

template <class T>
inline void gemm_batched(const backend::Cuda& ctx, bool ta, bool tb, long M, long N, long K, T alpha,
                         const T* A, long lda, long sA, const T* B, long ldb, long sB, T beta, T* C,
                         long ldc, long sC, long batch) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "CUDA gemm_batched: float or double");
    using namespace backend::cuda_detail;
    LCMAE_CHECK(batch >= 0, "gemm_batched needs a non-negative batch, got " << batch);
    LCMAE_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm_batched sizes must be non-negative, got M " << M << " N " << N << " K " << K);
    if (batch == 0 || M == 0 || N == 0) return;
    if (K == 0) return gemm_k0(ctx, M, N, beta, C, ldc, sC, batch);
    check_int(M, "M"); check_int(N, "N"); check_int(K, "K"); check_int(batch, "batch");
    check_int(lda, "lda"); check_int(ldb, "ldb"); check_int(ldc, "ldc");
    if constexpr (std::is_same_v<T, double>) {
        LCMAE_CUBLAS_CHECK(cublasDgemmStridedBatched(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K),
                                                     &alpha, B, int(ldb), sB, A, int(lda), sA, &beta, C, int(ldc),
                                                     sC, int(batch)));
    } else {
        LCMAE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K),
                                                      &alpha, B, CUDA_R_32F, int(ldb), sB, A, CUDA_R_32F, int(lda),
                                                      sA, &beta, C, CUDA_R_32F, int(ldc), sC, int(batch),
                                                      float_compute_type(ctx), CUBLAS_GEMM_DEFAULT));
    }
}

}  // namespace lcmae::ops
