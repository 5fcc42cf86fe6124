// lcmae/backend/cuda/patches.cuh - patchify in both layouts and its inverse on the GPU (contracts
// in backend/ops.hpp; same names and parameters as backend/cpu/patches.hpp; ids is a DEVICE pointer
// of B*K int64 token ids, or null for all L tokens in order).
//
// One thread per output element, pure data movement: the results are bit-identical to the CPU's.
// A token id outside [0, L) is recorded in the context's error record (kErrPatchifyConv) and that
// output row is left as it was (ctx.check_errors() throws).
#pragma once

#include <cstdint>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

/// out (B*K, C*p*p) in conv order (c, ky, kx).
template <class T>
__global__ void patchify_conv_kernel(long long C, long long S, long long p, long long B, const T* __restrict__ images,
                                     const std::int64_t* __restrict__ ids, long long K, T* __restrict__ out,
                                     DeviceErrors* errors) {
    const long long G = S / p, L = G * G, Pd = C * p * p, n_out = B * K * Pd;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_out; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / Pd, j = i % Pd;
        const long long b = row / K, k = row % K;
        const long long n = ids ? (long long)ids[row] : k;
        if (n < 0 || n >= L) {
            if (j == 0) record_error(errors, kErrPatchifyConv, n, row);
            continue;
        }
        const long long r = n / G, c0 = n % G;
        const long long c = j / (p * p), ky = (j / p) % p, kx = j % p;
        out[i] = images[((b * C + c) * S + r * p + ky) * S + c0 * p + kx];
    }
}

/// out (B, L, p*p*C) in target order (ky, kx, c); kInverse: images from such patches.
template <class T, bool kInverse>
__global__ void patchify_target_kernel(long long C, long long S, long long p, long long B, const T* __restrict__ src,
                                       T* __restrict__ dst) {
    const long long G = S / p, L = G * G, Pd = C * p * p, n_all = B * L * Pd;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n_all; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / Pd, j = i % Pd;  // row = b * L + n
        const long long b = row / L, n = row % L;
        const long long r = n / G, c0 = n % G;
        const long long ky = j / (p * C), kx = (j / C) % p, c = j % C;
        const long long img = ((b * C + c) * S + r * p + ky) * S + c0 * p + kx;
        if constexpr (kInverse) dst[img] = src[i];
        else dst[i] = src[img];
    }
}

inline void check_geometry(long C, long S, long p, long B, const char* op) {
    LCMAE_CHECK(C >= 1 && S >= 1 && p >= 1 && B >= 0 && S % p == 0,
                op << ": bad geometry C " << C << " S " << S << " p " << p << " B " << B);
}

}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

template <class T>
inline void patchify_conv(const backend::Cuda& ctx, long C, long S, long p, long B, const T* images,
                          const std::int64_t* ids, long K, T* out) {
    using namespace backend::cuda_detail;
    check_geometry(C, S, p, B, "patchify_conv");
    LCMAE_CHECK(K >= 0, "patchify_conv: K must be non-negative, got " << K);
    const long long n = (long long)B * K * C * p * p;
    if (n == 0) return;
    patchify_conv_kernel<T><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(C, S, p, B, images, ids, K, out,
                                                                            ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("patchify_conv_kernel");
}

template <class T>
inline void patchify_target(const backend::Cuda& ctx, long C, long S, long p, long B, const T* images, T* out) {
    using namespace backend::cuda_detail;
    check_geometry(C, S, p, B, "patchify_target");
    const long long n = (long long)B * C * S * S;
    if (n == 0) return;
    patchify_target_kernel<T, false><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(C, S, p, B, images, out);
    LCMAE_CUDA_CHECK_LAUNCH("patchify_target_kernel");
}

template <class T>
inline void unpatchify_target(const backend::Cuda& ctx, long C, long S, long p, long B, const T* patches, T* images) {
    using namespace backend::cuda_detail;
    check_geometry(C, S, p, B, "unpatchify_target");
    const long long n = (long long)B * C * S * S;
    if (n == 0) return;
    patchify_target_kernel<T, true><<<blocks_for(n), kThreads, 0, ctx.stream()>>>(C, S, p, B, patches, images);
    LCMAE_CUDA_CHECK_LAUNCH("patchify_target_kernel (inverse)");
}

}  // namespace lcmae::ops
