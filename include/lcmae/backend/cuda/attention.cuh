// lcmae/backend/cuda/attention.cuh - softmax rows and multi-head self-attention forward/backward
// on the GPU (contracts in backend/ops.hpp; same names and parameters as backend/cpu/attention.hpp,
// including attention_backward's `scratch` of (B, H, N, N) values).
//
// Layout (as on the CPU): qkv is (B*N, 3*H*hd), token-major; q, k, v are consecutive H*hd column
// blocks and head h is columns [h*hd, (h+1)*hd) of each. So for one head the N x hd matrix of
// sample b starts at qkv + b*N*ld + h*hd with row stride ld = 3*H*hd: a fixed stride over b but a
// different one over h. We therefore loop over the H heads on the host and issue one strided-
// batched GEMM over the B samples per head (H launches per product; correct first, a fused
// attention kernel comes later). P (B, H, N, N) of (b, h) is at (b*H + h)*N*N: stride H*N*N over b.
//
// forward:  S = Q K^T (GEMM, alpha 1) into P; P = softmax(S / sqrt(hd)) by one fused scale+softmax
//           kernel in place; out = P V.
// backward: dV = P^T dO; dS = dO V^T (into scratch); dS = P * (dS - rowsum(dS * P)) / sqrt(hd) (one
//           kernel, in place); dQ = dS K; dK = dS^T Q. Every element of dqkv is written once.
// The softmax kernels use one warp per row; float rows are computed in float, double in double.
// Precision::Bf16 (float): qkv, P, dout and dS are each converted to bf16 once per call and the
// per-head GEMMs take the bf16 copies (attention_forward_bf16 / attention_backward_bf16 below).
#pragma once

#include <cmath>
#include <type_traits>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/gemm.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

inline constexpr int kSoftmaxWarps = 4;  // rows per 128-thread block

/// y[r, :] = softmax(scale * x[r, :]); one warp per row; y may alias x.
template <class T>
__global__ void softmax_rows_kernel(long long rows, long long cols, acc_t<T> scale, const T* x, T* y) {
    using A = acc_t<T>;
    const long long r = blockIdx.x * (long long)kSoftmaxWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;  // whole warp
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    A mx = neg_inf<A>();
    for (long long c = lane; c < cols; c += 32) mx = max(mx, scale * A(xr[c]));
    mx = warp_max(mx);
    A s = A(0);
    for (long long c = lane; c < cols; c += 32) {
        const A e = dev_exp(scale * A(xr[c]) - mx);
        yr[c] = T(e);
        s += e;
    }
    const A inv = A(1) / warp_sum(s);
    for (long long c = lane; c < cols; c += 32) yr[c] = T(A(yr[c]) * inv);
}

/// ds[r, :] = p[r, :] * (ds[r, :] - <ds[r, :], p[r, :]>) * scale, in place; one warp per row.
template <class T>
__global__ void softmax_backward_kernel(long long rows, long long cols, acc_t<T> scale, const T* p, T* ds) {
    using A = acc_t<T>;
    const long long r = blockIdx.x * (long long)kSoftmaxWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const T* pr = p + r * cols;
    T* dr = ds + r * cols;
    A dot = A(0);
    for (long long c = lane; c < cols; c += 32) dot += A(dr[c]) * A(pr[c]);
    dot = warp_sum(dot);
    for (long long c = lane; c < cols; c += 32) dr[c] = T(A(pr[c]) * (A(dr[c]) - dot) * scale);
}

template <class T>
inline void launch_softmax(const Cuda& ctx, long long rows, long long cols, acc_t<T> scale, const T* x, T* y) {
    const auto blocks = static_cast<unsigned int>((rows + kSoftmaxWarps - 1) / kSoftmaxWarps);
    softmax_rows_kernel<T><<<blocks, 32 * kSoftmaxWarps, 0, ctx.stream()>>>(rows, cols, scale, x, y);
    LCMAE_CUDA_CHECK_LAUNCH("softmax_rows_kernel");
}

template <class T>
inline void launch_softmax_backward(const Cuda& ctx, long long rows, long long cols, acc_t<T> scale, const T* p, T* ds) {
    const auto blocks = static_cast<unsigned int>((rows + kSoftmaxWarps - 1) / kSoftmaxWarps);
    softmax_backward_kernel<T><<<blocks, 32 * kSoftmaxWarps, 0, ctx.stream()>>>(rows, cols, scale, p, ds);
    LCMAE_CUDA_CHECK_LAUNCH("softmax_backward_kernel");
}

// Precision::Bf16 (float storage): each operand is converted to bf16 ONCE per call (qkv into the
// GemmA slot, P then dS into GemmB, dout into GemmC; row strides rounded up to 8 values), and the
// per-head GEMMs read the bf16 copies (FP32 output and accumulation, gemm.cuh). The softmax and its
// backward stay in float on the float P / dS.

/// The (b, h) blocks of a bf16 (B*H*N, N) copy: head h at h*N*ldp, sample stride H*N*ldp.
inline Bf16Operand head_of(const Bf16Operand& all, long h, long H, long N) {
    return {all.p + (long long)h * N * all.ld, all.ld, (long long)H * N * all.ld};
}
/// Columns [off, off + hd) of a bf16 token-major (B*N, cols) copy: sample stride N*ld.
inline Bf16Operand cols_of(const Bf16Operand& all, long off, long N) {
    return {all.p + off, all.ld, (long long)N * all.ld};
}

inline void attention_forward_bf16(const Cuda& ctx, long B, long N, long H, long hd, const float* qkv, float* P,
                                   float* out) {
    const long D = H * hd, NN = N * N;
    const Bf16Operand q16 = to_bf16(ctx, ScratchSlot::GemmA, 1, (long long)B * N, 3 * D, qkv, 3 * D, 0);
    for (long h = 0; h < H; ++h)  // S = Q K^T (unscaled)
        gemm_bf16_raw(ctx, false, true, N, N, hd, 1.0f, cols_of(q16, h * hd, N), cols_of(q16, D + h * hd, N), 0.0f,
                      P + h * NN, N, H * NN, B);
    launch_softmax<float>(ctx, (long long)B * H * N, N, 1.0f / std::sqrt(float(hd)), P, P);
    const Bf16Operand p16 = to_bf16(ctx, ScratchSlot::GemmB, 1, (long long)B * H * N, N, P, N, 0);
    for (long h = 0; h < H; ++h)  // out = P V
        gemm_bf16_raw(ctx, false, false, N, hd, N, 1.0f, head_of(p16, h, H, N), cols_of(q16, 2 * D + h * hd, N), 0.0f,
                      out + h * hd, D, N * D, B);
}

inline void attention_backward_bf16(const Cuda& ctx, long B, long N, long H, long hd, const float* qkv, const float* P,
                                    const float* dout, float* dqkv, float* scratch) {
    const long D = H * hd, ld = 3 * D, NN = N * N;
    const Bf16Operand q16 = to_bf16(ctx, ScratchSlot::GemmA, 1, (long long)B * N, 3 * D, qkv, 3 * D, 0);
    const Bf16Operand p16 = to_bf16(ctx, ScratchSlot::GemmB, 1, (long long)B * H * N, N, P, N, 0);
    const Bf16Operand o16 = to_bf16(ctx, ScratchSlot::GemmC, 1, (long long)B * N, D, dout, D, 0);
    for (long h = 0; h < H; ++h) {
        const long o = h * hd;
        // dV = P^T dO
        gemm_bf16_raw(ctx, true, false, N, hd, N, 1.0f, head_of(p16, h, H, N), cols_of(o16, o, N), 0.0f,
                      dqkv + o + 2 * D, ld, N * ld, B);
        // dP = dO V^T (into scratch)
        gemm_bf16_raw(ctx, false, true, N, N, hd, 1.0f, cols_of(o16, o, N), cols_of(q16, 2 * D + o, N), 0.0f,
                      scratch + h * NN, N, H * NN, B);
    }
    launch_softmax_backward<float>(ctx, (long long)B * H * N, N, 1.0f / std::sqrt(float(hd)), P, scratch);
    const Bf16Operand s16 = to_bf16(ctx, ScratchSlot::GemmB, 1, (long long)B * H * N, N, scratch, N, 0);  // P's copy is done
    for (long h = 0; h < H; ++h) {
        const long o = h * hd;
        // dQ = dS K
        gemm_bf16_raw(ctx, false, false, N, hd, N, 1.0f, head_of(s16, h, H, N), cols_of(q16, D + o, N), 0.0f, dqkv + o,
                      ld, N * ld, B);
        // dK = dS^T Q
        gemm_bf16_raw(ctx, true, false, N, hd, N, 1.0f, head_of(s16, h, H, N), cols_of(q16, o, N), 0.0f, dqkv + o + D,
                      ld, N * ld, B);
    }
}

}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

template <class T>
inline void softmax_rows(const backend::Cuda& ctx, long rows, long cols, const T* x, T* y) {
    LCMAE_CHECK(rows >= 0 && cols > 0, "softmax_rows needs rows >= 0 and cols > 0, got " << rows << " x " << cols);
    if (rows == 0) return;
    backend::cuda_detail::launch_softmax<T>(ctx, rows, cols, backend::cuda_detail::acc_t<T>(1), x, y);
}

/// qkv (B*N, 3*H*hd) -> P (B, H, N, N) saved, out (B*N, H*hd).
template <class T>
inline void attention_forward(const backend::Cuda& ctx, long B, long N, long H, long hd, const T* qkv, T* P, T* out) {
    using A = backend::cuda_detail::acc_t<T>;
    LCMAE_CHECK(B >= 0 && N > 0 && H > 0 && hd > 0,
                "attention_forward needs B >= 0 and N, H, hd > 0, got " << B << ", " << N << ", " << H << ", " << hd);
    if (B == 0) return;
    const long D = H * hd, ld = 3 * D, NN = N * N;
    if constexpr (std::is_same_v<T, float>) {
        if (ctx.precision() == backend::Precision::Bf16) return backend::cuda_detail::attention_forward_bf16(ctx, B, N, H, hd, qkv, P, out);
    }
    for (long h = 0; h < H; ++h) {  // S = Q K^T (unscaled) for every sample of head h
        const T* q = qkv + h * hd;
        gemm_batched(ctx, false, true, N, N, hd, T(1), q, ld, N * ld, q + D, ld, N * ld, T(0), P + h * NN, N, H * NN, B);
    }
    backend::cuda_detail::launch_softmax<T>(ctx, (long long)B * H * N, N, A(1) / std::sqrt(A(hd)), P, P);
    for (long h = 0; h < H; ++h) {  // out = P V
        const T* v = qkv + h * hd + 2 * D;
        gemm_batched(ctx, false, false, N, hd, N, T(1), P + h * NN, N, H * NN, v, ld, N * ld, T(0), out + h * hd, D,
                     N * D, B);
    }
}

/// dout (B*N, H*hd) -> dqkv (B*N, 3*H*hd), written. `scratch` holds (B, H, N, N) values.
template <class T>
inline void attention_backward(const backend::Cuda& ctx, long B, long N, long H, long hd, const T* qkv, const T* P,
                               const T* dout, T* dqkv, T* scratch) {
    using A = backend::cuda_detail::acc_t<T>;
    LCMAE_CHECK(B >= 0 && N > 0 && H > 0 && hd > 0,
                "attention_backward needs B >= 0 and N, H, hd > 0, got " << B << ", " << N << ", " << H << ", " << hd);
    if (B == 0) return;
    const long D = H * hd, ld = 3 * D, NN = N * N;
    if constexpr (std::is_same_v<T, float>) {
        if (ctx.precision() == backend::Precision::Bf16)
            return backend::cuda_detail::attention_backward_bf16(ctx, B, N, H, hd, qkv, P, dout, dqkv, scratch);
    }
    for (long h = 0; h < H; ++h) {
        const long o = h * hd;
        const T* Ph = P + h * NN;
        const T* dO = dout + o;
        T* dS = scratch + h * NN;
        // dV = P^T dO
        gemm_batched(ctx, true, false, N, hd, N, T(1), Ph, N, H * NN, dO, D, N * D, T(0), dqkv + o + 2 * D, ld,
                     N * ld, B);
        // dP = dO V^T (into scratch)
        gemm_batched(ctx, false, true, N, N, hd, T(1), dO, D, N * D, qkv + o + 2 * D, ld, N * ld, T(0), dS, N,
                     H * NN, B);
    }
    backend::cuda_detail::launch_softmax_backward<T>(ctx, (long long)B * H * N, N, A(1) / std::sqrt(A(hd)), P, scratch);
    for (long h = 0; h < H; ++h) {
        const long o = h * hd;
        const T* dS = scratch + h * NN;
        // dQ = dS K
        gemm_batched(ctx, false, false, N, hd, N, T(1), dS, N, H * NN, qkv + o + D, ld, N * ld, T(0), dqkv + o, ld,
                     N * ld, B);
        // dK = dS^T Q
        gemm_batched(ctx, true, false, N, hd, N, T(1), dS, N, H * NN, qkv + o, ld, N * ld, T(0), dqkv + o + D, ld,
                     N * ld, B);
    }
}

}  // namespace lcmae::ops
