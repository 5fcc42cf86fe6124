// lcmae/backend/cpu/norm.hpp - LayerNorm (per row) and BatchNorm1d (per column), forward and
// backward (contracts in ops.hpp). Statistics are accumulated in double for float inputs, so the
// saved mean/rstd do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/cpu/elementwise.hpp"

namespace lcmae::ops {

namespace detail {
/// sum_{c < n} f(c) in double with 8 independent partial sums (a fixed order, so the result does
/// not depend on threads, while the additions no longer wait on each other and vectorise).
template <class F>
inline double lane_sum(long n, F f) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long c = 0;
    for (; c + 8 <= n; c += 8)
        for (int j = 0; j < 8; ++j) acc[j] += f(c + j);
    for (; c < n; ++c) acc[0] += f(c);
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}
}  // namespace detail

namespace detail {
/// One row of layernorm_forward; shared with add_layernorm_forward so both give the same bits.
template <class T>
inline void layernorm_row(long cols, const T* xr, const T* gamma, const T* beta, T eps, T* yr, T& mean, T& rstd) {
    const double m = lane_sum(cols, [&](long c) { return double(xr[c]); }) / cols;
    const double v = lane_sum(cols, [&](long c) { return (xr[c] - m) * (xr[c] - m); });
    const T rs = T(1.0 / std::sqrt(v / cols + double(eps)));
    const T mt = T(m);
    for (long c = 0; c < cols; ++c) yr[c] = (xr[c] - mt) * rs * gamma[c] + beta[c];
    mean = mt;
    rstd = rs;
}
}  // namespace detail

template <class T>
inline void layernorm_forward(const backend::Cpu& ctx, long rows, long cols, const T* x,
                              const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long r = 0; r < rows; ++r)
        detail::layernorm_row(cols, x + r * cols, gamma, beta, eps, y + r * cols, mean[r], rstd[r]);
}

/// Residual add + LayerNorm in one pass (contract in ops.hpp): x += res row by row, and the row,
/// still in L1, is normalised at once, instead of an add_inplace pass over the whole (rows, cols)
/// activation followed by a layernorm_forward pass that reads it back.
template <class T>
inline void add_layernorm_forward(const backend::Cpu& ctx, long rows, long cols, const T* res, T* x,
                                  const T* gamma, const T* beta, T eps, T* y, T* mean, T* rstd) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long r = 0; r < rows; ++r) {
        T* xr = x + r * cols;
        const T* rr = res + r * cols;
#pragma omp simd
        for (long c = 0; c < cols; ++c) xr[c] += rr[c];
        detail::layernorm_row(cols, xr, gamma, beta, eps, y + r * cols, mean[r], rstd[r]);
    }
}

/// dx += LN'(x)^T dy; dgamma += sum_r dy * xhat; dbeta += sum_r dy.
template <class T>
inline void layernorm_backward(const backend::Cpu& ctx, long rows, long cols, const T* x,
                               const T* mean, const T* rstd, const T* gamma, const T* dy, T* dx,
                               T* dgamma, T* dbeta) {
    // Pass 1 (parallel over rows): dx. Pass 2 (parallel over columns): dgamma, dbeta - each
    // thread owns its columns, so there is no reduction race and the result is deterministic.
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long r = 0; r < rows; ++r) {
        const T* xr = x + r * cols;
        const T* dyr = dy + r * cols;
        const T m = mean[r], rs = rstd[r];
        // means of (dy*gamma) and (dy*gamma*xhat)
        const T sum_g = T(detail::lane_sum(cols, [&](long c) { return double(dyr[c] * gamma[c]); }) / cols);
        const T sum_gx = T(detail::lane_sum(cols, [&](long c) { return double(dyr[c] * gamma[c] * ((xr[c] - m) * rs)); }) / cols);
        T* dxr = dx + r * cols;
        for (long c = 0; c < cols; ++c) {
            const T xhat = (xr[c] - m) * rs;
            dxr[c] += rs * (dyr[c] * gamma[c] - sum_g - xhat * sum_gx);
        }
    }
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long c0 = 0; c0 < cols; c0 += 32) {
        const long c1 = c0 + 32 < cols ? c0 + 32 : cols;
        T ag[32] = {}, ab[32] = {};
        for (long r = 0; r < rows; ++r) {
            const T m = mean[r], rs = rstd[r];
            for (long c = c0; c < c1; ++c) {
                const T d = dy[r * cols + c];
                ag[c - c0] += d * (x[r * cols + c] - m) * rs;
                ab[c - c0] += d;
            }
        }
        for (long c = c0; c < c1; ++c) {
            dgamma[c] += ag[c - c0];
            dbeta[c] += ab[c - c0];
        }
    }
}

/// Train mode: normalise with batch statistics (biased var); update running stats with the
/// unbiased var: running = (1 - momentum) running + momentum batch (PyTorch's convention).
/// gamma/beta may be null (no affine). Needs rows >= 2 (unbiased var), as PyTorch does.
template <class T>
inline void batchnorm_forward_train(const backend::Cpu& ctx, long rows, long cols, const T* x,
                                    const T* gamma, const T* beta, T eps, T momentum, T* y, T* mean,
                                    T* rstd, T* running_mean, T* running_var) {
    LCMAE_CHECK(rows >= 2, "BatchNorm in train mode needs at least 2 rows per batch, got " << rows);
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long c = 0; c < cols; ++c) {
        double s = 0;
        for (long r = 0; r < rows; ++r) s += x[r * cols + c];
        const double m = s / rows;
        double v = 0;
        for (long r = 0; r < rows; ++r) v += (x[r * cols + c] - m) * (x[r * cols + c] - m);
        const T rs = T(1.0 / std::sqrt(v / rows + double(eps)));
        mean[c] = T(m);
        rstd[c] = rs;
        const T g = gamma ? gamma[c] : T(1), b = beta ? beta[c] : T(0);
        for (long r = 0; r < rows; ++r) y[r * cols + c] = (x[r * cols + c] - T(m)) * rs * g + b;
        if (running_mean) running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * T(m);
        if (running_var) running_var[c] = (T(1) - momentum) * running_var[c] + momentum * T(v / (rows - 1));
    }
}

template <class T>
inline void batchnorm_forward_eval(const backend::Cpu& ctx, long rows, long cols, const T* x,
                                   const T* gamma, const T* beta, T eps, const T* running_mean,
                                   const T* running_var, T* y) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long r = 0; r < rows; ++r)
        for (long c = 0; c < cols; ++c) {
            const T g = gamma ? gamma[c] : T(1), b = beta ? beta[c] : T(0);
            y[r * cols + c] = (x[r * cols + c] - running_mean[c]) / std::sqrt(running_var[c] + eps) * g + b;
        }
}

/// Train-mode backward: dx written; dgamma, dbeta accumulate (may be null without affine).
template <class T>
inline void batchnorm_backward(const backend::Cpu& ctx, long rows, long cols, const T* x, const T* mean,
                               const T* rstd, const T* gamma, const T* dy, T* dx, T* dgamma, T* dbeta) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long c = 0; c < cols; ++c) {
        const T m = mean[c], rs = rstd[c], g = gamma ? gamma[c] : T(1);
        T sum_d = 0, sum_dx = 0;
        for (long r = 0; r < rows; ++r) {
            const T d = dy[r * cols + c];
            sum_d += d;
            sum_dx += d * (x[r * cols + c] - m) * rs;
        }
        if (dgamma) dgamma[c] += sum_dx;
        if (dbeta) dbeta[c] += sum_d;
        const T md = sum_d / T(rows), mdx = sum_dx / T(rows);
        for (long r = 0; r < rows; ++r) {
            const T xhat = (x[r * cols + c] - m) * rs;
            dx[r * cols + c] = g * rs * (dy[r * cols + c] - md - xhat * mdx);
        }
    }
}

// ---- SyncBatchNorm (dist/: statistics over the data-parallel group) --------------------------
// A synchronised BatchNorm splits each op in two around an all-reduce of a few column sums, so the
// statistics are those of the global batch. The sums travel in double (2 cols + 1 values: the
// third part is the row count, so ranks may hold different numbers of rows).

/// sums = [sum_r x | sum_r x^2 | rows] of this rank's rows (written, double).
template <class T>
inline void batchnorm_local_sums(const backend::Cpu& ctx, long rows, long cols, const T* x, double* sums) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long c = 0; c < cols; ++c) {
        double s = 0, q = 0;
        for (long r = 0; r < rows; ++r) {
            const double v = x[r * cols + c];
            s += v;
            q += v * v;
        }
        sums[c] = s;
        sums[cols + c] = q;
    }
    sums[2 * cols] = double(rows);
}

/// Train-mode forward with the statistics of summed `sums` (batchnorm_local_sums over every rank):
/// N = sums[2 cols], mean = sum x / N, biased var = max(sum x^2 / N - mean^2, 0); running stats
/// updated with the unbiased var as batchnorm_forward_train does.
template <class T>
inline void batchnorm_forward_global(const backend::Cpu& ctx, long rows, long cols, const double* sums, const T* x,
                                     const T* gamma, const T* beta, T eps, T momentum, T* y, T* mean, T* rstd,
                                     T* running_mean, T* running_var) {
    const double N = sums[2 * cols];
    LCMAE_CHECK(N >= 2, "BatchNorm in train mode needs at least 2 rows over all ranks, got " << N);
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long c = 0; c < cols; ++c) {
        const double m = sums[c] / N;
        const double v = std::max(sums[cols + c] / N - m * m, 0.0);
        const T rs = T(1.0 / std::sqrt(v + double(eps)));
        mean[c] = T(m);
        rstd[c] = rs;
        const T g = gamma ? gamma[c] : T(1), b = beta ? beta[c] : T(0);
        for (long r = 0; r < rows; ++r) y[r * cols + c] = (x[r * cols + c] - T(m)) * rs * g + b;
        if (running_mean) running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * T(m);
        if (running_var) running_var[c] = (T(1) - momentum) * running_var[c] + momentum * T(v * N / (N - 1));
    }
}

/// Backward, part 1: sums = [sum_r dy | sum_r dy xhat | rows] of this rank's rows (written,
/// double); dgamma, dbeta accumulate this rank's share (may be null).
template <class T>
inline void batchnorm_backward_local_sums(const backend::Cpu& ctx, long rows, long cols, const T* x, const T* mean,
                                          const T* rstd, const T* dy, double* sums, T* dgamma, T* dbeta) {
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long c = 0; c < cols; ++c) {
        const T m = mean[c], rs = rstd[c];
        double sd = 0, sdx = 0;
        for (long r = 0; r < rows; ++r) {
            const T d = dy[r * cols + c];
            sd += d;
            sdx += double(d * ((x[r * cols + c] - m) * rs));
        }
        sums[c] = sd;
        sums[cols + c] = sdx;
        if (dgamma) dgamma[c] += T(sdx);
        if (dbeta) dbeta[c] += T(sd);
    }
    sums[2 * cols] = double(rows);
}

/// Backward, part 2, with summed `sums`: dx = g rstd (dy - sum dy / N - xhat sum dy xhat / N) (written).
template <class T>
inline void batchnorm_backward_global(const backend::Cpu& ctx, long rows, long cols, const double* sums, const T* x,
                                      const T* mean, const T* rstd, const T* gamma, const T* dy, T* dx) {
    const double N = sums[2 * cols];
#pragma omp parallel for schedule(static) num_threads(ctx.threads()) if (rows * cols > kParallelMin)
    for (long c = 0; c < cols; ++c) {
        const T m = mean[c], rs = rstd[c], g = gamma ? gamma[c] : T(1);
        const T md = T(sums[c] / N), mdx = T(sums[cols + c] / N);
        for (long r = 0; r < rows; ++r) {
            const T xhat = (x[r * cols + c] - m) * rs;
            dx[r * cols + c] = g * rs * (dy[r * cols + c] - md - xhat * mdx);
        }
    }
}

}  // namespace lcmae::ops
