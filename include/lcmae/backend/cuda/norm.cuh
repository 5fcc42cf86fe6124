// lcmae/backend/cuda/norm.cuh - LayerNorm (per row) and BatchNorm1d (per column), forward and
// backward, on the GPU (contracts in backend/ops.hpp; same names and parameters as
// backend/cpu/norm.hpp).
//
// LayerNorm: one warp per row (4 rows per 128-thread block); two passes over the row for the
// statistics (mean, then the sum of squared deviations: no cancellation), in float for float
// storage and double for double. The CPU accumulates float rows in double, so float results differ
// from it by rounding (~1e-7 relative). Backward: dx by one warp per row; dgamma/dbeta by the
// deterministic block-column reduction (launch.cuh).
// BatchNorm1d: one block per 32 columns does the whole column (statistics, then the outputs), so a
// single launch and no scratch. The forward statistics accumulate in double (as on the CPU).
// No __restrict__: callers may run a backward in place (dx aliasing dy), which these kernels allow
// (each thread reads an element before it writes the same element, after the block's reductions).
#pragma once

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

inline constexpr int kRowWarps = 4;  // rows (warps) per block of the warp-per-row kernels

template <class T>
__global__ void layernorm_forward_kernel(long long rows, long long cols, const T* x,
                                         const T* gamma, const T* beta, T eps,
                                         T* y, T* mean, T* rstd) {
    using A = acc_t<T>;
    const long long r = blockIdx.x * (long long)kRowWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;  // the whole warp leaves together, so the shuffles below stay complete
    const T* xr = x + r * cols;
    A s = A(0);
    for (long long c = lane; c < cols; c += 32) s += A(xr[c]);
    const A m = warp_sum(s) / A(cols);
    A v = A(0);
    for (long long c = lane; c < cols; c += 32) {
        const A d = A(xr[c]) - m;
        v += d * d;
    }
    const T rs = T(A(1) / dev_sqrt(warp_sum(v) / A(cols) + A(eps)));
    const T mt = T(m);
    T* yr = y + r * cols;
    for (long long c = lane; c < cols; c += 32) yr[c] = (xr[c] - mt) * rs * gamma[c] + beta[c];
    if (lane == 0) {
        mean[r] = mt;
        rstd[r] = rs;
    }
}

/// dx += rstd * (dy g - mean(dy g) - xhat mean(dy g xhat)), one warp per row.
template <class T>
__global__ void layernorm_backward_dx_kernel(long long rows, long long cols, const T* x,
                                             const T* mean, const T* rstd,
                                             const T* gamma, const T* dy,
                                             T* dx) {
    using A = acc_t<T>;
    const long long r = blockIdx.x * (long long)kRowWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    const T m = mean[r], rs = rstd[r];
    A sg = A(0), sgx = A(0);
    for (long long c = lane; c < cols; c += 32) {
        const T g = dyr[c] * gamma[c];
        sg += A(g);
        sgx += A(g * ((xr[c] - m) * rs));
    }
    const T mean_g = T(warp_sum(sg) / A(cols)), mean_gx = T(warp_sum(sgx) / A(cols));
    T* dxr = dx + r * cols;
    for (long long c = lane; c < cols; c += 32) {
        const T xhat = (xr[c] - m) * rs;
        dxr[c] += rs * (dyr[c] * gamma[c] - mean_g - xhat * mean_gx);
    }
}

/// dgamma[c] += sum_r dy xhat, dbeta[c] += sum_r dy: block (32, kColRows) per 32 columns.
template <class T>
__global__ void layernorm_backward_params_kernel(long long rows, long long cols, const T* x,
                                                 const T* mean, const T* rstd,
                                                 const T* dy, T* dgamma,
                                                 T* dbeta) {
    using A = acc_t<T>;
    __shared__ A sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    A ag = A(0), ab = A(0);
    if (c < cols)
        for (long long r = threadIdx.y; r < rows; r += kColRows) {
            const T d = dy[r * cols + c];
            ag += A(d * ((x[r * cols + c] - mean[r]) * rstd[r]));
            ab += A(d);
        }
    const A sg = column_sum(ag, sh);
    const A sb = column_sum(ab, sh);
    if (c < cols && threadIdx.y == 0) {
        dgamma[c] = T(A(dgamma[c]) + sg);
        dbeta[c] = T(A(dbeta[c]) + sb);
    }
}

template <class T>
__global__ void batchnorm_forward_train_kernel(long long rows, long long cols, const T* x,
                                               const T* gamma, const T* beta, T eps,
                                               T momentum, T* y, T* mean,
                                               T* rstd, T* running_mean,
                                               T* running_var) {
    __shared__ double sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    const bool on = c < cols;
    double s = 0;
    if (on)
        for (long long r = threadIdx.y; r < rows; r += kColRows) s += double(x[r * cols + c]);
    const double m = column_sum(s, sh) / double(rows);
    double v = 0;
    if (on)
        for (long long r = threadIdx.y; r < rows; r += kColRows) {
            const double d = double(x[r * cols + c]) - m;
            v += d * d;
        }
    v = column_sum(v, sh);
    if (!on) return;  // no barrier follows
    const T rs = T(1.0 / sqrt(v / double(rows) + double(eps)));
    const T mt = T(m);
    const T g = gamma ? gamma[c] : T(1), b = beta ? beta[c] : T(0);
    for (long long r = threadIdx.y; r < rows; r += kColRows) y[r * cols + c] = (x[r * cols + c] - mt) * rs * g + b;
    if (threadIdx.y == 0) {
        mean[c] = mt;
        rstd[c] = rs;
        if (running_mean) running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * mt;
        if (running_var) running_var[c] = (T(1) - momentum) * running_var[c] + momentum * T(v / double(rows - 1));
    }
}

template <class T>
__global__ void batchnorm_forward_eval_kernel(long long rows, long long cols, const T* x,
                                              const T* gamma, const T* beta, T eps,
                                              const T* running_mean, const T* running_var,
                                              T* y) {
    const long long n = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long c = i % cols;
        const T g = gamma ? gamma[c] : T(1), b = beta ? beta[c] : T(0);
        y[i] = (x[i] - running_mean[c]) / dev_sqrt(running_var[c] + eps) * g + b;
    }
}

template <class T>
__global__ void batchnorm_backward_kernel(long long rows, long long cols, const T* x,
                                          const T* mean, const T* rstd,
                                          const T* gamma, const T* dy,
                                          T* dx, T* dgamma, T* dbeta) {
    using A = acc_t<T>;
    __shared__ A sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    const bool on = c < cols;
    const T m = on ? mean[c] : T(0), rs = on ? rstd[c] : T(0), g = (on && gamma) ? gamma[c] : T(1);
    A sd = A(0), sdx = A(0);
    if (on)
        for (long long r = threadIdx.y; r < rows; r += kColRows) {
            const T d = dy[r * cols + c];
            sd += A(d);
            sdx += A(d * ((x[r * cols + c] - m) * rs));
        }
    const T sum_d = T(column_sum(sd, sh)), sum_dx = T(column_sum(sdx, sh));
    if (!on) return;
    if (threadIdx.y == 0) {
        if (dgamma) dgamma[c] += sum_dx;
        if (dbeta) dbeta[c] += sum_d;
    }
    const T md = sum_d / T(rows), mdx = sum_dx / T(rows);
    for (long long r = threadIdx.y; r < rows; r += kColRows) {
        const T xhat = (x[r * cols + c] - m) * rs;
        dx[r * cols + c] = g * rs * (dy[r * cols + c] - md - xhat * mdx);
    }
}

inline unsigned int row_warp_blocks(long rows) { return static_cast<unsigned int>((rows + kRowWarps - 1) / kRowWarps); }
inline unsigned int column_blocks(long cols) { return static_cast<unsigned int>((cols + 31) / 32); }

}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

template <class T>
inline void layernorm_forward(const backend::Cuda& ctx, long rows, long cols, const T* x, const T* gamma,
                              const T* beta, T eps, T* y, T* mean, T* rstd) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 0 && cols > 0, "layernorm_forward needs rows >= 0 and cols > 0, got " << rows << " x " << cols);
    if (rows == 0) return;
    layernorm_forward_kernel<T><<<row_warp_blocks(rows), 32 * kRowWarps, 0, ctx.stream()>>>(rows, cols, x, gamma, beta,
                                                                                           eps, y, mean, rstd);
    LCMAE_CUDA_CHECK_LAUNCH("layernorm_forward_kernel");
}

template <class T>
inline void layernorm_backward(const backend::Cuda& ctx, long rows, long cols, const T* x, const T* mean,
                               const T* rstd, const T* gamma, const T* dy, T* dx, T* dgamma, T* dbeta) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 0 && cols > 0, "layernorm_backward needs rows >= 0 and cols > 0, got " << rows << " x " << cols);
    if (rows == 0) return;
    layernorm_backward_dx_kernel<T><<<row_warp_blocks(rows), 32 * kRowWarps, 0, ctx.stream()>>>(rows, cols, x, mean,
                                                                                               rstd, gamma, dy, dx);
    LCMAE_CUDA_CHECK_LAUNCH("layernorm_backward_dx_kernel");
    layernorm_backward_params_kernel<T><<<column_blocks(cols), dim3(32, kColRows), 0, ctx.stream()>>>(
        rows, cols, x, mean, rstd, dy, dgamma, dbeta);
    LCMAE_CUDA_CHECK_LAUNCH("layernorm_backward_params_kernel");
}

template <class T>
inline void batchnorm_forward_train(const backend::Cuda& ctx, long rows, long cols, const T* x, const T* gamma,
                                    const T* beta, T eps, T momentum, T* y, T* mean, T* rstd, T* running_mean,
                                    T* running_var) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 2, "BatchNorm in train mode needs at least 2 rows per batch, got " << rows);
    LCMAE_CHECK(cols >= 0, "batchnorm_forward_train needs cols >= 0, got " << cols);
    if (cols == 0) return;
    batchnorm_forward_train_kernel<T><<<column_blocks(cols), dim3(32, kColRows), 0, ctx.stream()>>>(
        rows, cols, x, gamma, beta, eps, momentum, y, mean, rstd, running_mean, running_var);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_forward_train_kernel");
}

template <class T>
inline void batchnorm_forward_eval(const backend::Cuda& ctx, long rows, long cols, const T* x, const T* gamma,
                                   const T* beta, T eps, const T* running_mean, const T* running_var, T* y) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 0 && cols >= 0, "batchnorm_forward_eval sizes must be non-negative, got " << rows << " x " << cols);
    const long long n = (long long)rows * cols;
    if (n == 0) return;
    batchnorm_forward_eval_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, x, gamma, beta, eps,
                                                                                  running_mean, running_var, y);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_forward_eval_kernel");
}

template <class T>
inline void batchnorm_backward(const backend::Cuda& ctx, long rows, long cols, const T* x, const T* mean,
                               const T* rstd, const T* gamma, const T* dy, T* dx, T* dgamma, T* dbeta) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 1 && cols >= 0, "batchnorm_backward needs rows >= 1 and cols >= 0, got " << rows << " x " << cols);
    if (cols == 0) return;
    batchnorm_backward_kernel<T><<<column_blocks(cols), dim3(32, kColRows), 0, ctx.stream()>>>(
        rows, cols, x, mean, rstd, gamma, dy, dx, dgamma, dbeta);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_backward_kernel");
}

}  // namespace lcmae::ops
