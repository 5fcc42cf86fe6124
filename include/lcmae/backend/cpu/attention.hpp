// lcmae/backend/cpu/attention.hpp - softmax and multi-head self-attention forward/backward
// (contracts in ops.hpp). Parallel over (batch x heads); the small per-head GEMMs run
// single-threaded inside, through Eigen maps with the qkv row stride.
#pragma once

#include <algorithm>
#include <cmath>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/cpu/eigen_maps.hpp"
#include "lcmae/backend/cpu/elementwise.hpp"

namespace lcmae::ops {

namespace detail {
template <class T>
inline void softmax_row(long cols, const T* x, T* y) {
    T mx = x[0];
    for (long c = 1; c < cols; ++c) mx = std::max(mx, x[c]);
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
    using backend::cpu::map_rm;
    const long D = H * hd, ld = 3 * D;
    const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for schedule(static) num_threads(ctx.threads())
    for (long bh = 0; bh < B * H; ++bh) {
        const long b = bh / H, h = bh % H;
        const T* q = qkv + b * N * ld + h * hd;
        auto Q = map_rm(q, N, hd, ld);
        auto K = map_rm(q + D, N, hd, ld);
        auto V = map_rm(q + 2 * D, N, hd, ld);
        T* p = P + bh * N * N;
        auto S = map_rm(p, N, N, N);
        S.noalias() = scale * Q * K.transpose();
        for (long i = 0; i < N; ++i) detail::softmax_row(N, p + i * N, p + i * N);
        auto O = map_rm(out + b * N * D + h * hd, N, hd, D);
        O.noalias() = S * V;
    }
}

/// dout (B*N, H*hd) -> dqkv (B*N, 3*H*hd), written. Uses the saved P; `scratch` needs N*N values
/// per (batch x head) problem, i.e. (B, H, N, N) like P.
template <class T>
inline void attention_backward(const backend::Cpu& ctx, long B, long N, long H, long hd, const T* qkv,
                               const T* P, const T* dout, T* dqkv, T* scratch) {
    using backend::cpu::map_rm;
    const long D = H * hd, ld = 3 * D;
    const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for schedule(static) num_threads(ctx.threads())
    for (long bh = 0; bh < B * H; ++bh) {
        const long b = bh / H, h = bh % H;
        const long off = b * N * ld + h * hd;
        auto Q = map_rm(qkv + off, N, hd, ld);
        auto K = map_rm(qkv + off + D, N, hd, ld);
        auto V = map_rm(qkv + off + 2 * D, N, hd, ld);
        auto dQ = map_rm(dqkv + off, N, hd, ld);
        auto dK = map_rm(dqkv + off + D, N, hd, ld);
        auto dV = map_rm(dqkv + off + 2 * D, N, hd, ld);
        const T* p = P + bh * N * N;
        auto Pm = map_rm(p, N, N, N);
        auto dO = map_rm(dout + b * N * D + h * hd, N, hd, D);
        T* ds = scratch + bh * N * N;
        auto dS = map_rm(ds, N, N, N);
        dV.noalias() = Pm.transpose() * dO;
        dS.noalias() = dO * V.transpose();  // dP
        // softmax backward: dS = P * (dP - rowsum(dP * P)), then the 1/sqrt(hd) scale
        for (long i = 0; i < N; ++i) {
            T dot = 0;
            for (long j = 0; j < N; ++j) dot += ds[i * N + j] * p[i * N + j];
            for (long j = 0; j < N; ++j) ds[i * N + j] = p[i * N + j] * (ds[i * N + j] - dot) * scale;
        }
        dQ.noalias() = dS * K;
        dK.noalias() = dS.transpose() * Q;
    }
}

}  // namespace lcmae::ops
