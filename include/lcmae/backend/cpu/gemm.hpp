// lcmae/backend/cpu/gemm.hpp - GEMM on our own buffers (contract in ops.hpp): each
// single-threaded piece through the context's provider (Eigen maps, or OpenBLAS where built in:
// cpu/gemm_provider.hpp), our own panel split over threads.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/cpu/eigen_maps.hpp"
#include "lcmae/backend/cpu/gemm_bf16.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::ops {

/// GEMMs below this many multiply-adds run in one Eigen call (its own threading decides).
inline constexpr long kGemmSplitMin = 1L << 21;

namespace detail {
// C = alpha op(A) op(B) + beta C, single call into Eigen's GEMM kernel (which threads internally
// unless it is already inside a parallel region).
template <class T, class MA, class MB>
inline void gemm_eigen(long M, long N, T alpha, const MA& a, const MB& b, T beta, T* C, long ldc) {
    auto c = backend::cpu::map_rm(C, M, N, ldc);
    if (beta == T(0)) {
        c.noalias() = alpha * a * b;
    } else {
        if (beta != T(1)) c *= beta;
        c.noalias() += alpha * a * b;
    }
}
#ifdef LCMAE_HAVE_OPENBLAS
// The same through OpenBLAS, single-threaded (gemm_provider.hpp). Row-major CBLAS takes our
// leading dimensions as they are. beta == 0 makes OpenBLAS overwrite C (NaNs included), as our
// contract requires (tested in tests/backend/test_backend.cpp for every provider).
template <class T>
inline void gemm_openblas(bool ta, bool tb, long M, long N, long K, T alpha, const T* A, long lda, const T* B,
                          long ldb, T beta, T* C, long ldc) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "OpenBLAS multiplies float or double");
    const auto opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, opa, opb, blasint(M), blasint(N), blasint(K), alpha, A, blasint(lda), B,
                    blasint(ldb), beta, C, blasint(ldc));
    else
        cblas_dgemm(CblasRowMajor, opa, opb, blasint(M), blasint(N), blasint(K), alpha, A, blasint(lda), B,
                    blasint(ldb), beta, C, blasint(ldc));
}
#endif
}  // namespace detail

template <class T>
inline void gemm(const backend::Cpu& ctx, bool ta, bool tb, long M, long N, long K, T alpha, const T* A,
                 long lda, const T* B, long ldb, T beta, T* C, long ldc) {
    LCMAE_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm sizes must be non-negative, got M " << M << " N " << N << " K " << K);
    if (M == 0 || N == 0) return;
    using backend::cpu::map_rm;
    // Threading: instead of Eigen's own parallel GEMM (which synchronises its threads with spin
    // loops once per k-block, and burns whole time slices when a core is shared with other
    // processes), split C into panels along its longer side and hand them out dynamically; each
    // panel is one single-threaded Eigen GEMM (Eigen does not thread inside a parallel region).
    // One OpenMP barrier per call, and a descheduled thread's panels are taken by the other.
    // Each C element is still computed by exactly one panel with the full K sum.
    const int nt = ctx.threads();
    if (nt > 1 && !omp_in_parallel() && double(M) * N * K >= double(kGemmSplitMin)) {
        const bool split_m = M >= N;
        const long len = split_m ? M : N;
        long panels = std::min<long>(4L * nt, (len + 63) / 64);  // >= 64 rows/cols per panel
        if (panels > 1) {
            const long step = ((len + panels - 1) / panels + 15) / 16 * 16;
            panels = (len + step - 1) / step;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
            for (long p = 0; p < panels; ++p) {
                const long o = p * step, n = std::min(step, len - o);
                if (split_m)  // rows o.. of op(A) and C
                    gemm(ctx, ta, tb, n, N, K, alpha, ta ? A + o : A + o * lda, lda, B, ldb, beta, C + o * ldc, ldc);
                else  // columns o.. of op(B) and C
                    gemm(ctx, ta, tb, M, n, K, alpha, A, lda, tb ? B + o * ldb : B + o, ldb, beta, C + o, ldc);
            }
            return;
        }
    }
    if (K == 0) {  // op(A) op(B) is all zeros
        auto c = map_rm(C, M, N, ldc);
        if (beta == T(0)) c.setZero(); else c *= beta;
        return;
    }
    if constexpr (std::is_same_v<T, float>) {  // Precision::Bf16: own AVX512-BF16 kernel, per panel
        if (ctx.precision() == backend::Precision::Bf16) {
            backend::cpu::bf16::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            return;
        }
    }
#ifdef LCMAE_HAVE_OPENBLAS
    if (ctx.gemm_provider() == backend::cpu::GemmProvider::OpenBlas) {
        detail::gemm_openblas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    if (!ta && !tb)
        detail::gemm_eigen(M, N, alpha, map_rm(A, M, K, lda), map_rm(B, K, N, ldb), beta, C, ldc);
    else if (!ta && tb)
        detail::gemm_eigen(M, N, alpha, map_rm(A, M, K, lda), map_rm(B, N, K, ldb).transpose(), beta, C, ldc);
    else if (ta && !tb)
        detail::gemm_eigen(M, N, alpha, map_rm(A, K, M, lda).transpose(), map_rm(B, K, N, ldb), beta, C, ldc);
    else
        detail::gemm_eigen(M, N, alpha, map_rm(A, K, M, lda).transpose(), map_rm(B, N, K, ldb).transpose(), beta, C, ldc);
}

/// Batched GEMM: parallel over the batch, each problem single-threaded inside (one level of
/// parallelism at a time).
template <class T>
inline void gemm_batched(const backend::Cpu& ctx, bool ta, bool tb, long M, long N, long K, T alpha,
                         const T* A, long lda, long sA, const T* B, long ldb, long sB, T beta, T* C,
                         long ldc, long sC, long batch) {
    LCMAE_CHECK(batch >= 0, "gemm_batched needs a non-negative batch, got " << batch);
#pragma omp parallel for schedule(static) num_threads(ctx.threads())
    for (long i = 0; i < batch; ++i)
        gemm(ctx, ta, tb, M, N, K, alpha, A + i * sA, lda, B + i * sB, ldb, beta, C + i * sC, ldc);
}

}  // namespace lcmae::ops
