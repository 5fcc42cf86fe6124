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

}  // namespace lcmae::ops
