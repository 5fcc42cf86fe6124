// lcmae/backend/cpu/attention.hpp - softmax and multi-head self-attention forward/backward
// (contracts in ops.hpp). Parallel over (batch x heads); the small per-head products run
// single-threaded inside, through ops::gemm with the qkv row stride, so they take the context's
// GEMM provider and precision like every other product (OpenBLAS, or BF16 operands).
#pragma once

#include <algorithm>
#include <cmath>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/cpu/elementwise.hpp"
#include "lcmae/backend/cpu/gemm.hpp"

namespace lcmae::ops {

namespace detail {
template <class T>
inline void softmax_row(long cols, const T* x, T* y) {
    T mx = x[0];
    for (long c = 1; c < cols; ++c) mx = std::max(mx, x[c]);
    if constexpr (std::is_same_v<T, float>) {
        // Eigen's vectorised exp (libm's scalar expf made the softmax most of the attention's time)
        Eigen::Map<Eigen::ArrayXf> yv(y, cols);
        yv = (Eigen::Map<const Eigen::ArrayXf>(x, cols) - mx).exp();
        yv *= 1.0f / yv.sum();
        return;
    }
    T s = 0;
    for (long c = 0; c < cols; ++c) {
        y[c] = std::exp(x[c] - mx);
        s += y[c];
    }
    const T inv = T(1) / s;
    for (long c = 0; c < cols; ++c) y[c] *= inv;
}
}  // namespace detail

template <class T>
inline void softmax_rows(const backend::Cpu& ctx, long rows, long cols, const T* x, T* y) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long r = 0; r < rows; ++r) detail::softmax_row(cols, x + r * cols, y + r * cols);
}

/// qkv (B*N, 3*H*hd) -> P (B, H, N, N) saved, out (B*N, H*hd).
template <class T>
inline void attention_forward(const backend::Cpu& ctx, long B, long N, long H, long hd, const T* qkv,
                              T* P, T* out) {
    const long D = H * hd, ld = 3 * D;
    const T scale = T(1) / std::sqrt(T(hd));
    // gemm() sees it is inside a parallel region and runs each product single-threaded
#pragma omp parallel for schedule(static) num_threads(ctx.threads())
    for (long bh = 0; bh < B * H; ++bh) {
        const long b = bh / H, h = bh % H;
        const T* q = qkv + b * N * ld + h * hd;  // K at +D, V at +2D, rows ld apart
        T* p = P + bh * N * N;
        gemm(ctx, false, true, N, N, hd, scale, q, ld, q + D, ld, T(0), p, N);  // S = scale Q K^T
        for (long i = 0; i < N; ++i) detail::softmax_row(N, p + i * N, p + i * N);
        gemm(ctx, false, false, N, hd, N, T(1), p, N, q + 2 * D, ld, T(0), out + b * N * D + h * hd, D);  // O = P V
    }
}

/// dout (B*N, H*hd) -> dqkv (B*N, 3*H*hd), written. Uses the saved P; `scratch` needs N*N values
/// per (batch x head) problem, i.e. (B, H, N, N) like P.
template <class T>
inline void attention_backward(const backend::Cpu& ctx, long B, long N, long H, long hd, const T* qkv,
                               const T* P, const T* dout, T* dqkv, T* scratch) {
    const long D = H * hd, ld = 3 * D;
    const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for schedule(static) num_threads(ctx.threads())
    for (long bh = 0; bh < B * H; ++bh) {
        const long b = bh / H, h = bh % H;
        const long off = b * N * ld + h * hd;
        const T *Q = qkv + off, *K = Q + D, *V = Q + 2 * D;
        T *dQ = dqkv + off, *dK = dQ + D, *dV = dQ + 2 * D;
        const T* p = P + bh * N * N;
        const T* dO = dout + b * N * D + h * hd;
        T* ds = scratch + bh * N * N;
        gemm(ctx, true, false, N, hd, N, T(1), p, N, dO, D, T(0), dV, ld);   // dV = P^T dO
        gemm(ctx, false, true, N, N, hd, T(1), dO, D, V, ld, T(0), ds, N);   // dP = dO V^T
        // softmax backward: dS = P * (dP - rowsum(dP * P)), then the 1/sqrt(hd) scale
        for (long i = 0; i < N; ++i) {
            T dot = 0;
            for (long j = 0; j < N; ++j) dot += ds[i * N + j] * p[i * N + j];
            for (long j = 0; j < N; ++j) ds[i * N + j] = p[i * N + j] * (ds[i * N + j] - dot) * scale;
        }
        gemm(ctx, false, false, N, hd, N, T(1), ds, N, K, ld, T(0), dQ, ld);  // dQ = dS K
        gemm(ctx, true, false, N, hd, N, T(1), ds, N, Q, ld, T(0), dK, ld);   // dK = dS^T Q
    }
}

}  // namespace lcmae::ops
