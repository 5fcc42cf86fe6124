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
//
// The model's token ops (assemble_tokens, split_token_grads, mask_token_mix(_backward),
// keep_to_slots, decoder_assemble(_backward), pool_tokens, unpool_tokens_add): one thread per
// output element, or, where an output sums over rows, one thread per column that walks the rows in
// the CPU's order (split_token_grads' dcls, pool_tokens, unpool_tokens_add: bit-identical to the
// CPU) or the deterministic block-column reduction of launch.cuh (mask_token_mix_backward's and
// decoder_assemble_backward's dmask_token over B*L rows: fixed order, but not the CPU's, so equal
// to rounding). Invalid ids/slots and empty pools go to the error record (see context.cuh).
#pragma once

#include <cstdint>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/colreduce.cuh"
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


/// x0 (B, 1+K, D): row 0 = cls + pos[0]; row 1+k = emb[b, k] + pos[1 + ids[b, k]] (ids null: k).
template <class T>
__global__ void assemble_tokens_kernel(long long B, long long K, long long D, const T* __restrict__ emb,
                                       const std::int64_t* __restrict__ ids, const T* __restrict__ cls,
                                       const T* __restrict__ pos, T* __restrict__ x0, DeviceErrors* errors) {
    const long long N = 1 + K, n_all = B * N * D;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_all; i += (long long)gridDim.x * blockDim.x) {
        const long long c = i % D, row = i / D, b = row / N, n = row % N;
        if (n == 0) {
            x0[i] = cls[c] + pos[c];
            continue;
        }
        const long long k = n - 1;
        const long long id = ids ? (long long)ids[b * K + k] : k;
        if (id < 0) {
            if (c == 0) record_error(errors, kErrAssembleTokens, id, b * K + k);
            continue;
        }
        x0[i] = emb[(b * K + k) * D + c] + pos[(1 + id) * D + c];
    }
}

/// dcls[c] += sum_b dx[b, 0, c], b in order (the CPU's order): one thread per column.
template <class T>
__global__ void split_token_cls_kernel(long long B, long long K, long long D, const T* __restrict__ dx, T* __restrict__ dcls) {
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= D) return;
    const long long N = 1 + K;
    T acc = dcls[c];
    for (long long b = 0; b < B; ++b) acc += dx[b * N * D + c];
    dcls[c] = acc;
}

/// demb[b, k, :] = dx[b, 1+k, :].
template <class T>
__global__ void split_token_emb_kernel(long long B, long long K, long long D, const T* __restrict__ dx, T* __restrict__ demb) {
    const long long N = 1 + K, n_all = B * K * D;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_all; i += (long long)gridDim.x * blockDim.x) {
        const long long c = i % D, row = i / D, b = row / K, k = row % K;
        demb[i] = dx[(b * N + 1 + k) * D + c];
    }
}

/// x[r] = x[r] (1 - w[r]) + mask_token w[r].
template <class T>
__global__ void mask_token_mix_kernel(long long rows, long long D, const T* __restrict__ w, const T* __restrict__ mt,
                                      T* __restrict__ x) {
    const long long n = rows * D;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / D, c = i % D;
        x[i] = x[i] * (T(1) - w[r]) + mt[c] * w[r];
    }
}

/// Stage 1 of dmt[c] += sum_r w[r] dx[r, c] (colreduce.cuh); then dx[r, c] *= 1 - w[r]: each
/// element is read (for the sum) and then scaled by the one thread that owns it.
template <class T>
__global__ void mask_token_mix_backward_partial_kernel(long long rows, long long D, long long chunk_rows,
                                                       const T* __restrict__ w, T* __restrict__ dx,
                                                       acc_t<T>* __restrict__ partial) {
    using A = acc_t<T>;
    __shared__ A sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    long long r0, r1;
    chunk_range(rows, chunk_rows, r0, r1);
    A acc = A(0);
    if (c < D)
        for (long long r = r0 + threadIdx.y; r < r1; r += kColRows) {
            const T g = dx[r * D + c];
            acc += A(g * w[r]);
            dx[r * D + c] = g * (T(1) - w[r]);
        }
    const A s = column_sum(acc, sh);
    if (c < D && threadIdx.y == 0) *partial_at(partial, 0, D, c) = s;
}

/// slot_of[b, :] = -1, then slot_of[b, keep[b, k]] = k for k in order (the last duplicate wins, as
/// on the CPU): one thread per sample. (A template only so that a header may define it.)
template <class Unused = void>
__global__ void keep_to_slots_kernel(long long B, long long L, long long K, const std::int64_t* __restrict__ keep,
                                     std::int64_t* __restrict__ slot_of, DeviceErrors* errors) {
    const long long b = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (b >= B) return;
    for (long long n = 0; n < L; ++n) slot_of[b * L + n] = -1;
    for (long long k = 0; k < K; ++k) {
        const long long id = keep[b * K + k];
        if (id < 0 || id >= L) {
            record_error(errors, kErrKeepToSlots, id, b * K + k);
            continue;
        }
        slot_of[b * L + id] = k;
    }
}

/// x0 (B, 1+L, D): row 0 = emb[b, 0]; row 1+n = emb[b, 1 + slot] or mask_token (slot -1); + pos[row].
template <class T>
__global__ void decoder_assemble_kernel(long long B, long long L, long long K, long long D, const T* __restrict__ emb,
                                        const std::int64_t* __restrict__ slot_of, const T* __restrict__ mt,
                                        const T* __restrict__ pos, T* __restrict__ x0, DeviceErrors* errors) {
    const long long N = 1 + L, n_all = B * N * D;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_all; i += (long long)gridDim.x * blockDim.x) {
        const long long c = i % D, row = i / D, b = row / N, n = row % N;
        const T* src;
        if (n == 0) {
            src = emb + b * (1 + K) * D;
        } else {
            const long long s = slot_of[b * L + n - 1];
            if (s < -1 || s >= K) {
                if (c == 0) record_error(errors, kErrDecoderAssemble, s, b * L + n - 1);
                continue;
            }
            src = s >= 0 ? emb + (b * (1 + K) + 1 + s) * D : mt;
        }
        x0[i] = src[c] + pos[n * D + c];
    }
}

/// demb[b, 0] = dx[b, 0]; demb[b, 1 + slot] = dx[b, 1 + n] for the rows with a slot.
template <class T>
__global__ void decoder_assemble_backward_emb_kernel(long long B, long long L, long long K, long long D,
                                                     const T* __restrict__ dx, const std::int64_t* __restrict__ slot_of,
                                                     T* __restrict__ demb, DeviceErrors* errors) {
    const long long N = 1 + L, n_all = B * N * D;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_all; i += (long long)gridDim.x * blockDim.x) {
        const long long c = i % D, row = i / D, b = row / N, n = row % N;
        if (n == 0) {
            demb[b * (1 + K) * D + c] = dx[i];
            continue;
        }
        const long long s = slot_of[b * L + n - 1];
        if (s < -1 || s >= K) {
            if (c == 0) record_error(errors, kErrDecoderAssemble, s, b * L + n - 1);
            continue;
        }
        if (s >= 0) demb[(b * (1 + K) + 1 + s) * D + c] = dx[i];
    }
}

/// Stage 1 of dmt[c] += sum over (b, n) with slot_of[b, n] == -1 of dx[b, 1 + n, c] (colreduce.cuh;
/// rows r = b L + n).
template <class T>
__global__ void decoder_assemble_backward_mt_partial_kernel(long long B, long long L, long long D, long long chunk_rows,
                                                            const T* __restrict__ dx,
                                                            const std::int64_t* __restrict__ slot_of,
                                                            acc_t<T>* __restrict__ partial) {
    using A = acc_t<T>;
    __shared__ A sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    const long long N = 1 + L;
    long long r0, r1;
    chunk_range(B * L, chunk_rows, r0, r1);
    A acc = A(0);
    if (c < D)
        for (long long r = r0 + threadIdx.y; r < r1; r += kColRows) {
            if (slot_of[r] != -1) continue;
            const long long b = r / L, n = r % L;
            acc += A(dx[(b * N + 1 + n) * D + c]);
        }
    const A s = column_sum(acc, sh);
    if (c < D && threadIdx.y == 0) *partial_at(partial, 0, D, c) = s;
}

/// out[b, c]: x[b, 0, c] (cls) or the mean over the pooled tokens n = 1.. in order (the CPU's
/// order): one thread per (b, c).
template <class T>
__global__ void pool_tokens_kernel(long long B, long long N, long long D, const T* __restrict__ x, const T* __restrict__ w,
                                   bool cls, T* __restrict__ out, DeviceErrors* errors) {
    const long long n_all = B * D;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_all; i += (long long)gridDim.x * blockDim.x) {
        const long long b = i / D, c = i % D;
        if (cls) {
            out[i] = x[b * N * D + c];
            continue;
        }
        T acc = T(0);
        long long count = 0;
        for (long long n = 1; n < N; ++n) {
            if (w && w[b * (N - 1) + n - 1] != T(0)) continue;
            ++count;
            acc += x[(b * N + n) * D + c];
        }
        if (count == 0 && c == 0) record_error(errors, kErrPoolTokens, b, b);
        out[i] = acc / T(count);  // 0/0: NaN where the CPU throws
    }
}

/// dx[b, n, c] += d[b, c] / count over the pooled tokens (or dx[b, 0, c] += d[b, c]).
template <class T>
__global__ void unpool_tokens_add_kernel(long long B, long long N, long long D, const T* __restrict__ d,
                                         const T* __restrict__ w, bool cls, T* __restrict__ dx) {
    const long long n_all = B * D;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_all; i += (long long)gridDim.x * blockDim.x) {
        const long long b = i / D, c = i % D;
        const T g = d[i];
        if (cls) {
            dx[b * N * D + c] += g;
            continue;
        }
        long long count = 0;
        for (long long n = 1; n < N; ++n) count += !(w && w[b * (N - 1) + n - 1] != T(0));
        const T share = g / T(count);
        for (long long n = 1; n < N; ++n) {
            if (w && w[b * (N - 1) + n - 1] != T(0)) continue;
            dx[(b * N + n) * D + c] += share;
        }
    }
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

/// x0 (B, 1+K, D): row 0 = cls + pos[0]; row 1+k = emb[b, k] + pos[1 + ids[b, k]] (ids may be null).
template <class T>
inline void assemble_tokens(const backend::Cuda& ctx, long B, long K, long D, const T* emb, const std::int64_t* ids,
                            const T* cls, const T* pos, T* x0) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && K >= 0 && D >= 0, "assemble_tokens sizes must be non-negative");
    const long long n = (long long)B * (1 + K) * D;
    if (n == 0) return;
    assemble_tokens_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(B, K, D, emb, ids, cls, pos, x0,
                                                                              ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("assemble_tokens_kernel");
}

/// dcls += sum_b dx[b, 0] (accumulates, b in order); demb[b, k] = dx[b, 1+k] (written).
template <class T>
inline void split_token_grads(const backend::Cuda& ctx, long B, long K, long D, const T* dx, T* dcls, T* demb) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && K >= 0 && D >= 0, "split_token_grads sizes must be non-negative");
    if (B == 0 || D == 0) return;
    split_token_cls_kernel<T><<<static_cast<unsigned int>((D + kThreads - 1) / kThreads), kThreads, 0, ctx.stream()>>>(
        B, K, D, dx, dcls);
    LCMAE_CUDA_CHECK_LAUNCH("split_token_cls_kernel");
    const long long n = (long long)B * K * D;
    if (n == 0) return;
    split_token_emb_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(B, K, D, dx, demb);
    LCMAE_CUDA_CHECK_LAUNCH("split_token_emb_kernel");
}

/// x[r] = x[r] (1 - w[r]) + mask_token w[r].
template <class T>
inline void mask_token_mix(const backend::Cuda& ctx, long rows, long D, const T* w, const T* mt, T* x) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 0 && D >= 0, "mask_token_mix sizes must be non-negative");
    const long long n = (long long)rows * D;
    if (n == 0) return;
    mask_token_mix_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, D, w, mt, x);
    LCMAE_CUDA_CHECK_LAUNCH("mask_token_mix_kernel");
}

/// dmask_token += sum_r w[r] dx[r] (accumulates); then dx[r] *= 1 - w[r].
template <class T>
inline void mask_token_mix_backward(const backend::Cuda& ctx, long rows, long D, const T* w, T* dx, T* dmt) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 0 && D >= 0, "mask_token_mix_backward sizes must be non-negative");
    if (rows == 0 || D == 0) return;
    using A = acc_t<T>;
    const ColSplit sp = col_split(rows, D);
    A* partial = col_scratch<A>(ctx, sp.chunks * D);
    mask_token_mix_backward_partial_kernel<T><<<col_stage1_grid(D, sp), col_stage1_block(), 0, ctx.stream()>>>(
        rows, D, sp.chunk_rows, w, dx, partial);
    LCMAE_CUDA_CHECK_LAUNCH("mask_token_mix_backward_partial_kernel");
    col_finish_add<T, A>(ctx, D, sp, partial, dmt, nullptr);
}

/// slot_of (B, L) = -1, then slot_of[b, keep[b, k]] = k (keep, slot_of: device int64).
inline void keep_to_slots(const backend::Cuda& ctx, long B, long L, long K, const std::int64_t* keep,
                          std::int64_t* slot_of) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && L >= 0 && K >= 0, "keep_to_slots sizes must be non-negative");
    if (B == 0 || L == 0) return;
    keep_to_slots_kernel<><<<static_cast<unsigned int>((B + 127) / 128), 128, 0, ctx.stream()>>>(B, L, K, keep, slot_of,
                                                                                             ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("keep_to_slots_kernel");
}

/// MAE's un-shuffle with mask tokens, plus the decoder pos-embed: x0 (B, 1+L, D).
template <class T>
inline void decoder_assemble(const backend::Cuda& ctx, long B, long L, long K, long D, const T* emb,
                             const std::int64_t* slot_of, const T* mt, const T* pos, T* x0) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && L >= 0 && K >= 0 && D >= 0, "decoder_assemble sizes must be non-negative");
    const long long n = (long long)B * (1 + L) * D;
    if (n == 0) return;
    decoder_assemble_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(B, L, K, D, emb, slot_of, mt, pos, x0,
                                                                               ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("decoder_assemble_kernel");
}

/// Adjoint of decoder_assemble's gather: demb written (the rows dx came from); dmask_token accumulates.
template <class T>
inline void decoder_assemble_backward(const backend::Cuda& ctx, long B, long L, long K, long D, const T* dx,
                                      const std::int64_t* slot_of, T* demb, T* dmt) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && L >= 0 && K >= 0 && D >= 0, "decoder_assemble_backward sizes must be non-negative");
    const long long n = (long long)B * (1 + L) * D;
    if (n == 0) return;
    decoder_assemble_backward_emb_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(B, L, K, D, dx, slot_of, demb,
                                                                                            ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("decoder_assemble_backward_emb_kernel");
    if (L == 0) return;
    if (D == 0) return;
    using A = acc_t<T>;
    const ColSplit sp = col_split((long long)B * L, D);
    A* partial = col_scratch<A>(ctx, sp.chunks * D);
    decoder_assemble_backward_mt_partial_kernel<T><<<col_stage1_grid(D, sp), col_stage1_block(), 0, ctx.stream()>>>(
        B, L, D, sp.chunk_rows, dx, slot_of, partial);
    LCMAE_CUDA_CHECK_LAUNCH("decoder_assemble_backward_mt_partial_kernel");
    col_finish_add<T, A>(ctx, D, sp, partial, dmt, nullptr);
}

/// out[b] = x[b, 0] (cls), or the mean of x[b, 1..N-1] over the tokens with w == 0 (w (B, N-1) or null).
template <class T>
inline void pool_tokens(const backend::Cuda& ctx, long B, long N, long D, const T* x, const T* w, bool cls, T* out) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && N >= 1 && D >= 0, "pool_tokens needs B >= 0, N >= 1, D >= 0");
    const long long n = (long long)B * D;
    if (n == 0) return;
    pool_tokens_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(B, N, D, x, w, cls, out, ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("pool_tokens_kernel");
}

/// The adjoint of pool_tokens, ADDED into dx.
template <class T>
inline void unpool_tokens_add(const backend::Cuda& ctx, long B, long N, long D, const T* d, const T* w, bool cls, T* dx) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && N >= 1 && D >= 0, "unpool_tokens_add needs B >= 0, N >= 1, D >= 0");
    const long long n = (long long)B * D;
    if (n == 0) return;
    unpool_tokens_add_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(B, N, D, d, w, cls, dx);
    LCMAE_CUDA_CHECK_LAUNCH("unpool_tokens_add_kernel");
}

}  // namespace lcmae::ops
