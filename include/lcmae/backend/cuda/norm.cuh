// lcmae/backend/cuda/norm.cuh - LayerNorm (per row) and BatchNorm1d (per column), forward and
// backward, on the GPU (contracts in backend/ops.hpp; same names and parameters as
// backend/cpu/norm.hpp).
//
// LayerNorm: one warp per row (4 rows per 128-thread block); two passes over the row for the
// statistics (mean, then the sum of squared deviations: no cancellation), in float for float
// storage and double for double. The CPU accumulates float rows in double, so float results differ
// from it by rounding (~1e-7 relative). Backward: dx by one warp per row; dgamma/dbeta by the
// two-stage deterministic column reduction (colreduce.cuh).
// BatchNorm1d: the column statistics (sum, then squared deviations: in double, as on the CPU) and
// the backward's column sums by the two-stage column reduction (partials in the context's Columns
// scratch); the outputs / dx by one thread per element.
// No __restrict__: callers may run a backward in place (dx aliasing dy), which these kernels allow
// (each thread reads an element before it writes the same element, after the block's reductions).
#pragma once

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/colreduce.cuh"
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

/// Stage 1 of dgamma[c] += sum_r dy xhat, dbeta[c] += sum_r dy (colreduce.cuh): quantity 0 is
/// dgamma's partial, 1 dbeta's.
template <class T>
__global__ void layernorm_backward_params_partial_kernel(long long rows, long long cols, long long chunk_rows,
                                                         const T* x, const T* mean, const T* rstd, const T* dy,
                                                         acc_t<T>* __restrict__ partial) {
    using A = acc_t<T>;
    __shared__ A sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    long long r0, r1;
    chunk_range(rows, chunk_rows, r0, r1);
    A ag = A(0), ab = A(0);
    if (c < cols)
        for (long long r = r0 + threadIdx.y; r < r1; r += kColRows) {
            const T d = dy[r * cols + c];
            ag += A(d * ((x[r * cols + c] - mean[r]) * rstd[r]));
            ab += A(d);
        }
    const A sg = column_sum(ag, sh);
    const A sb = column_sum(ab, sh);
    if (c < cols && threadIdx.y == 0) {
        *partial_at(partial, 0, cols, c) = sg;
        *partial_at(partial, 1, cols, c) = sb;
    }
}

/// BatchNorm statistics, stage 1 (in double, as on the CPU): with mean_d null the chunk's column
/// sums of x, else of (x - mean_d)^2.
template <class T>
__global__ void batchnorm_stats_partial_kernel(long long rows, long long cols, long long chunk_rows, const T* x,
                                               const double* __restrict__ mean_d, double* __restrict__ partial) {
    __shared__ double sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    long long r0, r1;
    chunk_range(rows, chunk_rows, r0, r1);
    double s = 0;
    if (c < cols) {
        if (mean_d == nullptr) {
            for (long long r = r0 + threadIdx.y; r < r1; r += kColRows) s += double(x[r * cols + c]);
        } else {
            const double m = mean_d[c];
            for (long long r = r0 + threadIdx.y; r < r1; r += kColRows) {
                const double d = double(x[r * cols + c]) - m;
                s += d * d;
            }
        }
    }
    s = column_sum(s, sh);
    if (c < cols && threadIdx.y == 0) *partial_at(partial, 0, cols, c) = s;
}

/// mean_d[c] = (sum over chunks in order) / rows. (A template only so that a header may define it.)
template <class Unused = void>
__global__ void batchnorm_mean_kernel(long long rows, long long cols, long long chunks,
                                             const double* __restrict__ partial, double* __restrict__ mean_d) {
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double s = 0;
    for (long long k = 0; k < chunks; ++k) s += partial[k * cols + c];
    mean_d[c] = s / double(rows);
}

/// v = sum over chunks in order; mean, rstd and the running statistics as the one-stage kernel did.
template <class T>
__global__ void batchnorm_finish_stats_kernel(long long rows, long long cols, long long chunks,
                                              const double* __restrict__ partial, const double* __restrict__ mean_d,
                                              T eps, T momentum, T* mean, T* rstd, T* running_mean, T* running_var) {
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double v = 0;
    for (long long k = 0; k < chunks; ++k) v += partial[k * cols + c];
    const T rs = T(1.0 / sqrt(v / double(rows) + double(eps)));
    const T mt = T(mean_d[c]);
    mean[c] = mt;
    rstd[c] = rs;
    if (running_mean) running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * mt;
    if (running_var) running_var[c] = (T(1) - momentum) * running_var[c] + momentum * T(v / double(rows - 1));
}

/// y = (x - mean[c]) rstd[c] g + b, one thread per element (y may alias x).
template <class T>
__global__ void batchnorm_apply_kernel(long long rows, long long cols, const T* x, const T* mean, const T* rstd,
                                       const T* gamma, const T* beta, T* y) {
    const long long n = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long c = i % cols;
        const T g = gamma ? gamma[c] : T(1), b = beta ? beta[c] : T(0);
        y[i] = (x[i] - mean[c]) * rstd[c] * g + b;
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

/// BatchNorm backward, stage 1: quantity 0 the chunk's sum of dy, 1 its sum of dy xhat.
template <class T>
__global__ void batchnorm_backward_partial_kernel(long long rows, long long cols, long long chunk_rows, const T* x,
                                                  const T* mean, const T* rstd, const T* dy,
                                                  acc_t<T>* __restrict__ partial) {
    using A = acc_t<T>;
    __shared__ A sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    const bool on = c < cols;
    long long r0, r1;
    chunk_range(rows, chunk_rows, r0, r1);
    const T m = on ? mean[c] : T(0), rs = on ? rstd[c] : T(0);
    A sd = A(0), sdx = A(0);
    if (on)
        for (long long r = r0 + threadIdx.y; r < r1; r += kColRows) {
            const T d = dy[r * cols + c];
            sd += A(d);
            sdx += A(d * ((x[r * cols + c] - m) * rs));
        }
    const A a0 = column_sum(sd, sh), a1 = column_sum(sdx, sh);
    if (on && threadIdx.y == 0) {
        *partial_at(partial, 0, cols, c) = a0;
        *partial_at(partial, 1, cols, c) = a1;
    }
}

/// BatchNorm backward, stage 2: the column sums (chunks in order) into sums[c] (of dy) and
/// sums[cols + c] (of dy xhat); dgamma / dbeta (may be null) accumulate them.
template <class T>
__global__ void batchnorm_backward_finish_kernel(long long cols, long long chunks, const acc_t<T>* __restrict__ partial,
                                                 T* __restrict__ sums, T* dgamma, T* dbeta) {
    using A = acc_t<T>;
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= cols) return;
    A sd = A(0), sdx = A(0);
    for (long long k = 0; k < chunks; ++k) sd += partial[k * cols + c];
    for (long long k = 0; k < chunks; ++k) sdx += partial[(chunks + k) * cols + c];
    const T sum_d = T(sd), sum_dx = T(sdx);
    sums[c] = sum_d;
    sums[cols + c] = sum_dx;
    if (dgamma) dgamma[c] += sum_dx;
    if (dbeta) dbeta[c] += sum_d;
}

/// dx = g rstd (dy - mean(dy) - xhat mean(dy xhat)), one thread per element (dx may alias dy).
template <class T>
__global__ void batchnorm_backward_dx_kernel(long long rows, long long cols, const T* x, const T* mean, const T* rstd,
                                             const T* gamma, const T* dy, const T* sums, T* dx) {
    const long long n = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long c = i % cols;
        const T m = mean[c], rs = rstd[c], g = gamma ? gamma[c] : T(1);
        const T md = sums[c] / T(rows), mdx = sums[cols + c] / T(rows);
        const T xhat = (x[i] - m) * rs;
        dx[i] = g * rs * (dy[i] - md - xhat * mdx);
    }
}

inline unsigned int row_warp_blocks(long rows) { return static_cast<unsigned int>((rows + kRowWarps - 1) / kRowWarps); }
inline unsigned int column_blocks(long cols) { return static_cast<unsigned int>((cols + 31) / 32); }


// ---- SyncBatchNorm halves (contracts in ops.hpp): one thread per column, rows in order, in
// double. Simple rather than fast: the heads' BatchNorm is a few thousand columns; the reduction
// between the halves is the communicator's.
template <class T>
__global__ void batchnorm_local_sums_kernel(long long rows, long long cols, const T* x, double* sums) {
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c == 0) sums[2 * cols] = double(rows);
    if (c >= cols) return;
    double s = 0, q = 0;
    for (long long r = 0; r < rows; ++r) {
        const double v = double(x[r * cols + c]);
        s += v;
        q += v * v;
    }
    sums[c] = s;
    sums[cols + c] = q;
}
template <class T>
__global__ void batchnorm_global_stats_kernel(long long cols, const double* sums, T eps, T momentum, T* mean, T* rstd,
                                              T* running_mean, T* running_var) {
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const double N = sums[2 * cols];
    const double m = sums[c] / N;
    const double v = fmax(sums[cols + c] / N - m * m, 0.0);
    const T rs = T(1.0 / sqrt(v + double(eps)));
    mean[c] = T(m);
    rstd[c] = rs;
    if (running_mean) running_mean[c] = (T(1) - momentum) * running_mean[c] + momentum * T(m);
    if (running_var) running_var[c] = (T(1) - momentum) * running_var[c] + momentum * T(v * N / (N - 1));
}
template <class T>
__global__ void batchnorm_backward_local_sums_kernel(long long rows, long long cols, const T* x, const T* mean,
                                                     const T* rstd, const T* dy, double* sums, T* dgamma, T* dbeta) {
    const long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c == 0) sums[2 * cols] = double(rows);
    if (c >= cols) return;
    const T m = mean[c], rs = rstd[c];
    double sd = 0, sdx = 0;
    for (long long r = 0; r < rows; ++r) {
        const T d = dy[r * cols + c];
        sd += double(d);
        sdx += double(d * ((x[r * cols + c] - m) * rs));
    }
    sums[c] = sd;
    sums[cols + c] = sdx;
    if (dgamma) dgamma[c] += T(sdx);
    if (dbeta) dbeta[c] += T(sd);
}
template <class T>
__global__ void batchnorm_backward_global_kernel(long long rows, long long cols, const double* sums, const T* x,
                                                 const T* mean, const T* rstd, const T* gamma, const T* dy, T* dx) {
    const long long n = rows * cols;
    const double N = sums[2 * cols];
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long c = i % cols;
        const T m = mean[c], rs = rstd[c], g = gamma ? gamma[c] : T(1);
        const T md = T(sums[c] / N), mdx = T(sums[cols + c] / N);
        const T xhat = (x[i] - m) * rs;
        dx[i] = g * rs * (dy[i] - md - xhat * mdx);
    }
}

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
    using A = acc_t<T>;
    const ColSplit sp = col_split(rows, cols);
    A* partial = col_scratch<A>(ctx, 2 * sp.chunks * cols);
    layernorm_backward_params_partial_kernel<T><<<col_stage1_grid(cols, sp), col_stage1_block(), 0, ctx.stream()>>>(
        rows, cols, sp.chunk_rows, x, mean, rstd, dy, partial);
    LCMAE_CUDA_CHECK_LAUNCH("layernorm_backward_params_partial_kernel");
    col_finish_add<T, A>(ctx, cols, sp, partial, dgamma, dbeta);
}

template <class T>
inline void batchnorm_forward_train(const backend::Cuda& ctx, long rows, long cols, const T* x, const T* gamma,
                                    const T* beta, T eps, T momentum, T* y, T* mean, T* rstd, T* running_mean,
                                    T* running_var) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 2, "BatchNorm in train mode needs at least 2 rows per batch, got " << rows);
    LCMAE_CHECK(cols >= 0, "batchnorm_forward_train needs cols >= 0, got " << cols);
    if (cols == 0) return;
    // Scratch: the chunks' partials, then the double means.
    const ColSplit sp = col_split(rows, cols);
    double* partial = col_scratch<double>(ctx, (sp.chunks + 1) * (long long)cols);
    double* mean_d = partial + sp.chunks * cols;
    batchnorm_stats_partial_kernel<T><<<col_stage1_grid(cols, sp), col_stage1_block(), 0, ctx.stream()>>>(
        rows, cols, sp.chunk_rows, x, nullptr, partial);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_stats_partial_kernel (sum)");
    batchnorm_mean_kernel<><<<col_stage2_blocks(cols), 256, 0, ctx.stream()>>>(rows, cols, sp.chunks, partial, mean_d);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_mean_kernel");
    batchnorm_stats_partial_kernel<T><<<col_stage1_grid(cols, sp), col_stage1_block(), 0, ctx.stream()>>>(
        rows, cols, sp.chunk_rows, x, mean_d, partial);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_stats_partial_kernel (squared deviations)");
    batchnorm_finish_stats_kernel<T><<<col_stage2_blocks(cols), 256, 0, ctx.stream()>>>(
        rows, cols, sp.chunks, partial, mean_d, eps, momentum, mean, rstd, running_mean, running_var);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_finish_stats_kernel");
    const long long n = (long long)rows * cols;
    batchnorm_apply_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, x, mean, rstd, gamma, beta, y);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_apply_kernel");
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
    using A = acc_t<T>;
    // Scratch: the chunks' partials (2 quantities), then the 2 x cols column sums.
    const ColSplit sp = col_split(rows, cols);
    A* partial = col_scratch<A>(ctx, (2 * sp.chunks + 2) * (long long)cols);
    T* sums = partial + 2 * sp.chunks * cols;  // A == T for float and double storage
    batchnorm_backward_partial_kernel<T><<<col_stage1_grid(cols, sp), col_stage1_block(), 0, ctx.stream()>>>(
        rows, cols, sp.chunk_rows, x, mean, rstd, dy, partial);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_backward_partial_kernel");
    batchnorm_backward_finish_kernel<T><<<col_stage2_blocks(cols), 256, 0, ctx.stream()>>>(cols, sp.chunks, partial, sums,
                                                                                          dgamma, dbeta);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_backward_finish_kernel");
    const long long n = (long long)rows * cols;
    batchnorm_backward_dx_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, x, mean, rstd, gamma, dy,
                                                                                   sums, dx);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_backward_dx_kernel");
}

template <class T>
inline void batchnorm_local_sums(const backend::Cuda& ctx, long rows, long cols, const T* x, double* sums) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(rows >= 0 && cols >= 0, "batchnorm_local_sums needs rows, cols >= 0");
    batchnorm_local_sums_kernel<T><<<blocks_for(cols + 1), kThreads, 0, ctx.stream()>>>(rows, cols, x, sums);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_local_sums_kernel");
}
template <class T>
inline void batchnorm_forward_global(const backend::Cuda& ctx, long rows, long cols, const double* sums, const T* x,
                                     const T* gamma, const T* beta, T eps, T momentum, T* y, T* mean, T* rstd,
                                     T* running_mean, T* running_var) {
    using namespace backend::cuda_detail;
    if (cols == 0) return;
    // (the row count lives in device memory: the N >= 2 check is the CPU op's; N < 2 gives inf/NaN here)
    batchnorm_global_stats_kernel<T><<<blocks_for(cols), kThreads, 0, ctx.stream()>>>(cols, sums, eps, momentum, mean,
                                                                                      rstd, running_mean, running_var);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_global_stats_kernel");
    const long long n = (long long)rows * cols;
    if (n == 0) return;
    batchnorm_apply_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, x, mean, rstd, gamma, beta, y);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_apply_kernel (global statistics)");
}
template <class T>
inline void batchnorm_backward_local_sums(const backend::Cuda& ctx, long rows, long cols, const T* x, const T* mean,
                                          const T* rstd, const T* dy, double* sums, T* dgamma, T* dbeta) {
    using namespace backend::cuda_detail;
    batchnorm_backward_local_sums_kernel<T><<<blocks_for(cols + 1), kThreads, 0, ctx.stream()>>>(rows, cols, x, mean,
                                                                                                rstd, dy, sums, dgamma, dbeta);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_backward_local_sums_kernel");
}
template <class T>
inline void batchnorm_backward_global(const backend::Cuda& ctx, long rows, long cols, const double* sums, const T* x,
                                      const T* mean, const T* rstd, const T* gamma, const T* dy, T* dx) {
    using namespace backend::cuda_detail;
    const long long n = (long long)rows * cols;
    if (n == 0) return;
    batchnorm_backward_global_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, sums, x, mean, rstd,
                                                                                      gamma, dy, dx);
    LCMAE_CUDA_CHECK_LAUNCH("batchnorm_backward_global_kernel");
}

}  // namespace lcmae::ops
