// lcmae/backend/cpu/elementwise.hpp - bias, residual, GELU, ReLU (contracts in ops.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <Eigen/Core>
#include <type_traits>
#include <numbers>

#include "lcmae/backend/cpu.hpp"

namespace lcmae::ops {

// Small loops stay serial: forking threads costs more than the work below this size.
inline constexpr long kParallelMin = 1 << 14;

template <class T>
inline void bias_fill(const backend::Cpu& ctx, long rows, long cols, const T* bias, T* y) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long r = 0; r < rows; ++r)
        for (long c = 0; c < cols; ++c) y[r * cols + c] = bias[c];
}

template <class T>
inline void bias_grad(const backend::Cpu& ctx, long rows, long cols, const T* dy, T* db) {
    // Parallel over columns so each thread owns its slice of db (no reduction races).
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long c0 = 0; c0 < cols; c0 += 64) {
        const long c1 = c0 + 64 < cols ? c0 + 64 : cols;
        T acc[64] = {};
        for (long r = 0; r < rows; ++r)
            for (long c = c0; c < c1; ++c) acc[c - c0] += dy[r * cols + c];
        for (long c = c0; c < c1; ++c) db[c] += acc[c - c0];
    }
}

template <class T>
inline void add(const backend::Cpu& ctx, long n, const T* a, const T* b, T* y) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
    for (long i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <class T>
inline void add_inplace(const backend::Cpu& ctx, long n, const T* x, T* y) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
    for (long i = 0; i < n; ++i) y[i] += x[i];
}

template <class T>
inline void scale_inplace(const backend::Cpu& ctx, long n, T alpha, T* y) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
    for (long i = 0; i < n; ++i) y[i] *= alpha;
}

template <class T>
inline void scale_rows(const backend::Cpu& ctx, long rows, long cols, const T* s, T* y) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long r = 0; r < rows; ++r) {
        const T a = s[r];
        T* yr = y + r * cols;
#pragma omp simd
        for (long c = 0; c < cols; ++c) yr[c] *= a;
    }
}

/// Exact GELU: x * Phi(x) with Phi the standard normal CDF via erf (PyTorch's default nn.GELU).
template <class T>
inline T erf_(T x) {
    if constexpr (std::is_same_v<T, float>) {
        // float: Eigen's 13/8-degree rational erf (generic_fast_erf_float, "a couple of ulp" on
        // [-4, 4], +-1 outside), written out branch-free so the GELU loops vectorise; libm's
        // scalar erff was ~6% of a training step.
        x = x < -4.f ? -4.f : (x > 4.f ? 4.f : x);
        const float x2 = x * x;
        float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
        p = x2 * p + -2.10102402082508e-06f;
        p = x2 * p + -5.69250639462346e-05f;
        p = x2 * p + -7.34990630326855e-04f;
        p = x2 * p + -2.95459980854025e-03f;
        p = x2 * p + -1.60960333262415e-02f;
        p = x * p;
        float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
        q = x2 * q + -1.68282697438203e-03f;
        q = x2 * q + -7.37332916720468e-03f;
        q = x2 * q + -1.42647390514189e-02f;
        return p / q;
    } else {
        return std::erf(x);
    }
}
template <class T>
inline T gelu(T x) {
    return T(0.5) * x * (T(1) + erf_(x * T(std::numbers::sqrt2 / 2)));
}
template <class T>
inline T gelu_grad(T x) {
    const T cdf = T(0.5) * (T(1) + erf_(x * T(std::numbers::sqrt2 / 2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    return cdf + x * pdf;
}

template <class T>
inline void gelu_forward(const backend::Cpu& ctx, long n, const T* x, T* y) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
    for (long i = 0; i < n; ++i) y[i] = gelu(x[i]);
}

template <class T>
inline void gelu_backward(const backend::Cpu& ctx, long n, const T* x, const T* dy, T* dx) {
    if constexpr (std::is_same_v<T, float>) {
        // In chunks: the normal pdf exp(-x^2/2) through Eigen's vectorised exp (libm's scalar expf
        // was the largest cost left in this loop), then a loop the compiler vectorises.
        constexpr long kChunk = 512;
        const long chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
        for (long c = 0; c < chunks; ++c) {
            const long o = c * kChunk, len = std::min(kChunk, n - o);
            alignas(64) float pdf[kChunk];
            Eigen::Map<Eigen::ArrayXf> p(pdf, len);
            p = (Eigen::Map<const Eigen::ArrayXf>(x + o, len).square() * -0.5f).exp();
            const float inv_sqrt_2pi = float(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
#pragma omp simd
            for (long i = 0; i < len; ++i) {
                const float xi = x[o + i];
                const float cdf = 0.5f * (1.f + erf_(xi * float(std::numbers::sqrt2 / 2)));
                dx[o + i] = dy[o + i] * (cdf + xi * pdf[i] * inv_sqrt_2pi);
            }
        }
    } else {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
        for (long i = 0; i < n; ++i) dx[i] = dy[i] * gelu_grad(x[i]);
    }
}

/// Fused fc1 epilogue (contract in ops.hpp): bias add and GELU in one pass over the (rows, cols)
/// activation instead of a bias_fill pass before the GEMM and a gelu_forward pass after it; the
/// GEMM then runs with beta 0. Each element sees the same operations as the unfused path.
template <class T>
inline void bias_gelu_forward(const backend::Cpu& ctx, long rows, long cols, const T* bias, T* pre, T* y) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long r = 0; r < rows; ++r) {
        T* pr = pre + r * cols;
        T* yr = y + r * cols;
#pragma omp simd
        for (long c = 0; c < cols; ++c) {
            const T v = pr[c] + bias[c];
            pr[c] = v;
            yr[c] = gelu(v);
        }
    }
}

template <class T>
inline void relu_forward(const backend::Cpu& ctx, long n, const T* x, T* y) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
    for (long i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
}

template <class T>
inline void relu_backward(const backend::Cpu& ctx, long n, const T* x, const T* dy, T* dx) {
#pragma omp parallel for simd schedule(static) num_threads(ctx.threads()) if (n > kParallelMin)
    for (long i = 0; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] : T(0);
}

/// y[r, c] = a y[r, c] + b v[c].
template <class T>
inline void scale_add_broadcast(const backend::Cpu&, long rows, long cols, T a, T* y, T b, const T* v) {
    for (long r = 0; r < rows; ++r)
        for (long c = 0; c < cols; ++c) y[r * cols + c] = a * y[r * cols + c] + b * v[c];
}

/// db[c] += alpha sum_r dy[r, c] (each term scaled before it is added, as the loops it replaces).
template <class T>
inline void col_sum_add(const backend::Cpu&, long rows, long cols, T alpha, const T* dy, T* db) {
    for (long r = 0; r < rows; ++r)
        for (long c = 0; c < cols; ++c) db[c] += alpha * dy[r * cols + c];
}

}  // namespace lcmae::ops
