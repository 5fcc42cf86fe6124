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
// CUBLAS_COMPUTE_32F_FAST_TF32, Bf16 = "BF16 GEMM operands": A and B are converted to bf16
// (round to nearest even) into the context's GemmA / GemmB scratch slots, packed with a row stride
// rounded up to 8 values (16-byte aligned rows for the tensor cores), by a vectorised kernel
// (float4 in, 4 bf16 out) where the layout allows, and cuBLAS multiplies them with CUDA_R_16BF
// inputs, CUDA_R_32F output (C read and written in float, alpha/beta in float) and
// CUBLAS_COMPUTE_32F (FP32 accumulation). Only the operands are rounded: the relative error is
// ~2^-9 per product, ~3e-3 on a random GEMM. Activations, weights and the optimiser stay FP32; this
// is the first step toward the full BF16 mode of issue 8 (bf16 activations), not that mode. The
// conversions cost one extra read of A and B per GEMM (and scratch: as large as the largest operand
// seen; grown on demand, after warm-up no allocation).
//
// K == 0 is handled here (C = beta C, or zeros when beta == 0) rather than trusting every cuBLAS
// version to honour "beta == 0 ignores NaN" on that degenerate path; for K > 0 cuBLAS follows the
// BLAS rule that C is not read when beta == 0.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <climits>
#include <cstdint>
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

/// The cuBLAS compute type for float storage under the context's precision (Fp32, Tf32; Bf16 GEMMs
/// go through gemm_bf16 and compute in CUBLAS_COMPUTE_32F).
inline cublasComputeType_t float_compute_type(const Cuda& ctx) {
    switch (ctx.precision()) {
        case Precision::Fp32: return CUBLAS_COMPUTE_32F;
        case Precision::Tf32: return CUBLAS_COMPUTE_32F_FAST_TF32;
        case Precision::Bf16: return CUBLAS_COMPUTE_32F;
    }
    LCMAE_FAIL("unknown Precision");
}

inline cublasOperation_t op_of(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

// ---- BF16 operands ------------------------------------------------------------------------------

/// Contiguous: dst[i] = bf16(src[i]) for i < n; 4 per thread with a float4 load and one 8-byte store
/// (src 16-byte aligned, n4 = n / 4 groups), the tail (n % 4) by the first threads.
/// (Templates only so that a header may define them.)
template <class Unused = void>
__global__ void to_bf16_contiguous_kernel(long long n, const float* __restrict__ src,
                                                 __nv_bfloat16* __restrict__ dst) {
    const long long n4 = n / 4;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const float4* s4 = reinterpret_cast<const float4*>(src);
    uint2* d4 = reinterpret_cast<uint2*>(dst);
    for (long long i = t; i < n4; i += stride) {
        const float4 v = s4[i];
        const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
        uint2 o;
        o.x = *reinterpret_cast<const unsigned int*>(&lo);
        o.y = *reinterpret_cast<const unsigned int*>(&hi);
        d4[i] = o;
    }
    for (long long i = 4 * n4 + t; i < n; i += stride) dst[i] = __float2bfloat16_rn(src[i]);
}

/// Strided: dst[(b sd) + r ldd + c] = bf16(src[b s + r ld + c]) for b < batch, r < rows, c < cols;
/// `vec` (cols, ld, s multiples of 4, src 16-byte aligned; ldd, sd multiples of 8): 4 per thread.
template <class Unused = void>
__global__ void to_bf16_strided_kernel(long long batch, long long rows, long long cols, const float* __restrict__ src,
                                              long long ld, long long s, __nv_bfloat16* __restrict__ dst, long long ldd,
                                              long long sd, bool vec) {
    const int w = vec ? 4 : 1;
    const long long groups = cols / w;  // vec: cols % 4 == 0
    const long long n = batch * rows * groups;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long q = i / groups, g = i - q * groups;  // q = b rows + r
        const long long b = q / rows, r = q - b * rows;
        const float* sp = src + b * s + r * ld + g * w;
        __nv_bfloat16* dp = dst + b * sd + r * ldd + g * w;
        if (vec) {
            const float4 v = *reinterpret_cast<const float4*>(sp);
            const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
            uint2 o;
            o.x = *reinterpret_cast<const unsigned int*>(&lo);
            o.y = *reinterpret_cast<const unsigned int*>(&hi);
            *reinterpret_cast<uint2*>(dp) = o;
        } else {
            *dp = __float2bfloat16_rn(*sp);
        }
    }
}

/// A bf16 copy of `batch` row-major (rows, cols) float matrices (row stride ld, batch stride s; s 0
/// = one matrix shared by the batch), packed in scratch `slot` with row stride ldd = cols rounded up
/// to 8 and batch stride sd (rows ldd, or 0 when s is 0). The padding columns are not written
/// (cuBLAS never reads them).
struct Bf16Operand {
    const __nv_bfloat16* p = nullptr;
    long long ld = 0, stride = 0;
};
inline Bf16Operand to_bf16(const Cuda& ctx, ScratchSlot slot, long long batch, long long rows, long long cols,
                           const float* src, long long ld, long long s) {
    const long long ldd = (cols + 7) / 8 * 8;
    const long long copies = s == 0 ? 1 : batch;
    const long long sd = s == 0 ? 0 : rows * ldd;
    auto* dst = static_cast<__nv_bfloat16*>(
        ctx.scratch(slot, static_cast<std::size_t>(copies * rows * ldd) * sizeof(__nv_bfloat16)));
    const bool aligned = reinterpret_cast<std::uintptr_t>(src) % 16 == 0;
    if (aligned && ld == cols && ldd == cols && (copies == 1 || s == rows * cols)) {  // one contiguous block
        const long long n = copies * rows * cols;
        to_bf16_contiguous_kernel<><<<blocks_for((n + 3) / 4), kThreads, 0, ctx.stream()>>>(n, src, dst);
    } else {
        const bool vec = aligned && cols % 4 == 0 && ld % 4 == 0 && s % 4 == 0;
        const long long n = copies * rows * (vec ? cols / 4 : cols);
        to_bf16_strided_kernel<><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(copies, rows, cols, src, ld,
                                                                                copies == 1 ? 0 : s, dst, ldd, sd, vec);
    }
    LCMAE_CUDA_CHECK_LAUNCH("to_bf16 kernel");
    return {dst, ldd, sd};
}

/// Row-major C(M,N) (float, batch stride sC) = alpha op(A) op(B) + beta C on bf16 operands (strides in
/// bf16 values), FP32 accumulation; batch 1 uses cublasGemmEx.
inline void gemm_bf16_raw(const Cuda& ctx, bool ta, bool tb, long M, long N, long K, float alpha, Bf16Operand A,
                          Bf16Operand B, float beta, float* C, long ldc, long sC, long batch) {
    check_int(M, "M"); check_int(N, "N"); check_int(K, "K"); check_int(batch, "batch"); check_int(ldc, "ldc");
    check_int(long(A.ld), "bf16 lda"); check_int(long(B.ld), "bf16 ldb");
    if (batch == 1) {
        LCMAE_CUBLAS_CHECK(cublasGemmEx(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K), &alpha, B.p,
                                        CUDA_R_16BF, int(B.ld), A.p, CUDA_R_16BF, int(A.ld), &beta, C, CUDA_R_32F,
                                        int(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        LCMAE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K), &alpha,
                                                      B.p, CUDA_R_16BF, int(B.ld), B.stride, A.p, CUDA_R_16BF, int(A.ld),
                                                      A.stride, &beta, C, CUDA_R_32F, int(ldc), sC, int(batch),
                                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
}

/// The float GEMM of Precision::Bf16: converts A and B (stored shapes: A (M, K) or, transposed,
/// (K, M); B (K, N) or (N, K)) into the GemmA / GemmB slots, then gemm_bf16_raw.
inline void gemm_bf16(const Cuda& ctx, bool ta, bool tb, long M, long N, long K, float alpha, const float* A, long lda,
                      long sA, const float* B, long ldb, long sB, float beta, float* C, long ldc, long sC, long batch) {
    const Bf16Operand a = to_bf16(ctx, ScratchSlot::GemmA, batch, ta ? K : M, ta ? M : K, A, lda, sA);
    const Bf16Operand b = to_bf16(ctx, ScratchSlot::GemmB, batch, tb ? N : K, tb ? K : N, B, ldb, sB);
    gemm_bf16_raw(ctx, ta, tb, M, N, K, alpha, a, b, beta, C, ldc, sC, batch);
}

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
    } else if (ctx.precision() == backend::Precision::Bf16) {
        gemm_bf16(ctx, ta, tb, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
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
    } else if (ctx.precision() == backend::Precision::Bf16) {
        gemm_bf16(ctx, ta, tb, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
    } else {
        LCMAE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K),
                                                      &alpha, B, CUDA_R_32F, int(ldb), sB, A, CUDA_R_32F, int(lda),
                                                      sA, &beta, C, CUDA_R_32F, int(ldc), sC, int(batch),
                                                      float_compute_type(ctx), CUBLAS_GEMM_DEFAULT));
    }
}

}  // namespace lcmae::ops
