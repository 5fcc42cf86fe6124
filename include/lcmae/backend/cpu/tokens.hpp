// lcmae/backend/cpu/tokens.hpp - token gather/scatter by index and reductions (ops.hpp).
#pragma once

#include <cstdint>
#include <cstring>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/cpu/elementwise.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::ops {

namespace detail {
/// Every one of the n token ids must lie in [0, Nsrc): a bad id is an Error, never a wild read.
inline void check_token_ids(long n, long Nsrc, const std::int64_t* idx) {
    for (long i = 0; i < n; ++i)
        LCMAE_CHECK(idx[i] >= 0 && idx[i] < Nsrc, "token index " << idx[i] << " at position " << i
                                                                   << " is outside [0, " << Nsrc << ")");
}
}  // namespace detail

/// dst[b, k, :] = src[b, idx[b, k], :]; idx values must lie in [0, Nsrc) (checked).
template <class T>
inline void gather_rows(const backend::Cpu& ctx, long B, long Nsrc, long K, long D, const T* src,
                        const std::int64_t* idx, T* dst) {
    detail::check_token_ids(B * K, Nsrc, idx);
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (B * K * D > kParallelMin)
    for (long i = 0; i < B * K; ++i) {
        const long b = i / K;
        std::memcpy(dst + i * D, src + (b * Nsrc + idx[i]) * D, sizeof(T) * D);
    }
}

/// dst[b, idx[b, k], :] += src[b, k, :]. Parallel over the batch only, so duplicate indices within
/// a sample still accumulate correctly.
template <class T>
inline void scatter_rows_add(const backend::Cpu& ctx, long B, long Nsrc, long K, long D, const T* src,
                             const std::int64_t* idx, T* dst) {
    detail::check_token_ids(B * K, Nsrc, idx);
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (B * K * D > kParallelMin)
    for (long b = 0; b < B; ++b)
        for (long k = 0; k < K; ++k) {
            const T* s = src + (b * K + k) * D;
            T* d = dst + (b * Nsrc + idx[b * K + k]) * D;
            for (long c = 0; c < D; ++c) d[c] += s[c];
        }
}

template <class T>
inline double sum(const backend::Cpu&, long n, const T* x) {
    double s = 0;
    for (long i = 0; i < n; ++i) s += x[i];
    return s;
}
template <class T>
inline double dot(const backend::Cpu&, long n, const T* a, const T* b) {
    double s = 0;
    for (long i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
    return s;
}
template <class T>
inline double sum_squares(const backend::Cpu& ctx, long n, const T* x) {
    return dot(ctx, n, x, x);
}

/// y[b, :] = mean over n of x[b, n, :] (x is (B, N, D) with row stride D).
template <class T>
inline void mean_tokens(const backend::Cpu&, long B, long N, long D, const T* x, T* y) {
    for (long b = 0; b < B; ++b) {
        T* yb = y + b * D;
        for (long c = 0; c < D; ++c) yb[c] = 0;
        for (long n = 0; n < N; ++n)
            for (long c = 0; c < D; ++c) yb[c] += x[(b * N + n) * D + c];
        for (long c = 0; c < D; ++c) yb[c] /= T(N);
    }
}

}  // namespace lcmae::ops
