// lcmae/backend/cuda/memory.cuh - filling and moving device memory (allocation itself is
// backend::Cuda::allocate / deallocate in context.cuh). The Cpu backend has the same four names.
//
// All four are enqueued on ctx's stream, so they are ordered with the ops around them:
//   fill(ctx, n, value, dst)        dst[0..n) = value (a kernel: cudaMemset only sets bytes)
//   copy(ctx, n, src, dst)          device to device
//   upload(ctx, n, host_src, dst)   host to device. From pageable host memory the runtime has
//                                   staged host_src before returning, so it may be reused at once;
//                                   pinned host memory must stay untouched until the stream is done.
//   download(ctx, n, src, host_dst) device to host; synchronises the stream before returning, so
//                                   host_dst is ready (and every op enqueued before it has run).
//   copy_rows(ctx, rows, cols, src, ld_src, dst, ld_dst)   dst[r, 0:cols] = src[r, 0:cols]
//   add_rows(ctx, rows, cols, src, ld_src, dst, ld_dst)    dst[r, 0:cols] += src[r, 0:cols]
//                                   (one thread per element; exact, as the CPU's)
#pragma once

#include <cuda_runtime.h>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {
template <class T>
__global__ void fill_kernel(long long n, T value, T* __restrict__ y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = value;
}

/// dst[r, c] (=|+=) src[r, c] over rows x cols, row strides ld_src / ld_dst; one thread per element.
template <class T, bool kAdd>
__global__ void rows_kernel(long long rows, long long cols, const T* __restrict__ src, long long ld_src,
                            T* __restrict__ dst, long long ld_dst) {
    const long long n = rows * cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / cols, c = i % cols;
        if constexpr (kAdd) dst[r * ld_dst + c] += src[r * ld_src + c];
        else dst[r * ld_dst + c] = src[r * ld_src + c];
    }
}
}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

template <class T>
inline void fill(const backend::Cuda& ctx, long n, T value, T* dst) {
    LCMAE_CHECK(n >= 0, "fill size must be non-negative, got " << n);
    if (n == 0) return;
    using namespace backend::cuda_detail;
    fill_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(n, value, dst);
    LCMAE_CUDA_CHECK_LAUNCH("fill_kernel");
}

template <class T>
inline void copy(const backend::Cuda& ctx, long n, const T* src, T* dst) {
    LCMAE_CHECK(n >= 0, "copy size must be non-negative, got " << n);
    if (n == 0) return;
    LCMAE_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(T) * n, cudaMemcpyDeviceToDevice, ctx.stream()));
}

template <class T>
inline void upload(const backend::Cuda& ctx, long n, const T* host_src, T* dst) {
    LCMAE_CHECK(n >= 0, "upload size must be non-negative, got " << n);
    if (n == 0) return;
    LCMAE_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, sizeof(T) * n, cudaMemcpyHostToDevice, ctx.stream()));
}

template <class T>
inline void download(const backend::Cuda& ctx, long n, const T* src, T* host_dst) {
    LCMAE_CHECK(n >= 0, "download size must be non-negative, got " << n);
    if (n > 0)
        LCMAE_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, sizeof(T) * n, cudaMemcpyDeviceToHost, ctx.stream()));
    ctx.synchronize();
}

template <class T>
inline void copy_rows(const backend::Cuda& ctx, long rows, long cols, const T* src, long ld_src, T* dst, long ld_dst) {
    LCMAE_CHECK(rows >= 0 && cols >= 0, "copy_rows sizes must be non-negative, got " << rows << " x " << cols);
    if (rows == 0 || cols == 0) return;
    using namespace backend::cuda_detail;
    const long long n = (long long)rows * cols;
    rows_kernel<T, false><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, src, ld_src, dst, ld_dst);
    LCMAE_CUDA_CHECK_LAUNCH("rows_kernel (copy_rows)");
}

template <class T>
inline void add_rows(const backend::Cuda& ctx, long rows, long cols, const T* src, long ld_src, T* dst, long ld_dst) {
    LCMAE_CHECK(rows >= 0 && cols >= 0, "add_rows sizes must be non-negative, got " << rows << " x " << cols);
    if (rows == 0 || cols == 0) return;
    using namespace backend::cuda_detail;
    const long long n = (long long)rows * cols;
    rows_kernel<T, true><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(rows, cols, src, ld_src, dst, ld_dst);
    LCMAE_CUDA_CHECK_LAUNCH("rows_kernel (add_rows)");
}

}  // namespace lcmae::ops
