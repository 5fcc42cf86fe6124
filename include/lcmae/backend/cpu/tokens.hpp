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
// The same reductions written into backend memory (*out), the form generic code uses.
template <class T>
inline void sum(const backend::Cpu& ctx, long n, const T* x, double* out) { *out = sum(ctx, n, x); }
template <class T>
inline void dot(const backend::Cpu& ctx, long n, const T* a, const T* b, double* out) { *out = dot(ctx, n, a, b); }
template <class T>
inline void sum_squares(const backend::Cpu& ctx, long n, const T* x, double* out) { *out = sum_squares(ctx, n, x); }

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

/// x0 (B, 1+K, D): row 0 = cls + pos[0]; row 1+k = emb[b, k] + pos[1 + ids[b, k]].
template <class T>
inline void assemble_tokens(const backend::Cpu& ctx, long B, long K, long D, const T* emb, const std::int64_t* ids,
                            const T* cls, const T* pos, T* x0) {
    const long N = 1 + K;
    (void)ctx;
    for (long b = 0; b < B; ++b) {
        for (long c = 0; c < D; ++c) x0[b * N * D + c] = cls[c] + pos[c];
        for (long k = 0; k < K; ++k) {
            const T* pe = pos + (1 + (ids ? ids[b * K + k] : k)) * D;  // null ids: all tokens in order
            const T* e = emb + (b * K + k) * D;
            T* o = x0 + (b * N + 1 + k) * D;
            for (long c = 0; c < D; ++c) o[c] = e[c] + pe[c];
        }
    }
}

/// dcls += sum_b dx[b, 0]; demb[b, k] = dx[b, 1+k].
template <class T>
inline void split_token_grads(const backend::Cpu&, long B, long K, long D, const T* dx, T* dcls, T* demb) {
    const long N = 1 + K;
    for (long b = 0; b < B; ++b) {
        for (long c = 0; c < D; ++c) dcls[c] += dx[b * N * D + c];
        std::memcpy(demb + b * K * D, dx + (b * N + 1) * D, sizeof(T) * K * D);
    }
}

/// x[r] = x[r] (1 - w[r]) + mask_token w[r].
template <class T>
inline void mask_token_mix(const backend::Cpu&, long rows, long D, const T* w, const T* mt, T* x) {
    for (long i = 0; i < rows; ++i)
        for (long c = 0; c < D; ++c) x[i * D + c] = x[i * D + c] * (T(1) - w[i]) + mt[c] * w[i];
}

/// dmask_token += sum_r w[r] dx[r]; dx[r] *= 1 - w[r].
template <class T>
inline void mask_token_mix_backward(const backend::Cpu&, long rows, long D, const T* w, T* dx, T* dmt) {
    for (long i = 0; i < rows; ++i)
        for (long c = 0; c < D; ++c) {
            dmt[c] += dx[i * D + c] * w[i];
            dx[i * D + c] *= (T(1) - w[i]);
        }
}

/// slot_of (B, L) = -1, then slot_of[b, keep[b, k]] = k; keep ids must lie in [0, L).
inline void keep_to_slots(const backend::Cpu&, long B, long L, long K, const std::int64_t* keep, std::int64_t* slot_of) {
    detail::check_token_ids(B * K, L, keep);
    for (long i = 0; i < B * L; ++i) slot_of[i] = -1;
    for (long b = 0; b < B; ++b)
        for (long k = 0; k < K; ++k) slot_of[b * L + keep[b * K + k]] = k;
}

/// MAE's un-shuffle with mask tokens, plus the decoder pos-embed: x0 (B, 1+L, D).
template <class T>
inline void decoder_assemble(const backend::Cpu&, long B, long L, long K, long D, const T* emb,
                             const std::int64_t* slot_of, const T* mt, const T* pos, T* x0) {
    const long N = 1 + L;
    for (long b = 0; b < B; ++b)
        for (long n = 0; n < N; ++n) {
            const T* src = n == 0 ? emb + b * (1 + K) * D
                                  : (slot_of[b * L + n - 1] >= 0 ? emb + (b * (1 + K) + 1 + slot_of[b * L + n - 1]) * D : mt);
            T* o = x0 + (b * N + n) * D;
            const T* pe = pos + n * D;
            for (long c = 0; c < D; ++c) o[c] = src[c] + pe[c];
        }
}

/// Adjoint of decoder_assemble's gather: demb written; dmask_token accumulates.
template <class T>
inline void decoder_assemble_backward(const backend::Cpu&, long B, long L, long K, long D, const T* dx,
                                      const std::int64_t* slot_of, T* demb, T* dmt) {
    const long N = 1 + L;
    for (long b = 0; b < B; ++b) {
        std::memcpy(demb + b * (1 + K) * D, dx + b * N * D, sizeof(T) * D);
        for (long n = 0; n < L; ++n) {
            const T* src = dx + (b * N + 1 + n) * D;
            const std::int64_t k = slot_of[b * L + n];
            if (k >= 0) std::memcpy(demb + (b * (1 + K) + 1 + k) * D, src, sizeof(T) * D);
            else for (long c = 0; c < D; ++c) dmt[c] += src[c];
        }
    }
}

/// out[b] = x[b, 0] (cls), or the mean of x[b, 1..N-1] over tokens with w == 0 (w (B, N-1) or null).
template <class T>
inline void pool_tokens(const backend::Cpu&, long B, long N, long D, const T* x, const T* w, bool cls, T* out) {
    for (long b = 0; b < B; ++b) {
        T* o = out + b * D;
        if (cls) { std::memcpy(o, x + b * N * D, sizeof(T) * D); continue; }
        for (long c = 0; c < D; ++c) o[c] = T(0);
        long count = 0;
        for (long n = 1; n < N; ++n) {
            if (w && w[b * (N - 1) + n - 1] != T(0)) continue;
            ++count;
            for (long c = 0; c < D; ++c) o[c] += x[(b * N + n) * D + c];
        }
        LCMAE_CHECK(count > 0, "pool_tokens: sample " << b << " has no token to pool");
        for (long c = 0; c < D; ++c) o[c] /= T(count);
    }
}

/// dx[b, n] += d[b] / count over the pooled tokens (or dx[b, 0] += d[b] for cls).
template <class T>
inline void unpool_tokens_add(const backend::Cpu&, long B, long N, long D, const T* d, const T* w, bool cls, T* dx) {
    for (long b = 0; b < B; ++b) {
        const T* g = d + b * D;
        if (cls) {
            for (long c = 0; c < D; ++c) dx[b * N * D + c] += g[c];
            continue;
        }
        long count = 0;
        for (long n = 1; n < N; ++n) count += !(w && w[b * (N - 1) + n - 1] != T(0));
        for (long n = 1; n < N; ++n) {
            if (w && w[b * (N - 1) + n - 1] != T(0)) continue;
            for (long c = 0; c < D; ++c) dx[(b * N + n) * D + c] += g[c] / T(count);
        }
    }
}

}  // namespace lcmae::ops
