// lcmae/backend/cuda/attention.cuh - softmax rows and multi-head self-attention forward/backward
// on the GPU (contracts in backend/ops.hpp; same names and parameters as backend/cpu/attention.hpp,
// including attention_backward's `scratch` of (B, H, N, N) values).
//
// Layout (as on the CPU): qkv is (B*N, 3*H*hd), token-major; q, k, v are consecutive H*hd column
// blocks and head h is columns [h*hd, (h+1)*hd) of each. So for one head the N x hd matrix of
// sample b starts at qkv + b*N*ld + h*hd with row stride ld = 3*H*hd: a fixed stride over b but a
// different one over h, i.e. no single stride over the B*H heads. P (B, H, N, N) of (b, h) is at
// (b*H + h)*N*N. Three implementations, chosen by ctx.attention_path() (context.cuh):
//
// Batched (default). Each product is ONE pointer-array batched GEMM over all B*H heads
// (cublasGemmBatchedEx / cublasDgemmBatched), its A/B/C pointers per (b, h) computed on the device
// by one small kernel per call (fill_ptrs_kernel, into the AttnPtrs scratch slot). The GEMMs read
// q, k, v, dout in place and write out and dqkv in place (row strides 3*H*hd and H*hd): no
// re-layout or permute pass. Between the products, one fused kernel per row (one warp per row, the
// row held in registers for N <= 1024: one read, one write of each array it touches):
//   forward:  S = Q K^T (alpha 1); P = softmax(S / sqrt(hd)) written to P (contract) and, where
//             needed, to a padded copy; out = P V.
//   backward: dP = dO V^T; dS = P * (dP - rowsum(dP * P)) / sqrt(hd) (in place), plus copies;
//             dV = P^T dO; dQ = dS K; dK = dS^T Q. Every element of dqkv is written once.
// Padding: under Tf32 and Bf16 cuBLAS needs every pointer of a pointer-array GEMM 16-byte aligned
// (cuBLAS docs, cublasGemmBatchedEx: not checked, misaligned pointers fault), so the N x N
// operands are kept with row stride Np = N rounded up to 8: S / dP / dS live in the AttnS slot
// (B*H*N*Np floats), the softmax writes P and (Tf32) a float copy of it in place over S, or (Bf16)
// a bf16 copy into AttnP; the softmax backward reads P and writes dS in place over dP and (Tf32) a
// float copy of P into AttnP, or (Bf16) bf16 copies of P (AttnP) and dS (GemmB). When N % 8 == 0,
// Np = N and S / dP go straight into P / `scratch`. Under Fp32 strict and for double nothing is
// padded (no alignment rule): S is computed in P, dP in `scratch`, as before.
// Bf16: qkv and dout are converted to bf16 once per call (to_bf16, token-major, row stride rounded
// up to 8: GemmA, GemmC) and the GEMMs read those; P and dS reach the GEMMs as the bf16 copies the
// softmax kernels write (no separate conversion pass over them). Outputs stay float.
// Fallback: under Tf32 (Bf16) the batched path needs hd % 4 == 0 (hd % 8 == 0) and 16-byte aligned
// qkv, P, out / dout, dqkv; otherwise the per-head path runs.
//
// PerHead (the previous implementation, kept for one release): the host loops over the H heads
// and issues one strided-batched GEMM over the B samples per head and product, with one fused
// scale+softmax kernel (and one softmax-backward kernel) over all B*H*N rows in between (3 passes
// over each row). Precision::Bf16 converts qkv, P, dout and dS to bf16 once per call and runs the
// per-head GEMMs on the copies (attention_forward_bf16 / attention_backward_bf16 below).
//
// Fused (AttentionPath::Fused, fused_attention.cuh): three wmma tensor-core kernels (forward; backward
// dQ + dS, then dK + dV) that keep S and dP on chip and write only what the contract asks for (P,
// out; dqkv, with dS in `scratch`). Only under Precision::Tf32 / Bf16 for float on sm_80+, with
// hd % 4 == 0, hd <= 128 and 16-byte aligned qkv / dout; otherwise (strict Fp32 - the parity mode
// needs no tensor cores -, double, other shapes) it runs the batched path. Unverified on a GPU so
// far, hence not the default.
//
// All paths are deterministic (fixed-order warp reductions, cuBLAS without atomics).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include <cuda_bf16.h>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/fused_attention.cuh"
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

// ---- batched path (AttentionPath::Batched) ------------------------------------------------------

/// One warp per row r < rows of S (row stride lds): y = softmax(scale * S[r, :n]) written to
/// P[r, :] (row stride n, the contract) and, when given, to copy[r, :] (T) and copy16[r, :] (bf16),
/// both of row stride ldc. S may alias P or copy (every read of a row precedes every write).
/// PER > 0: the row is held in registers (PER values per lane, n <= 32 PER): one read of S. PER 0:
/// any n, three passes over S. The arithmetic and its order are those of softmax_rows_kernel.
template <class T, int PER>
__global__ void attn_softmax_kernel(long long rows, int n, acc_t<T> scale, const T* S, long long lds, T* P, T* copy,
                                    __nv_bfloat16* copy16, long long ldc) {
    using A = acc_t<T>;
    const long long r = blockIdx.x * (long long)kSoftmaxWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;  // whole warp
    const T* sr = S + r * lds;
    T* pr = P + r * (long long)n;
    T* cr = copy != nullptr ? copy + r * ldc : nullptr;
    __nv_bfloat16* hr = copy16 != nullptr ? copy16 + r * ldc : nullptr;
    auto put = [&](int c, A y) {
        pr[c] = T(y);
        if (cr != nullptr) cr[c] = T(y);
        if (hr != nullptr) hr[c] = __float2bfloat16_rn(float(y));
    };
    if constexpr (PER > 0) {
        A v[PER];
        A mx = neg_inf<A>();
#pragma unroll
        for (int i = 0; i < PER; ++i) {
            const int c = lane + 32 * i;
            v[i] = c < n ? scale * A(sr[c]) : neg_inf<A>();
            mx = max(mx, v[i]);
        }
        mx = warp_max(mx);
        A s = A(0);
#pragma unroll
        for (int i = 0; i < PER; ++i) {
            const int c = lane + 32 * i;
            if (c < n) {
                v[i] = dev_exp(v[i] - mx);
                s += v[i];
            }
        }
        const A inv = A(1) / warp_sum(s);
#pragma unroll
        for (int i = 0; i < PER; ++i) {
            const int c = lane + 32 * i;
            if (c < n) put(c, v[i] * inv);
        }
    } else {
        A mx = neg_inf<A>();
        for (int c = lane; c < n; c += 32) mx = max(mx, scale * A(sr[c]));
        mx = warp_max(mx);
        A s = A(0);
        for (int c = lane; c < n; c += 32) s += dev_exp(scale * A(sr[c]) - mx);
        const A inv = A(1) / warp_sum(s);
        for (int c = lane; c < n; c += 32) put(c, dev_exp(scale * A(sr[c]) - mx) * inv);
    }
}

/// One warp per row: ds[r, :] = p[r, :] * (ds[r, :] - <ds[r, :], p[r, :]>) * scale in place (ds row
/// stride lds, p row stride n), plus optional copies of p (pcopy in T, pcopy16 in bf16) and of the
/// new ds (ds16, bf16), all of row stride ldc. PER as in attn_softmax_kernel; the arithmetic is
/// softmax_backward_kernel's.
template <class T, int PER>
__global__ void attn_softmax_backward_kernel(long long rows, int n, acc_t<T> scale, const T* P, T* dS, long long lds,
                                             T* pcopy, __nv_bfloat16* pcopy16, __nv_bfloat16* ds16, long long ldc) {
    using A = acc_t<T>;
    const long long r = blockIdx.x * (long long)kSoftmaxWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const T* pr = P + r * (long long)n;
    T* dr = dS + r * lds;
    T* cr = pcopy != nullptr ? pcopy + r * ldc : nullptr;
    __nv_bfloat16* hr = pcopy16 != nullptr ? pcopy16 + r * ldc : nullptr;
    __nv_bfloat16* gr = ds16 != nullptr ? ds16 + r * ldc : nullptr;
    auto put = [&](int c, A p, A g) {
        dr[c] = T(g);
        if (cr != nullptr) cr[c] = T(p);
        if (hr != nullptr) hr[c] = __float2bfloat16_rn(float(p));
        if (gr != nullptr) gr[c] = __float2bfloat16_rn(float(g));
    };
    if constexpr (PER > 0) {
        A p[PER], d[PER];
        A dot = A(0);
#pragma unroll
        for (int i = 0; i < PER; ++i) {
            const int c = lane + 32 * i;
            p[i] = c < n ? A(pr[c]) : A(0);
            d[i] = c < n ? A(dr[c]) : A(0);
            if (c < n) dot += d[i] * p[i];
        }
        dot = warp_sum(dot);
#pragma unroll
        for (int i = 0; i < PER; ++i) {
            const int c = lane + 32 * i;
            if (c < n) put(c, p[i], p[i] * (d[i] - dot) * scale);
        }
    } else {
        A dot = A(0);
        for (int c = lane; c < n; c += 32) dot += A(dr[c]) * A(pr[c]);
        dot = warp_sum(dot);
        for (int c = lane; c < n; c += 32) {
            const A p = A(pr[c]);
            put(c, p, p * (A(dr[c]) - dot) * scale);
        }
    }
}

/// Calls f(std::integral_constant<int, PER>) with the smallest PER in {1, 2, 4, 8, 16, 32} such
/// that n <= 32 PER, or PER 0 (the looped kernels) for n > 1024.
template <class F>
inline void with_row_width(int n, F&& f) {
    if (n <= 32) f(std::integral_constant<int, 1>{});
    else if (n <= 64) f(std::integral_constant<int, 2>{});
    else if (n <= 128) f(std::integral_constant<int, 4>{});
    else if (n <= 256) f(std::integral_constant<int, 8>{});
    else if (n <= 512) f(std::integral_constant<int, 16>{});
    else if (n <= 1024) f(std::integral_constant<int, 32>{});
    else f(std::integral_constant<int, 0>{});
}

/// A device pointer per (b, h): base + b * sb + h * sh (byte strides).
struct PtrSpec {
    const void* base;
    long long sb, sh;
};
inline constexpr int kMaxPtrSpecs = 10;
struct PtrTable {
    PtrSpec s[kMaxPtrSpecs];
};

/// out[k * BH + b * H + h] = spec k's pointer for (b, h), k < nspec.
template <class Unused = void>
__global__ void fill_ptrs_kernel(long long BH, long long H, int nspec, PtrTable t, void** out) {
    const long long n = nspec * BH;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const long long k = i / BH, bh = i - k * BH, b = bh / H, h = bh - b * H;
        const PtrSpec& s = t.s[k];
        out[i] = const_cast<char*>(static_cast<const char*>(s.base)) + b * s.sb + h * s.sh;
    }
}

/// The pointer arrays of `specs` (at most kMaxPtrSpecs) in the AttnPtrs slot: array k at [k * BH].
inline void** fill_pointer_arrays(const Cuda& ctx, long long B, long long H, std::initializer_list<PtrSpec> specs) {
    LCMAE_CHECK(specs.size() <= std::size_t(kMaxPtrSpecs), "fill_pointer_arrays: too many arrays");
    PtrTable t{};
    int k = 0;
    for (const PtrSpec& s : specs) t.s[k++] = s;
    const long long BH = B * H;
    auto** out = static_cast<void**>(ctx.scratch(ScratchSlot::AttnPtrs, std::size_t(k * BH) * sizeof(void*)));
    fill_ptrs_kernel<><<<blocks_for(k * BH), kThreads, 0, ctx.stream()>>>(BH, H, k, t, out);
    LCMAE_CUDA_CHECK_LAUNCH("fill_ptrs_kernel");
    return out;
}

/// Row-major C(M, N) = op(A) op(B) (alpha 1, beta 0) for `batch` problems given by device pointer
/// arrays (the mapping of gemm.cuh: cuBLAS gets B first, m = N, n = M). float: cublasGemmBatchedEx
/// with float or (bf16_in) bf16 A and B, float C, the context's compute type (CUBLAS_COMPUTE_32F for
/// bf16 inputs); double: cublasDgemmBatched.
template <class T>
inline void gemm_ptr_batched(const Cuda& ctx, bool ta, bool tb, long M, long N, long K, void* const* A, long lda,
                             void* const* B, long ldb, void* const* C, long ldc, long long batch, bool bf16_in) {
    check_int(M, "M"); check_int(N, "N"); check_int(K, "K"); check_int(long(batch), "batch");
    check_int(lda, "lda"); check_int(ldb, "ldb"); check_int(ldc, "ldc");
    if constexpr (std::is_same_v<T, double>) {
        const double one = 1, zero = 0;
        LCMAE_CUBLAS_CHECK(cublasDgemmBatched(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K), &one,
                                              reinterpret_cast<const double* const*>(B), int(ldb),
                                              reinterpret_cast<const double* const*>(A), int(lda), &zero,
                                              reinterpret_cast<double* const*>(C), int(ldc), int(batch)));
    } else {
        const float one = 1, zero = 0;
        const cudaDataType_t in = bf16_in ? CUDA_R_16BF : CUDA_R_32F;
        const cublasComputeType_t compute = bf16_in ? CUBLAS_COMPUTE_32F : float_compute_type(ctx);
        LCMAE_CUBLAS_CHECK(cublasGemmBatchedEx(ctx.cublas(), op_of(tb), op_of(ta), int(N), int(M), int(K), &one,
                                               reinterpret_cast<const void* const*>(B), in, int(ldb),
                                               reinterpret_cast<const void* const*>(A), in, int(lda), &zero, C,
                                               CUDA_R_32F, int(ldc), int(batch), compute, CUBLAS_GEMM_DEFAULT));
    }
}

/// The batched path's settings for one call: float under Tf32 / Bf16 pads the N x N operands to
/// Np = N rounded up to 8 and needs 16-byte aligned pointers (ok() false: use the per-head path).
template <class T>
struct BatchedPlan {
    bool tf32 = false, bf16 = false;
    long Np = 0;    // row stride of the N x N operands of the GEMMs
    bool pad = false;  // Np != N: S / dP / dS in the AttnS slot, P copied
    bool padded() const { return pad; }
    static BatchedPlan make(const Cuda& ctx, long N) {
        BatchedPlan p;
        if constexpr (std::is_same_v<T, float>) {
            p.tf32 = ctx.precision() == Precision::Tf32;
            p.bf16 = ctx.precision() == Precision::Bf16;
        }
        p.Np = (p.tf32 || p.bf16) ? (N + 7) / 8 * 8 : N;
        p.pad = p.Np != N;
        return p;
    }
    bool ok(long hd, std::initializer_list<const void*> ptrs) const {
        if (!tf32 && !bf16) return true;
        if (hd % (bf16 ? 8 : 4) != 0) return false;
        for (const void* q : ptrs)
            if (reinterpret_cast<std::uintptr_t>(q) % 16 != 0) return false;
        return true;
    }
};

template <class T>
inline void launch_attn_softmax(const Cuda& ctx, long long rows, long n, acc_t<T> scale, const T* S, long long lds, T* P,
                                T* copy, __nv_bfloat16* copy16, long long ldc) {
    const auto blocks = static_cast<unsigned int>((rows + kSoftmaxWarps - 1) / kSoftmaxWarps);
    LCMAE_CHECK(n <= long(INT_MAX), "attention: N too large");
    with_row_width(int(n), [&](auto per) {
        attn_softmax_kernel<T, decltype(per)::value><<<blocks, 32 * kSoftmaxWarps, 0, ctx.stream()>>>(
            rows, int(n), scale, S, lds, P, copy, copy16, ldc);
    });
    LCMAE_CUDA_CHECK_LAUNCH("attn_softmax_kernel");
}

template <class T>
inline void launch_attn_softmax_backward(const Cuda& ctx, long long rows, long n, acc_t<T> scale, const T* P, T* dS,
                                         long long lds, T* pcopy, __nv_bfloat16* pcopy16, __nv_bfloat16* ds16,
                                         long long ldc) {
    const auto blocks = static_cast<unsigned int>((rows + kSoftmaxWarps - 1) / kSoftmaxWarps);
    LCMAE_CHECK(n <= long(INT_MAX), "attention: N too large");
    with_row_width(int(n), [&](auto per) {
        attn_softmax_backward_kernel<T, decltype(per)::value><<<blocks, 32 * kSoftmaxWarps, 0, ctx.stream()>>>(
            rows, int(n), scale, P, dS, lds, pcopy, pcopy16, ds16, ldc);
    });
    LCMAE_CUDA_CHECK_LAUNCH("attn_softmax_backward_kernel");
}

/// qkv as the GEMMs read it: itself, or under Bf16 its bf16 copy (GemmA slot, row stride rounded
/// up to 8). Element size in bytes.
struct QkvView {
    const void* p;
    long long ld;
    long long es;
};
template <class T>
inline QkvView operand_view(const Cuda& ctx, bool bf16, ScratchSlot slot, long long rows, long long cols, const T* x) {
    if constexpr (std::is_same_v<T, float>) {
        if (bf16) {
            const Bf16Operand o = to_bf16(ctx, slot, 1, rows, cols, x, cols, 0);
            return {o.p, o.ld, 2};
        }
    }
    (void)ctx; (void)bf16; (void)slot; (void)rows;
    return {x, cols, (long long)sizeof(T)};
}

/// The batched forward (see the top of this file); the caller checked BatchedPlan::ok.
template <class T>
inline void attention_forward_batched(const Cuda& ctx, const BatchedPlan<T>& plan, long B, long N, long H, long hd,
                                      const T* qkv, T* P, T* out) {
    using A = acc_t<T>;
    const long long BH = (long long)B * H, D = H * hd, Np = plan.Np;
    const long long es = sizeof(T);
    const QkvView q = operand_view(ctx, plan.bf16, ScratchSlot::GemmA, (long long)B * N, 3 * D, qkv);
    T* S = plan.padded() ? static_cast<T*>(ctx.scratch(ScratchSlot::AttnS, std::size_t(BH * N * Np) * sizeof(T))) : P;
    __nv_bfloat16* P16 = plan.bf16 ? static_cast<__nv_bfloat16*>(
                                         ctx.scratch(ScratchSlot::AttnP, std::size_t(BH * N * Np) * sizeof(__nv_bfloat16)))
                                   : nullptr;
    const void* Pa = plan.bf16 ? static_cast<const void*>(P16) : static_cast<const void*>(S);  // P as out = P V reads it
    const long long pes = plan.bf16 ? 2 : es;
    void** arr = fill_pointer_arrays(
        ctx, B, H,
        {PtrSpec{q.p, N * q.ld * q.es, hd * q.es},                                            // 0 Q
         PtrSpec{static_cast<const char*>(q.p) + D * q.es, N * q.ld * q.es, hd * q.es},      // 1 K
         PtrSpec{S, H * N * Np * es, N * Np * es},                                            // 2 S
         PtrSpec{Pa, H * N * Np * pes, N * Np * pes},                                         // 3 P (A of P V)
         PtrSpec{static_cast<const char*>(q.p) + 2 * D * q.es, N * q.ld * q.es, hd * q.es},  // 4 V
         PtrSpec{out, N * D * es, hd * es}});                                                 // 5 out
    // S = Q K^T (unscaled)
    gemm_ptr_batched<T>(ctx, false, true, N, N, hd, arr + 0 * BH, q.ld, arr + 1 * BH, q.ld, arr + 2 * BH, Np, BH, plan.bf16);
    // P = softmax(S / sqrt(hd)); Tf32 padded: the float copy in place over S; Bf16: the bf16 copy
    launch_attn_softmax<T>(ctx, BH * N, N, A(1) / std::sqrt(A(hd)), S, Np, P,
                           plan.padded() && !plan.bf16 ? S : nullptr, P16, Np);
    // out = P V, straight into out (row stride H*hd)
    gemm_ptr_batched<T>(ctx, false, false, N, hd, N, arr + 3 * BH, Np, arr + 4 * BH, q.ld, arr + 5 * BH, D, BH, plan.bf16);
}

/// The batched backward (see the top of this file); the caller checked BatchedPlan::ok.
template <class T>
inline void attention_backward_batched(const Cuda& ctx, const BatchedPlan<T>& plan, long B, long N, long H, long hd,
                                       const T* qkv, const T* P, const T* dout, T* dqkv, T* scratch) {
    using A = acc_t<T>;
    const long long BH = (long long)B * H, D = H * hd, ld = 3 * D, Np = plan.Np;
    const long long es = sizeof(T);
    const QkvView q = operand_view(ctx, plan.bf16, ScratchSlot::GemmA, (long long)B * N, 3 * D, qkv);
    const QkvView o = operand_view(ctx, plan.bf16, ScratchSlot::GemmC, (long long)B * N, D, dout);
    const std::size_t nn = std::size_t(BH * N * Np);
    T* dS = plan.padded() ? static_cast<T*>(ctx.scratch(ScratchSlot::AttnS, nn * sizeof(T))) : scratch;  // dP, then dS
    T* Pf = nullptr;                                  // Tf32 padded: the float copy of P
    __nv_bfloat16 *P16 = nullptr, *dS16 = nullptr;  // Bf16: the bf16 copies of P and dS
    if (plan.bf16) {
        P16 = static_cast<__nv_bfloat16*>(ctx.scratch(ScratchSlot::AttnP, nn * sizeof(__nv_bfloat16)));
        dS16 = static_cast<__nv_bfloat16*>(ctx.scratch(ScratchSlot::GemmB, nn * sizeof(__nv_bfloat16)));
    } else if (plan.padded()) {
        Pf = static_cast<T*>(ctx.scratch(ScratchSlot::AttnP, nn * sizeof(T)));
    }
    const void* Pa = plan.bf16 ? static_cast<const void*>(P16) : Pf != nullptr ? static_cast<const void*>(Pf) : P;
    const void* dSa = plan.bf16 ? static_cast<const void*>(dS16) : static_cast<const void*>(dS);
    const long long mes = plan.bf16 ? 2 : es;  // element size of the N x N GEMM operands
    const char* qb = static_cast<const char*>(q.p);
    const long long qsb = N * q.ld * q.es, qsh = hd * q.es;
    void** arr = fill_pointer_arrays(
        ctx, B, H,
        {PtrSpec{o.p, N * o.ld * o.es, hd * o.es},                 // 0 dO
         PtrSpec{qb + 2 * D * q.es, qsb, qsh},                     // 1 V
         PtrSpec{dS, H * N * Np * es, N * Np * es},                // 2 dP (float)
         PtrSpec{Pa, H * N * Np * mes, N * Np * mes},              // 3 P (A of dV, transposed)
         PtrSpec{dqkv + 2 * D, N * ld * es, hd * es},              // 4 dV
         PtrSpec{dSa, H * N * Np * mes, N * Np * mes},             // 5 dS (A of dQ, dK)
         PtrSpec{qb + D * q.es, qsb, qsh},                         // 6 K
         PtrSpec{dqkv, N * ld * es, hd * es},                      // 7 dQ
         PtrSpec{qb, qsb, qsh},                                    // 8 Q
         PtrSpec{dqkv + D, N * ld * es, hd * es}});                // 9 dK
    auto a = [&](int k) { return arr + k * BH; };
    // dP = dO V^T
    gemm_ptr_batched<T>(ctx, false, true, N, N, hd, a(0), o.ld, a(1), q.ld, a(2), Np, BH, plan.bf16);
    // dS = P * (dP - rowsum(dP * P)) / sqrt(hd) in place, with the copies the GEMMs below read
    launch_attn_softmax_backward<T>(ctx, BH * N, N, A(1) / std::sqrt(A(hd)), P, dS, Np, Pf, P16, dS16, Np);
    // dV = P^T dO; dQ = dS K; dK = dS^T Q (straight into dqkv, row stride 3*H*hd)
    gemm_ptr_batched<T>(ctx, true, false, N, hd, N, a(3), Np, a(0), o.ld, a(4), ld, BH, plan.bf16);
    gemm_ptr_batched<T>(ctx, false, false, N, hd, N, a(5), Np, a(6), q.ld, a(7), ld, BH, plan.bf16);
    gemm_ptr_batched<T>(ctx, true, false, N, hd, N, a(5), Np, a(8), q.ld, a(9), ld, BH, plan.bf16);
}

// ---- per-head path (AttentionPath::PerHead, and the fallback) ----------------------------------

template <class T>
inline void attention_forward_per_head(const Cuda& ctx, long B, long N, long H, long hd, const T* qkv, T* P, T* out) {
    using A = acc_t<T>;
    const long D = H * hd, ld = 3 * D, NN = N * N;
    if constexpr (std::is_same_v<T, float>) {
        if (ctx.precision() == Precision::Bf16) return attention_forward_bf16(ctx, B, N, H, hd, qkv, P, out);
    }
    for (long h = 0; h < H; ++h) {  // S = Q K^T (unscaled) for every sample of head h
        const T* q = qkv + h * hd;
        ops::gemm_batched(ctx, false, true, N, N, hd, T(1), q, ld, N * ld, q + D, ld, N * ld, T(0), P + h * NN, N, H * NN, B);
    }
    launch_softmax<T>(ctx, (long long)B * H * N, N, A(1) / std::sqrt(A(hd)), P, P);
    for (long h = 0; h < H; ++h) {  // out = P V
        const T* v = qkv + h * hd + 2 * D;
        ops::gemm_batched(ctx, false, false, N, hd, N, T(1), P + h * NN, N, H * NN, v, ld, N * ld, T(0), out + h * hd, D,
                          N * D, B);
    }
}

template <class T>
inline void attention_backward_per_head(const Cuda& ctx, long B, long N, long H, long hd, const T* qkv, const T* P,
                                        const T* dout, T* dqkv, T* scratch) {
    using A = acc_t<T>;
    const long D = H * hd, ld = 3 * D, NN = N * N;
    if constexpr (std::is_same_v<T, float>) {
        if (ctx.precision() == Precision::Bf16)
            return attention_backward_bf16(ctx, B, N, H, hd, qkv, P, dout, dqkv, scratch);
    }
    for (long h = 0; h < H; ++h) {
        const long o = h * hd;
        const T* Ph = P + h * NN;
        const T* dO = dout + o;
        T* dS = scratch + h * NN;
        // dV = P^T dO
        ops::gemm_batched(ctx, true, false, N, hd, N, T(1), Ph, N, H * NN, dO, D, N * D, T(0), dqkv + o + 2 * D, ld,
                          N * ld, B);
        // dP = dO V^T (into scratch)
        ops::gemm_batched(ctx, false, true, N, N, hd, T(1), dO, D, N * D, qkv + o + 2 * D, ld, N * ld, T(0), dS, N,
                          H * NN, B);
    }
    launch_softmax_backward<T>(ctx, (long long)B * H * N, N, A(1) / std::sqrt(A(hd)), P, scratch);
    for (long h = 0; h < H; ++h) {
        const long o = h * hd;
        const T* dS = scratch + h * NN;
        // dQ = dS K
        ops::gemm_batched(ctx, false, false, N, hd, N, T(1), dS, N, H * NN, qkv + o + D, ld, N * ld, T(0), dqkv + o, ld,
                          N * ld, B);
        // dK = dS^T Q
        ops::gemm_batched(ctx, true, false, N, hd, N, T(1), dS, N, H * NN, qkv + o, ld, N * ld, T(0), dqkv + o + D, ld,
                          N * ld, B);
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
    namespace cd = backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && N > 0 && H > 0 && hd > 0,
                "attention_forward needs B >= 0 and N, H, hd > 0, got " << B << ", " << N << ", " << H << ", " << hd);
    if (B == 0) return;
    const backend::AttentionPath path = ctx.attention_path();
    if (path == backend::AttentionPath::Fused) {
        if constexpr (std::is_same_v<T, float>) {
            const cd::FusedPlan fp = cd::fused_plan<T>(ctx, B, N, H, hd, {qkv});
            if (fp.ok) return cd::attention_forward_fused(ctx, fp, B, N, H, hd, qkv, P, out);
        }
    }
    if (path == backend::AttentionPath::Batched || path == backend::AttentionPath::Fused) {
        const auto plan = cd::BatchedPlan<T>::make(ctx, N);
        if (plan.ok(hd, {qkv, P, out})) return cd::attention_forward_batched(ctx, plan, B, N, H, hd, qkv, P, out);
    }
    cd::attention_forward_per_head(ctx, B, N, H, hd, qkv, P, out);
}

/// dout (B*N, H*hd) -> dqkv (B*N, 3*H*hd), written. `scratch` holds (B, H, N, N) values (the batched
/// path under Tf32 / Bf16 with N % 8 != 0 uses the context's padded scratch instead and leaves it
/// untouched; the fused path writes dS there).
template <class T>
inline void attention_backward(const backend::Cuda& ctx, long B, long N, long H, long hd, const T* qkv, const T* P,
                               const T* dout, T* dqkv, T* scratch) {
    namespace cd = backend::cuda_detail;
    LCMAE_CHECK(B >= 0 && N > 0 && H > 0 && hd > 0,
                "attention_backward needs B >= 0 and N, H, hd > 0, got " << B << ", " << N << ", " << H << ", " << hd);
    if (B == 0) return;
    const backend::AttentionPath path = ctx.attention_path();
    if (path == backend::AttentionPath::Fused) {
        if constexpr (std::is_same_v<T, float>) {
            const cd::FusedPlan fp = cd::fused_plan<T>(ctx, B, N, H, hd, {qkv, dout});
            if (fp.ok) return cd::attention_backward_fused(ctx, fp, B, N, H, hd, qkv, P, dout, dqkv, scratch);
        }
    }
    if (path == backend::AttentionPath::Batched || path == backend::AttentionPath::Fused) {
        const auto plan = cd::BatchedPlan<T>::make(ctx, N);
        if (plan.ok(hd, {qkv, P, dout, dqkv, scratch}))
            return cd::attention_backward_batched(ctx, plan, B, N, H, hd, qkv, P, dout, dqkv, scratch);
    }
    cd::attention_backward_per_head(ctx, B, N, H, hd, qkv, P, dout, dqkv, scratch);
}

}  // namespace lcmae::ops
