// lcmae/backend/cuda/colreduce.cuh - the two-stage, deterministic column reduction shared by every
// op that sums a tall matrix over its rows (bias_grad, col_sum_add, LayerNorm's dgamma/dbeta,
// BatchNorm's statistics and backward sums, the mask-token gradients).
//
// One block of (32 columns) x (kColRows row lanes) per 32 columns alone gives cols/32 blocks: 24
// for D = 768, a fraction of an H100/H200's 132 SMs, however many rows there are. So:
//   stage 1: grid (column blocks, chunks); block (x, k) sums rows [k*chunk_rows, (k+1)*chunk_rows)
//            of its 32 columns (thread (tx, ty) takes rows r0 + ty, r0 + ty + kColRows, ...; the
//            kColRows lane partials are added in a fixed order by column_sum) and writes the
//            chunk's partial column sums to scratch: partial[(q*chunks + k)*cols + c] for quantity q;
//   stage 2: one thread per column adds the chunks' partials in chunk order and accumulates into
//            the output (or finishes the statistic).
// The split depends only on (rows, cols) - never on the GPU's SM count - so the arithmetic order,
// and therefore every bit of the result, is the same on any GPU and on every run. No atomics.
// Partials are in the accumulator type (float for float storage, double for double; BatchNorm's
// forward statistics in double, as before). The partials live in the context's Columns scratch slot.
#pragma once

#include <algorithm>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

/// Stage 1 aims at this many blocks (4 per SM of a 132-SM H100/H200; a constant, so the split does
/// not depend on the GPU), with at least kColMinChunkRows rows per chunk and at most kColMaxChunks
/// chunks.
inline constexpr long long kColTargetBlocks = 528;
inline constexpr long long kColMinChunkRows = 64;
inline constexpr long long kColMaxChunks = 64;

struct ColSplit {
    long long chunks = 1;      // row chunks: gridDim.y of stage 1
    long long chunk_rows = 0;  // rows per chunk (the last may have fewer; none is empty)
};

/// The split of a (rows, cols) reduction; rows >= 1, cols >= 1.
inline ColSplit col_split(long long rows, long long cols) {
    const long long col_blocks = (cols + 31) / 32;
    long long chunks = (kColTargetBlocks + col_blocks - 1) / col_blocks;
    chunks = std::min(chunks, kColMaxChunks);
    chunks = std::min(chunks, std::max(1LL, rows / kColMinChunkRows));
    chunks = std::max(chunks, 1LL);
    const long long chunk_rows = (rows + chunks - 1) / chunks;
    return {(rows + chunk_rows - 1) / chunk_rows, chunk_rows};
}

inline dim3 col_stage1_grid(long long cols, const ColSplit& s) {
    return dim3(static_cast<unsigned int>((cols + 31) / 32), static_cast<unsigned int>(s.chunks));
}
inline dim3 col_stage1_block() { return dim3(32, kColRows); }
inline unsigned int col_stage2_blocks(long long cols) { return static_cast<unsigned int>((cols + 255) / 256); }

/// This block's chunk of rows: [r0, r1).
__device__ inline void chunk_range(long long rows, long long chunk_rows, long long& r0, long long& r1) {
    r0 = (long long)blockIdx.y * chunk_rows;
    r1 = min(rows, r0 + chunk_rows);
}

/// partial[(q*chunks + k)*cols + c] for quantity q of this block's chunk k = blockIdx.y.
template <class A>
__device__ inline A* partial_at(A* partial, int q, long long cols, long long c) {
    return partial + ((long long)q * gridDim.y + blockIdx.y) * cols + c;
}

/// Stage 2 for up to two quantities: out_q[c] = T(A(out_q[c]) + sum over chunks k in order of
/// partial[(q*chunks + k)*cols + c]); out1 may be null (one quantity).
template <class T, class A>
__global__ void col_finish_add_kernel(long long cols, long long chunks, const A* __restrict__ partial, T* out0,
                                      T* out1) {
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= cols) return;
    A s = A(0);
    for (long long k = 0; k < chunks; ++k) s += partial[k * cols + c];
    out0[c] = T(A(out0[c]) + s);
    if (out1 != nullptr) {
        A s1 = A(0);
        for (long long k = 0; k < chunks; ++k) s1 += partial[(chunks + k) * cols + c];
        out1[c] = T(A(out1[c]) + s1);
    }
}

/// The Columns scratch slot as `count` values of A.
template <class A>
inline A* col_scratch(const Cuda& ctx, long long count) {
    return static_cast<A*>(ctx.scratch(ScratchSlot::Columns, static_cast<std::size_t>(count) * sizeof(A)));
}

template <class T, class A>
inline void col_finish_add(const Cuda& ctx, long long cols, const ColSplit& s, const A* partial, T* out0, T* out1) {
    col_finish_add_kernel<T, A><<<col_stage2_blocks(cols), 256, 0, ctx.stream()>>>(cols, s.chunks, partial, out0, out1);
    LCMAE_CUDA_CHECK_LAUNCH("col_finish_add_kernel");
}

}  // namespace lcmae::backend::cuda_detail
