// lcmae/backend/cuda/elementwise.cuh - bias, residual, scaling, GELU, ReLU on the GPU (contracts in
// backend/ops.hpp; same names and parameters as backend/cpu/elementwise.hpp).
//
// One thread per element in grid-stride loops (64-bit indices). Kept simple on purpose: these are
// memory-bound, and 16-byte vector loads are a later optimisation. bias_grad and col_sum_add sum
// columns with the two-stage deterministic column reduction of colreduce.cuh (no atomics, the same
// bits on every run and every GPU).
#pragma once

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/colreduce.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

template <class T>
__global__ void bias_fill_kernel(long long rows, long long cols, const T* __restrict__ bias, T* __restrict__ y) {
    const long long n = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = bias[i % cols];
}

/// Stage 1 of db[c] += sum_r alpha dy[r, c] (bias_grad: alpha 1, and A(1 * d) == A(d) exactly):
/// this chunk's partial column sums into partial (colreduce.cuh).
template <class T>
__global__ void col_sum_partial_kernel(long long rows, long long cols, long long chunk_rows, T alpha,
                                       const T* __restrict__ dy, acc_t<T>* __restrict__ partial) {
    using A = acc_t<T>;
    __shared__ A sh[kColRows][32];
    const long long c = blockIdx.x * 32LL + threadIdx.x;
    long long r0, r1;
    chunk_range(rows, chunk_rows, r0, r1);
    A acc = A(0);
    if (c < cols)
        for (long long r = r0 + threadIdx.y; r < r1; r += kColRows) acc += A(alpha * dy[r * cols + c]);
    const A s = column_sum(acc, sh);
    if (c < cols && threadIdx.y == 0) *partial_at(partial, 0, cols, c) = s;
}

// Elementwise ops may be called in place (an output aliasing an input), so no __restrict__ below.
// a and b may alias y (y = a + b, in place), so no here.
template <class T>
__global__ void add_kernel(long long n, const T* a, const T* b, T* y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = a[i] + b[i];
}

template <class T>
__global__ void add_inplace_kernel(long long n, const T* x, T* y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] += x[i];
}

template <class T>
__global__ void scale_kernel(long long n, T alpha, T* y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] *= alpha;
}

template <class T>
__global__ void scale_rows_kernel(long long rows, long long cols, const T* __restrict__ s, T* __restrict__ y) {
    const long long n = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] *= s[i / cols];
}

// GELU, erf form: gelu(x) = x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2,
// gelu'(x) = Phi(x) + x * phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
template <class A>
__device__ inline A gelu_of(A x) {
    return A(0.5) * x * (A(1) + dev_erf(x * A(0.70710678118654752440)));
}
template <class A>
__device__ inline A gelu_grad_of(A x) {
    const A cdf = A(0.5) * (A(1) + dev_erf(x * A(0.70710678118654752440)));
    const A pdf = dev_exp(A(-0.5) * x * x) * A(0.39894228040143267794);
    return cdf + x * pdf;
}

template <class T>
__global__ void gelu_forward_kernel(long long n, const T* x, T* y) {
    using A = acc_t<T>;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = T(gelu_of(A(x[i])));
}

template <class T>
__global__ void gelu_backward_kernel(long long n, const T* x, const T* dy, T* dx) {
    using A = acc_t<T>;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dx[i] = T(A(dy[i]) * gelu_grad_of(A(x[i])));
}

template <class T>
__global__ void relu_forward_kernel(long long n, const T* x, T* y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = x[i] > T(0) ? x[i] : T(0);
}

template <class T>
__global__ void relu_backward_kernel(long long n, const T* x, const T* dy, T* dx) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dx[i] = x[i] > T(0) ? dy[i] : T(0);
}

/// y[r, c] = a y[r, c] + b v[c]; one thread per element.
template <class T>
__global__ void scale_add_broadcast_kernel(long long rows, long long cols, T a, T* y, T b, const T* v) {
    const long long n = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = a * y[i] + b * v[i % cols];
}

/// db[c] += sum_r alpha dy[r, c], two stages (colreduce.cuh); bias_grad is alpha = 1.
template <class T>
inline void col_sum_add_2stage(const Cuda& ctx, long long rows, long long cols, T alpha, const T* dy, T* db) {
    using A = acc_t<T>;
    const ColSplit sp = col_split(rows, cols);
    A* partial = col_scratch<A>(ctx, sp.chunks * cols);
    col_sum_partial_kernel<T><<<col_stage1_grid(cols, sp), col_stage1_block(), 0, ctx.stream()>>>(rows, cols, sp.chunk_rows,
                                                                                                   alpha, dy, partial);
    LCMAE_CUDA_CHECK_LAUNCH("col_sum_partial_kernel");
    col_finish_add<T, A>(ctx, cols, sp, partial, db, nullptr);
}
}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

template <class T>
inline void bias_fill(const backend::Cuda& ctx, long rows, long cols, const T* bias, T* y) {
    LCMAE_CHECK(rows >= 0 && cols >= 0, "bias_fill sizes must be non-negative, got " << rows << " x " << cols);
    const long long n = (long long)rows * cols;
    if (n == 0) return;
    using namespace backend::cuda_detail;
    bias_fill_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, bias, y);
    LCMAE_CUDA_CHECK_LAUNCH("bias_fill_kernel");
}

template <class T>
inline void bias_grad(const backend::Cuda& ctx, long rows, long cols, const T* dy, T* db) {
    LCMAE_CHECK(rows >= 0 && cols >= 0, "bias_grad sizes must be non-negative, got " << rows << " x " << cols);
    if (rows == 0 || cols == 0) return;  // db += 0
    backend::cuda_detail::col_sum_add_2stage<T>(ctx, rows, cols, T(1), dy, db);
}

template <class T>
inline void add(const backend::Cuda& ctx, long n, const T* a, const T* b, T* y) {
    LCMAE_CHECK(n >= 0, "add size must be non-negative, got " << n);
    if (n == 0) return;
    using namespace backend::cuda_detail;
    add_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(n, a, b, y);
    LCMAE_CUDA_CHECK_LAUNCH("add_kernel");
}

template <class T>
inline void add_inplace(const backend::Cuda& ctx, long n, const T* x, T* y) {
    LCMAE_CHECK(n >= 0, "add_inplace size must be non-negative, got " << n);
    if (n == 0) return;
    using namespace backend::cuda_detail;
    add_inplace_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(n, x, y);
    LCMAE_CUDA_CHECK_LAUNCH("add_inplace_kernel");
}

template <class T>
inline void scale_inplace(const backend::Cuda& ctx, long n, T alpha, T* y) {
    LCMAE_CHECK(n >= 0, "scale_inplace size must be non-negative, got " << n);
    if (n == 0) return;
    using namespace backend::cuda_detail;
    scale_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(n, alpha, y);
    LCMAE_CUDA_CHECK_LAUNCH("scale_kernel");
}

template <class T>
inline void scale_rows(const backend::Cuda& ctx, long rows, long cols, const T* s, T* y) {
    LCMAE_CHECK(rows >= 0 && cols >= 0, "scale_rows sizes must be non-negative, got " << rows << " x " << cols);
    if (rows == 0 || cols == 0) return;
    using namespace backend::cuda_detail;
    scale_rows_kernel<T><<<blocks_for(rows * cols), kThreads, 0, ctx.stream()>>>(rows, cols, s, y);
    LCMAE_CUDA_CHECK_LAUNCH("scale_rows_kernel");
}

template <class T>
inline void gelu_forward(const backend::Cuda& ctx, long n, const T* x, T* y) {
    LCMAE_CHECK(n >= 0, "gelu_forward size must be non-negative, got " << n);
    if (n == 0) return;
    using namespace backend::cuda_detail;
    gelu_forward_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(n, x, y);
    LCMAE_CUDA_CHECK_LAUNCH("gelu_forward_kernel");
}

template <class T>
inline void gelu_backward(const backend::Cuda& ctx, long n, const T* x, const T* dy, T* dx) {
    LCMAE_CHECK(n >= 0, "gelu_backward size must be non-negative, got " << n);
    if (n == 0) return;
    using namespace backend::cuda_detail;
    gelu_backward_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(n, x, dy, dx);
    LCMAE_CUDA_CHECK_LAUNCH("gelu_backward_kernel");
}

template <class T>
inline void relu_forward(const backend::Cuda& ctx, long n, const T* x, T* y) {
    LCMAE_CHECK(n >= 0, "relu_forward size must be non-negative, got " << n);
    if (n == 0) return;
    using namespace backend::cuda_detail;
    relu_forward_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(n, x, y);
    LCMAE_CUDA_CHECK_LAUNCH("relu_forward_kernel");
}

template <class T>
inline void relu_backward(const backend::Cuda& ctx, long n, const T* x, const T* dy, T* dx) {
    LCMAE_CHECK(n >= 0, "relu_backward size must be non-negative, got " << n);
    if (n == 0) return;
    using namespace backend::cuda_detail;
    relu_backward_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(n, x, dy, dx);
    LCMAE_CUDA_CHECK_LAUNCH("relu_backward_kernel");
}

/// y[r, c] = a y[r, c] + b v[c].
template <class T>
inline void scale_add_broadcast(const backend::Cuda& ctx, long rows, long cols, T a, T* y, T b, const T* v) {
    LCMAE_CHECK(rows >= 0 && cols >= 0, "scale_add_broadcast sizes must be non-negative, got " << rows << " x " << cols);
    const long long n = (long long)rows * cols;
    if (n == 0) return;
    using namespace backend::cuda_detail;
    scale_add_broadcast_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, a, y, b, v);
    LCMAE_CUDA_CHECK_LAUNCH("scale_add_broadcast_kernel");
}

/// db[c] += alpha sum_r dy[r, c] (accumulates; deterministic column reduction).
template <class T>
inline void col_sum_add(const backend::Cuda& ctx, long rows, long cols, T alpha, const T* dy, T* db) {
    LCMAE_CHECK(rows >= 0 && cols >= 0, "col_sum_add sizes must be non-negative, got " << rows << " x " << cols);
    if (rows == 0 || cols == 0) return;
    backend::cuda_detail::col_sum_add_2stage<T>(ctx, rows, cols, alpha, dy, db);
}

}  // namespace lcmae::ops
