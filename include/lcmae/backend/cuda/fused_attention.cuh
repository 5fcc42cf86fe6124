// lcmae/backend/cuda/fused_attention.cuh - AttentionPath::Fused: multi-head attention forward and
// backward as three tensor-core kernels (nvcuda::wmma) that never write S or dP to global memory.
//
// Why: the batched path (attention.cuh) writes the N x N score matrix S to memory, reads it back for
// the softmax, and runs each product as a pointer-array GEMM of tiny (197 x 64) matrices; on the
// H200 at ViT-B/16 batch 128 that took 0.58 ms forward and 1.0 ms backward (20-30 TFLOP/s).
// The contract still makes us write P (forward) and gives a `scratch` of B*H*N*N values (backward),
// so the traffic floor is P written once forward, P read and dS written + read once backward.
//
// Layout (the op contract, attention.cuh): qkv (B*N, 3*H*hd) token-major; Q, K, V of head h are
// columns [h*hd, (h+1)*hd) of the three H*hd column blocks, row stride ld = 3*H*hd; the head's
// (b, h) rows start at qkv + b*N*ld + h*hd. P / scratch of (b, h) at (b*H + h)*N*N, row stride N.
// out / dout (B*N, H*hd), head columns h*hd.
//
// Kernels (grid: x = b*H + h, y = a 64-row tile; 128 threads = 4 warps, each warp owns 16 rows of
// the tile from start to end, so most synchronisation is per warp):
//   forward (per 64 query rows): pass 1 streams the key tiles, S = Q K^T (wmma, FP32 accumulation)
//     into a float staging tile, and keeps an online row max / sum per lane (FP32); the 32 lanes'
//     (max, sum) pairs are merged once at the end. Pass 2 recomputes each S tile (cheaper than
//     storing a 64 x N strip: works for any N and keeps shared memory fixed), writes
//     P = exp(S/sqrt(hd) - max) / sum once (coalesced rows) and accumulates out += P V in wmma
//     fragments. Key columns >= N are excluded from the statistics (the -inf mask) and get P = 0.
//   backward kernel 1 (per 64 query rows): pass 1 recomputes dP = dO V^T per key tile and sums
//     D_i = sum_j P_ij dP_ij (per-lane partials in a fixed column order, one butterfly at the end:
//     O is not an argument, so D cannot be rowsum(dO * O)); pass 2 recomputes dP, forms
//     dS = P (dP - D) / sqrt(hd), writes it to `scratch` (kernel 2 needs it per key tile) and
//     accumulates dQ = dS K.
//   backward kernel 2 (per 64 keys): dV = P^T dO, then dK = dS^T Q, streaming the query tiles
//     (P and dS tiles are staged [query][key] and read as column-major wmma A operands).
// Every dqkv element is written once by exactly one thread; no atomics, and every sum runs in a
// fixed order, so a run is bit-identical to the last (the project requires it).
//
// Operands: staged from float global memory into shared memory already converted - TF32 values
// held in floats (wmma::__float_to_tf32, round to nearest) for m16n16k8, or __nv_bfloat16
// (__float2bfloat16_rn) for m16n16k16 - so each global value is converted once per tile load and the
// fragments are loaded as they are. Accumulation and the softmax statistics are FP32.
// Padding: tiles are 64 x HDP with HDP = hd rounded up to 32, 64 or 128; rows >= N and columns
// >= hd are staged as zeros (never left uninitialised: a NaN there would survive 0 * NaN), and
// nothing outside the real (N, hd) block is written.
//
// Requirements (attention.cuh checks them and otherwise runs the batched path): float storage,
// Precision::Tf32 or Bf16 (strict Fp32 and double never need tensor cores and keep their exact
// GEMMs), a device of compute capability >= 8.0 and kernels compiled for it (wmma TF32/BF16 needs
// sm_80; the kernel bodies are compiled only for __CUDA_ARCH__ >= 800 and the host checks the
// kernels' PTX version), hd % 4 == 0 and hd <= 128 (whole float4 loads), qkv and dout 16-byte
// aligned, and the shared memory within the device's opt-in limit (TF32 at hd 128: 103.5 KiB).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

inline constexpr int kFusedTile = 64;  // rows per block and the width of the tiles it streams over
inline constexpr int kFusedWarps = 4;  // warp w owns rows [16w, 16w + 16) of the block's tile
inline constexpr int kFusedThreads = 32 * kFusedWarps;
inline constexpr int kFusedMaxHd = 128;

/// Shared-memory geometry for operand type E (float holding TF32 values, or bf16) and the padded
/// head dimension HDP. Row strides are padded by 8 elements (4 floats for the staging tile) against
/// bank conflicts while keeping what wmma needs: ldm a multiple of 16 bytes and every fragment
/// pointer 32-byte aligned (16-row steps and k steps of 8 floats / 16 bf16 are multiples of 32 B).
template <class E, int HDP>
struct FusedGeom {
    static_assert(HDP % 16 == 0 && HDP <= kFusedMaxHd, "HDP must be a multiple of 16, at most 128");
    static constexpr int NF = HDP / 16;                  // 16-column output fragments per warp
    static constexpr int LDX = HDP + 8;                  // (64 x HDP) operand tiles, elements
    static constexpr int LDS = kFusedTile + 4;           // (64 x 64) float staging tile, floats
    static constexpr int LDP = kFusedTile + 8;           // (64 x 64) operand tile, elements
    static constexpr std::size_t x_bytes = std::size_t(kFusedTile) * LDX * sizeof(E);
    static constexpr std::size_t s_bytes = std::size_t(kFusedTile) * LDS * sizeof(float);
    static constexpr std::size_t p_bytes = std::size_t(kFusedTile) * LDP * sizeof(E);
    static constexpr std::size_t r_bytes = std::size_t(kFusedTile) * 2 * sizeof(float);  // per-row statistics
    static_assert(x_bytes % 128 == 0 && s_bytes % 128 == 0 && p_bytes % 128 == 0 && r_bytes % 128 == 0,
                  "keep the arrays aligned");
    /// forward and backward kernel 1: Q or dO; K or V; the S / dP staging tile; the P / dS operand;
    /// the rows' statistics (max and 1/sum, or D)
    static constexpr std::size_t row_kernel_bytes = 2 * x_bytes + s_bytes + p_bytes + r_bytes;
    /// backward kernel 2: the P / dS tile; dO or Q; the output staging tile
    static constexpr std::size_t key_kernel_bytes = x_bytes + s_bytes + p_bytes;
    static constexpr std::size_t max_bytes = row_kernel_bytes;
};

// The device code exists only where wmma TF32 / BF16 does (sm_80+) and in the host pass (which
// needs the declarations to launch). An older target compiles the kernels as a trap; the host
// never launches them there (fused_kernels_usable).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define LCMAE_FUSED_ATTENTION_BODY 1

namespace fused_wmma = nvcuda::wmma;

template <class E>
struct FusedMma;
template <>
struct FusedMma<float> {  // TF32 values held in floats
    static constexpr int K = 8;
    using Prec = fused_wmma::precision::tf32;
    __device__ static float conv(float x) { return fused_wmma::__float_to_tf32(x); }
};
template <>
struct FusedMma<__nv_bfloat16> {
    static constexpr int K = 16;
    using Prec = __nv_bfloat16;
    __device__ static __nv_bfloat16 conv(float x) { return __float2bfloat16_rn(x); }
};
template <class E, class Layout>
using FusedFragA = fused_wmma::fragment<fused_wmma::matrix_a, 16, 16, FusedMma<E>::K, typename FusedMma<E>::Prec, Layout>;
template <class E, class Layout>
using FusedFragB = fused_wmma::fragment<fused_wmma::matrix_b, 16, 16, FusedMma<E>::K, typename FusedMma<E>::Prec, Layout>;
template <class E>
using FusedAcc = fused_wmma::fragment<fused_wmma::accumulator, 16, 16, FusedMma<E>::K, float>;

__device__ inline void fused_store4(float* d, float4 v) {
    using M = FusedMma<float>;
    *reinterpret_cast<float4*>(d) = make_float4(M::conv(v.x), M::conv(v.y), M::conv(v.z), M::conv(v.w));
}
__device__ inline void fused_store4(__nv_bfloat16* d, float4 v) {
    auto* d2 = reinterpret_cast<__nv_bfloat162*>(d);  // 8-byte aligned: column a multiple of 4, LDX of 8
    d2[0] = __floats2bfloat162_rn(v.x, v.y);
    d2[1] = __floats2bfloat162_rn(v.z, v.w);
}

/// The block stages a (64 x HDP) operand tile: dst[r][c] = src[r*lds + c] for r < rows, c < hd,
/// zero elsewhere. src is 16-byte aligned and hd % 4 == 0 (checked on the host), so a float4 is
/// either wholly inside the head or wholly padding. Adjacent threads take adjacent float4s of a row.
template <class E, int HDP>
__device__ inline void fused_stage_tokens(E* dst, const float* src, long long lds, int rows, int hd) {
    constexpr int C4 = HDP / 4;
    constexpr int LDX = FusedGeom<E, HDP>::LDX;
    for (int idx = threadIdx.x; idx < kFusedTile * C4; idx += kFusedThreads) {
        const int r = idx / C4, c = (idx % C4) * 4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (r < rows && c < hd) v = *reinterpret_cast<const float4*>(src + r * lds + c);
        fused_store4(dst + r * LDX + c, v);
    }
}

/// The block stages a (64 x 64) tile of a head's N x N matrix (P or dS, row stride n):
/// dst[i][j] = src[(q0 + i)*n + k0 + j] where both indices are < n, zero elsewhere. Scalar loads:
/// rows of an N x N matrix have no alignment; adjacent threads read adjacent columns.
template <class E, int LDP>
__device__ inline void fused_stage_square(E* dst, const float* src, int n, int q0, int k0) {
    for (int idx = threadIdx.x; idx < kFusedTile * kFusedTile; idx += kFusedThreads) {
        const int i = idx / kFusedTile, j = idx % kFusedTile;
        const int q = q0 + i, k = k0 + j;
        const float v = (q < n && k < n) ? src[(long long)q * n + k] : 0.f;
        dst[i * LDP + j] = FusedMma<E>::conv(v);
    }
}

/// One warp: acc[f] = A B_f^T for f < 4, where A is 16 x KD row-major at a (stride lda) and B_f is
/// rows [16f, 16f + 16) of the row-major (64 x KD) tile at b (stride ldb), read as the col-major
/// KD x 16 operand. I.e. a 16 x 64 block of Q K^T or dO V^T.
template <class E, int KD>
__device__ inline void fused_mma_abt(FusedAcc<E> (&acc)[4], const E* a, int lda, const E* b, int ldb) {
#pragma unroll
    for (int f = 0; f < 4; ++f) fused_wmma::fill_fragment(acc[f], 0.0f);
    // Unrolled by 2 only: full unrolling hoists every fragment load of the k loop and spills.
#pragma unroll 2
    for (int kk = 0; kk < KD; kk += FusedMma<E>::K) {
        FusedFragA<E, fused_wmma::row_major> fa;
        fused_wmma::load_matrix_sync(fa, a + kk, lda);
#pragma unroll
        for (int f = 0; f < 4; ++f) {
            FusedFragB<E, fused_wmma::col_major> fb;
            fused_wmma::load_matrix_sync(fb, b + f * 16 * ldb + kk, ldb);
            fused_wmma::mma_sync(acc[f], fa, fb, acc[f]);
        }
    }
}

/// One warp: acc[f] += A B[:, 16f : 16f + 16] for f < NF. A is 16 x KD: row-major at a (element
/// (m, k) at a[m*lda + k]) or col-major (a[m + k*lda]); B is KD x 16 NF row-major at b.
template <class E, class ALayout, int KD, int NF>
__device__ inline void fused_mma_ab(FusedAcc<E> (&acc)[NF], const E* a, int lda, const E* b, int ldb) {
#pragma unroll 2
    for (int kk = 0; kk < KD; kk += FusedMma<E>::K) {
        FusedFragA<E, ALayout> fa;
        if constexpr (std::is_same_v<ALayout, fused_wmma::row_major>)
            fused_wmma::load_matrix_sync(fa, a + kk, lda);
        else
            fused_wmma::load_matrix_sync(fa, a + kk * lda, lda);
#pragma unroll
        for (int f = 0; f < NF; ++f) {
            FusedFragB<E, fused_wmma::row_major> fb;
            fused_wmma::load_matrix_sync(fb, b + kk * ldb + f * 16, ldb);
            fused_wmma::mma_sync(acc[f], fa, fb, acc[f]);
        }
    }
}

/// One warp writes its 16 x (16 NF) accumulator block to dst (row i at dst + i*ldd) for rows
/// i < rows and columns < hd, through its own 16 rows of the float staging tile st (stride LDS),
/// 64 columns at a time; lanes take adjacent columns (coalesced stores).
template <class E, int NF, int LDS>
__device__ inline void fused_store_rows(const FusedAcc<E> (&acc)[NF], float* st, float* dst, long long ldd, int rows,
                                        int hd) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int c0 = 0; c0 < NF; c0 += 4) {
#pragma unroll
        for (int f = 0; f < 4; ++f)
            if (c0 + f < NF) fused_wmma::store_matrix_sync(st + f * 16, acc[c0 + f], LDS, fused_wmma::mem_row_major);
        __syncwarp();
        for (int i = 0; i < 16 && i < rows; ++i)
            for (int c = lane; c < 64; c += 32) {
                const int col = c0 * 16 + c;  // < hd <= 16 NF: only stored fragments are read
                if (col < hd) dst[i * ldd + col] = st[i * LDS + c];
            }
        __syncwarp();  // st is overwritten by the next 64 columns
    }
}

#endif  // wmma available

/// Forward, one block per (b*H + h, 64 query rows); see the top of this file.
template <class E, int HDP>
__global__ void __launch_bounds__(kFusedThreads)
    fused_attention_forward_kernel(int N, int H, int hd, float scale, const float* __restrict__ qkv,
                                   float* __restrict__ P, float* __restrict__ out) {
#ifdef LCMAE_FUSED_ATTENTION_BODY
    using G = FusedGeom<E, HDP>;
    using M = FusedMma<E>;
    extern __shared__ __align__(128) unsigned char lcmae_fused_smem[];
    E* Qs = reinterpret_cast<E*>(lcmae_fused_smem);
    E* KVs = reinterpret_cast<E*>(lcmae_fused_smem + G::x_bytes);
    float* Ss = reinterpret_cast<float*>(lcmae_fused_smem + 2 * G::x_bytes);
    E* Ps = reinterpret_cast<E*>(lcmae_fused_smem + 2 * G::x_bytes + G::s_bytes);
    float* Rs = reinterpret_cast<float*>(lcmae_fused_smem + 2 * G::x_bytes + G::s_bytes + G::p_bytes);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const long long bh = blockIdx.x;
    const long long b = bh / H, h = bh % H;
    const long long D = (long long)H * hd, ld = 3 * D;
    const float* q = qkv + b * N * ld + h * hd;  // the head's Q rows; K at + D, V at + 2D
    float* Ph = P + bh * N * N;
    const int row0 = blockIdx.y * kFusedTile, wrow = 16 * warp;
    float* Sw = Ss + wrow * G::LDS;  // this warp's 16 staging rows
    E* Pw = Ps + wrow * G::LDP;      // this warp's 16 rows of the P operand
    const int ntiles = (N + kFusedTile - 1) / kFusedTile;

    fused_stage_tokens<E, HDP>(Qs, q + row0 * ld, ld, min(kFusedTile, N - row0), hd);

    // Pass 1: per lane, the running max m and sum l of exp(x - m) over its columns (lane, lane + 32
    // of every key tile) of each of the warp's 16 rows; x = scale * S computed without FMA
    // contraction so that pass 2 reproduces it bit for bit.
    float m[16], l[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) m[i] = neg_inf<float>(), l[i] = 0.f;
    for (int kt = 0; kt < ntiles; ++kt) {
        const int k0 = kt * kFusedTile;
        __syncthreads();  // every warp is done with the previous K tile (and Qs is staged)
        fused_stage_tokens<E, HDP>(KVs, q + D + k0 * ld, ld, min(kFusedTile, N - k0), hd);
        __syncthreads();
        FusedAcc<E> s[4];
        fused_mma_abt<E, HDP>(s, Qs + wrow * G::LDX, G::LDX, KVs, G::LDX);
#pragma unroll
        for (int f = 0; f < 4; ++f) fused_wmma::store_matrix_sync(Sw + f * 16, s[f], G::LDS, fused_wmma::mem_row_major);
        __syncwarp();
        const bool v0 = k0 + lane < N, v1 = k0 + lane + 32 < N;  // v1 implies v0
        if (v0) {
#pragma unroll
            for (int i = 0; i < 16; ++i) {
                const float x0 = mul_rn(scale, Sw[i * G::LDS + lane]);
                const float x1 = v1 ? mul_rn(scale, Sw[i * G::LDS + lane + 32]) : neg_inf<float>();
                const float mn = fmaxf(m[i], fmaxf(x0, x1));
                l[i] = l[i] * dev_exp(m[i] - mn) + dev_exp(x0 - mn) + (v1 ? dev_exp(x1 - mn) : 0.f);
                m[i] = mn;
            }
        }
        __syncwarp();  // Sw is rewritten by the next tile
    }
    // Merge the lanes' (m, l): a butterfly whose combine is symmetric (max, and a + c == c + a), so
    // every lane ends with the same bits. l == 0 marks a lane without columns (m = -inf: skip the
    // exp(-inf - -inf) = NaN). The row's max and 1 / sum go to shared memory (Rs, the warp's own 16
    // rows): pass 2 reads them as broadcasts instead of holding 32 registers next to the out
    // fragments.
#pragma unroll
    for (int i = 0; i < 16; ++i) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float mo = __shfl_xor_sync(0xffffffffu, m[i], o), lo = __shfl_xor_sync(0xffffffffu, l[i], o);
            const float mn = fmaxf(m[i], mo);
            const float a = l[i] == 0.f ? 0.f : l[i] * dev_exp(m[i] - mn);
            const float c = lo == 0.f ? 0.f : lo * dev_exp(mo - mn);
            m[i] = mn;
            l[i] = a + c;
        }
    }
    if (lane < 16) {
        float mv = m[0], lv = l[0];
#pragma unroll
        for (int i = 1; i < 16; ++i)
            if (lane == i) mv = m[i], lv = l[i];
        Rs[2 * (wrow + lane)] = mv;
        Rs[2 * (wrow + lane) + 1] = 1.f / lv;
    }
    __syncwarp();

    // Pass 2: S again, P written once (rows < N, columns < N; coalesced along the row), its operand
    // copy (zero for columns >= N) into Pw, then out += P V.
    FusedAcc<E> o[G::NF];
#pragma unroll
    for (int f = 0; f < G::NF; ++f) fused_wmma::fill_fragment(o[f], 0.0f);
    for (int kt = 0; kt < ntiles; ++kt) {
        const int k0 = kt * kFusedTile;
        __syncthreads();  // every warp is done with the previous V tile
        fused_stage_tokens<E, HDP>(KVs, q + D + k0 * ld, ld, min(kFusedTile, N - k0), hd);
        __syncthreads();
        FusedAcc<E> s[4];
        fused_mma_abt<E, HDP>(s, Qs + wrow * G::LDX, G::LDX, KVs, G::LDX);
#pragma unroll
        for (int f = 0; f < 4; ++f) fused_wmma::store_matrix_sync(Sw + f * 16, s[f], G::LDS, fused_wmma::mem_row_major);
        __syncwarp();
        const bool v0 = k0 + lane < N, v1 = k0 + lane + 32 < N;
#pragma unroll 4
        for (int i = 0; i < 16; ++i) {
            const int r = row0 + wrow + i;
            const float mi = Rs[2 * (wrow + i)], inv = Rs[2 * (wrow + i) + 1];
            const float p0 = v0 ? dev_exp(mul_rn(scale, Sw[i * G::LDS + lane]) - mi) * inv : 0.f;
            const float p1 = v1 ? dev_exp(mul_rn(scale, Sw[i * G::LDS + lane + 32]) - mi) * inv : 0.f;
            if (r < N) {
                float* pr = Ph + (long long)r * N + k0;
                if (v0) pr[lane] = p0;
                if (v1) pr[lane + 32] = p1;
            }
            Pw[i * G::LDP + lane] = M::conv(p0);
            Pw[i * G::LDP + lane + 32] = M::conv(p1);
        }
        __syncthreads();  // every warp is done with the K tile (Pw is the warp's own)
        fused_stage_tokens<E, HDP>(KVs, q + 2 * D + k0 * ld, ld, min(kFusedTile, N - k0), hd);
        __syncthreads();
        fused_mma_ab<E, fused_wmma::row_major, kFusedTile, G::NF>(o, Pw, G::LDP, KVs, G::LDX);
    }
    fused_store_rows<E, G::NF, G::LDS>(o, Sw, out + (b * N + row0 + wrow) * D + h * hd, D, N - row0 - wrow, hd);
#else
    (void)N, (void)H, (void)hd, (void)scale, (void)qkv, (void)P, (void)out;
    __trap();  // never launched: the host checks the kernel's PTX version (fused_kernels_usable)
#endif
}

/// Backward kernel 1, one block per (b*H + h, 64 query rows): dS into `dS` (the caller's scratch)
/// and dQ into dqkv; see the top of this file.
template <class E, int HDP>
__global__ void __launch_bounds__(kFusedThreads)
    fused_attention_backward_dq_kernel(int N, int H, int hd, float scale, const float* __restrict__ qkv,
                                       const float* __restrict__ P, const float* __restrict__ dout,
                                       float* __restrict__ dqkv, float* __restrict__ dS) {
#ifdef LCMAE_FUSED_ATTENTION_BODY
    using G = FusedGeom<E, HDP>;
    using M = FusedMma<E>;
    extern __shared__ __align__(128) unsigned char lcmae_fused_smem[];
    E* dOs = reinterpret_cast<E*>(lcmae_fused_smem);
    E* KVs = reinterpret_cast<E*>(lcmae_fused_smem + G::x_bytes);
    float* Ss = reinterpret_cast<float*>(lcmae_fused_smem + 2 * G::x_bytes);
    E* Ps = reinterpret_cast<E*>(lcmae_fused_smem + 2 * G::x_bytes + G::s_bytes);
    float* Rs = reinterpret_cast<float*>(lcmae_fused_smem + 2 * G::x_bytes + G::s_bytes + G::p_bytes);

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const long long bh = blockIdx.x;
    const long long b = bh / H, h = bh % H;
    const long long D = (long long)H * hd, ld = 3 * D;
    const float* q = qkv + b * N * ld + h * hd;  // Q; K at + D, V at + 2D (row stride ld)
    const float* dO = dout + b * N * D + h * hd;  // row stride D
    const float* Ph = P + bh * N * N;
    float* dSh = dS + bh * N * N;
    const int row0 = blockIdx.y * kFusedTile, wrow = 16 * warp;
    float* Sw = Ss + wrow * G::LDS;
    E* Pw = Ps + wrow * G::LDP;
    const int ntiles = (N + kFusedTile - 1) / kFusedTile;

    fused_stage_tokens<E, HDP>(dOs, dO + row0 * D, D, min(kFusedTile, N - row0), hd);

    // Pass 1: per-lane partials of D_i = sum_j P_ij dP_ij (columns in a fixed order), then one
    // butterfly per row (symmetric: every lane gets the same bits).
    float dsum[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) dsum[i] = 0.f;
    for (int kt = 0; kt < ntiles; ++kt) {
        const int k0 = kt * kFusedTile;
        __syncthreads();
        fused_stage_tokens<E, HDP>(KVs, q + 2 * D + k0 * ld, ld, min(kFusedTile, N - k0), hd);
        __syncthreads();
        FusedAcc<E> s[4];
        fused_mma_abt<E, HDP>(s, dOs + wrow * G::LDX, G::LDX, KVs, G::LDX);
#pragma unroll
        for (int f = 0; f < 4; ++f) fused_wmma::store_matrix_sync(Sw + f * 16, s[f], G::LDS, fused_wmma::mem_row_major);
        __syncwarp();
        const bool v0 = k0 + lane < N, v1 = k0 + lane + 32 < N;
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            const int r = row0 + wrow + i;
            if (r < N) {
                const float* pr = Ph + (long long)r * N + k0;
                if (v0) dsum[i] += pr[lane] * Sw[i * G::LDS + lane];
                if (v1) dsum[i] += pr[lane + 32] * Sw[i * G::LDS + lane + 32];
            }
        }
        __syncwarp();
    }
    // D_i to shared memory (the warp's own rows), as the forward's statistics
#pragma unroll
    for (int i = 0; i < 16; ++i) dsum[i] = warp_sum(dsum[i]);
    if (lane < 16) {
        float dv = dsum[0];
#pragma unroll
        for (int i = 1; i < 16; ++i)
            if (lane == i) dv = dsum[i];
        Rs[wrow + lane] = dv;
    }
    __syncwarp();

    // Pass 2: dP again; dS = P (dP - D) * scale to global (rows, columns < N) and, as an operand,
    // to Pw (zero outside); dQ += dS K.
    FusedAcc<E> acc[G::NF];
#pragma unroll
    for (int f = 0; f < G::NF; ++f) fused_wmma::fill_fragment(acc[f], 0.0f);
    for (int kt = 0; kt < ntiles; ++kt) {
        const int k0 = kt * kFusedTile;
        __syncthreads();  // every warp is done with the previous K tile
        fused_stage_tokens<E, HDP>(KVs, q + 2 * D + k0 * ld, ld, min(kFusedTile, N - k0), hd);
        __syncthreads();
        FusedAcc<E> s[4];
        fused_mma_abt<E, HDP>(s, dOs + wrow * G::LDX, G::LDX, KVs, G::LDX);
#pragma unroll
        for (int f = 0; f < 4; ++f) fused_wmma::store_matrix_sync(Sw + f * 16, s[f], G::LDS, fused_wmma::mem_row_major);
        __syncwarp();
        const bool v0 = k0 + lane < N, v1 = k0 + lane + 32 < N;
#pragma unroll 4
        for (int i = 0; i < 16; ++i) {
            const int r = row0 + wrow + i;
            const float di = Rs[wrow + i];
            float g0 = 0.f, g1 = 0.f;
            if (r < N) {
                const float* pr = Ph + (long long)r * N + k0;
                float* gr = dSh + (long long)r * N + k0;
                if (v0) {
                    g0 = pr[lane] * (Sw[i * G::LDS + lane] - di) * scale;
                    gr[lane] = g0;
                }
                if (v1) {
                    g1 = pr[lane + 32] * (Sw[i * G::LDS + lane + 32] - di) * scale;
                    gr[lane + 32] = g1;
                }
            }
            Pw[i * G::LDP + lane] = M::conv(g0);
            Pw[i * G::LDP + lane + 32] = M::conv(g1);
        }
        __syncthreads();  // every warp is done with the V tile
        fused_stage_tokens<E, HDP>(KVs, q + D + k0 * ld, ld, min(kFusedTile, N - k0), hd);
        __syncthreads();
        fused_mma_ab<E, fused_wmma::row_major, kFusedTile, G::NF>(acc, Pw, G::LDP, KVs, G::LDX);
    }
    fused_store_rows<E, G::NF, G::LDS>(acc, Sw, dqkv + (b * N + row0 + wrow) * ld + h * hd, ld, N - row0 - wrow, hd);
#else
    (void)N, (void)H, (void)hd, (void)scale, (void)qkv, (void)P, (void)dout, (void)dqkv, (void)dS;
    __trap();
#endif
}

/// Backward kernel 2, one block per (b*H + h, 64 keys): dV = P^T dO and dK = dS^T Q into dqkv (dS
/// from kernel 1); see the top of this file.
template <class E, int HDP>
__global__ void __launch_bounds__(kFusedThreads)
    fused_attention_backward_dkv_kernel(int N, int H, int hd, const float* __restrict__ qkv,
                                        const float* __restrict__ P, const float* __restrict__ dout,
                                        const float* __restrict__ dS, float* __restrict__ dqkv) {
#ifdef LCMAE_FUSED_ATTENTION_BODY
    using G = FusedGeom<E, HDP>;
    extern __shared__ __align__(128) unsigned char lcmae_fused_smem[];
    E* Ts = reinterpret_cast<E*>(lcmae_fused_smem);  // P or dS tile, [query][key], stride LDP
    E* Xs = reinterpret_cast<E*>(lcmae_fused_smem + G::p_bytes);  // dO or Q tile, stride LDX
    float* Ss = reinterpret_cast<float*>(lcmae_fused_smem + G::p_bytes + G::x_bytes);

    const int warp = threadIdx.x / 32;
    const long long bh = blockIdx.x;
    const long long b = bh / H, h = bh % H;
    const long long D = (long long)H * hd, ld = 3 * D;
    const float* q = qkv + b * N * ld + h * hd;
    const float* dO = dout + b * N * D + h * hd;
    const float* Ph = P + bh * N * N;
    const float* dSh = dS + bh * N * N;
    const int k0 = blockIdx.y * kFusedTile, wrow = 16 * warp;  // the warp owns keys k0 + wrow + [0, 16)
    float* Sw = Ss + wrow * G::LDS;
    float* dq = dqkv + (b * N + k0 + wrow) * ld + h * hd;  // the warp's first key row of dqkv (head h)
    const int ntiles = (N + kFusedTile - 1) / kFusedTile;

    FusedAcc<E> acc[G::NF];
    // dV = P^T dO over the query tiles: A = the [query][key] tile read col-major from column wrow.
#pragma unroll
    for (int f = 0; f < G::NF; ++f) fused_wmma::fill_fragment(acc[f], 0.0f);
    for (int qt = 0; qt < ntiles; ++qt) {
        const int q0 = qt * kFusedTile;
        __syncthreads();  // every warp is done with the previous tiles
        fused_stage_square<E, G::LDP>(Ts, Ph, N, q0, k0);
        fused_stage_tokens<E, HDP>(Xs, dO + q0 * D, D, min(kFusedTile, N - q0), hd);
        __syncthreads();
        fused_mma_ab<E, fused_wmma::col_major, kFusedTile, G::NF>(acc, Ts + wrow, G::LDP, Xs, G::LDX);
    }
    fused_store_rows<E, G::NF, G::LDS>(acc, Sw, dq + 2 * D, ld, N - k0 - wrow, hd);
    // dK = dS^T Q, the same way.
#pragma unroll
    for (int f = 0; f < G::NF; ++f) fused_wmma::fill_fragment(acc[f], 0.0f);
    for (int qt = 0; qt < ntiles; ++qt) {
        const int q0 = qt * kFusedTile;
        __syncthreads();
        fused_stage_square<E, G::LDP>(Ts, dSh, N, q0, k0);
        fused_stage_tokens<E, HDP>(Xs, q + q0 * ld, ld, min(kFusedTile, N - q0), hd);
        __syncthreads();
        fused_mma_ab<E, fused_wmma::col_major, kFusedTile, G::NF>(acc, Ts + wrow, G::LDP, Xs, G::LDX);
    }
    fused_store_rows<E, G::NF, G::LDS>(acc, Sw, dq + D, ld, N - k0 - wrow, hd);
#else
    (void)N, (void)H, (void)hd, (void)qkv, (void)P, (void)dout, (void)dS, (void)dqkv;
    __trap();
#endif
}

#ifdef LCMAE_FUSED_ATTENTION_BODY
#undef LCMAE_FUSED_ATTENTION_BODY
#endif

// ---- host side ----------------------------------------------------------------------------------

template <class E, int HDP>
struct FusedConfig {
    using elem = E;
    static constexpr int hdp = HDP;
};

/// Calls f(FusedConfig<E, HDP>{}) for the operand type (bf16 or TF32-in-float) and padded head dim.
template <class F>
inline void with_fused_config(bool bf16, int hdp, F&& f) {
    auto pick = [&](auto tag) {
        using E = typename decltype(tag)::type;
        if (hdp == 32) f(FusedConfig<E, 32>{});
        else if (hdp == 64) f(FusedConfig<E, 64>{});
        else f(FusedConfig<E, 128>{});
    };
    if (bf16) pick(std::type_identity<__nv_bfloat16>{});
    else pick(std::type_identity<float>{});
}

/// True when this binary holds real (sm_80+) bodies of the three kernels for the current device:
/// an arch list without sm_80+ code would JIT the trap bodies from older PTX. cudaFuncAttributes::
/// ptxVersion is the virtual architecture the kernel was compiled for (major * 10 + minor; CUB's
/// PtxVersion reads it the same way). Queried once per configuration (the process is assumed to
/// use one kind of GPU); a failed query (no image for this device) counts as no.
template <class E, int HDP>
inline bool fused_kernels_usable() {
    static const bool ok = [] {
        const void* kernels[] = {reinterpret_cast<const void*>(&fused_attention_forward_kernel<E, HDP>),
                                 reinterpret_cast<const void*>(&fused_attention_backward_dq_kernel<E, HDP>),
                                 reinterpret_cast<const void*>(&fused_attention_backward_dkv_kernel<E, HDP>)};
        for (const void* k : kernels) {
            cudaFuncAttributes a{};
            if (cudaFuncGetAttributes(&a, k) != cudaSuccess) {
                (void)cudaGetLastError();
                return false;
            }
            if (a.ptxVersion < 80) return false;
        }
        return true;
    }();
    return ok;
}

/// Whether (and how) the fused kernels run this call; ok false: use the batched path.
struct FusedPlan {
    bool ok = false;
    bool bf16 = false;
    int hdp = 0;
};

template <class T>
inline FusedPlan fused_plan(const Cuda& ctx, long B, long N, long H, long hd, std::initializer_list<const void*> vec_ptrs) {
    FusedPlan p;
    if constexpr (!std::is_same_v<T, float>) {
        (void)ctx, (void)B, (void)N, (void)H, (void)hd, (void)vec_ptrs;
        return p;  // double: exact GEMMs, no tensor cores
    } else {
        const Precision prec = ctx.precision();
        if (prec != Precision::Tf32 && prec != Precision::Bf16) return p;  // strict FP32: the parity mode
        if (ctx.compute_capability() < 80) return p;
        if (hd % 4 != 0 || hd > kFusedMaxHd) return p;
        if (N > INT_MAX / 2 || H > INT_MAX || (long long)B * H > INT_MAX ||
            (N + kFusedTile - 1) / kFusedTile > 65535)
            return p;
        for (const void* v : vec_ptrs)
            if (reinterpret_cast<std::uintptr_t>(v) % 16 != 0) return p;
        p.bf16 = prec == Precision::Bf16;
        p.hdp = hd <= 32 ? 32 : hd <= 64 ? 64 : 128;
        with_fused_config(p.bf16, p.hdp, [&](auto cfg) {
            using C = decltype(cfg);
            using G = FusedGeom<typename C::elem, C::hdp>;
            p.ok = G::max_bytes <= std::size_t(ctx.max_shared_memory_optin()) &&
                   fused_kernels_usable<typename C::elem, C::hdp>();
        });
        return p;
    }
}

/// The forward (fused_plan(...).ok checked by the caller).
inline void attention_forward_fused(const Cuda& ctx, const FusedPlan& plan, long B, long N, long H, long hd,
                                    const float* qkv, float* P, float* out) {
    const float scale = 1.0f / std::sqrt(float(hd));
    const dim3 grid(unsigned(B * H), unsigned((N + kFusedTile - 1) / kFusedTile));
    with_fused_config(plan.bf16, plan.hdp, [&](auto cfg) {
        using C = decltype(cfg);
        using G = FusedGeom<typename C::elem, C::hdp>;
        auto* k = &fused_attention_forward_kernel<typename C::elem, C::hdp>;
        LCMAE_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(G::row_kernel_bytes)));
        k<<<grid, kFusedThreads, G::row_kernel_bytes, ctx.stream()>>>(int(N), int(H), int(hd), scale, qkv, P, out);
        LCMAE_CUDA_CHECK_LAUNCH("fused_attention_forward_kernel");
    });
}

/// The backward: kernel 1 (dS into scratch, dQ), then kernel 2 (dK, dV) on the same stream.
inline void attention_backward_fused(const Cuda& ctx, const FusedPlan& plan, long B, long N, long H, long hd,
                                     const float* qkv, const float* P, const float* dout, float* dqkv,
                                     float* scratch) {
    const float scale = 1.0f / std::sqrt(float(hd));
    const dim3 grid(unsigned(B * H), unsigned((N + kFusedTile - 1) / kFusedTile));
    with_fused_config(plan.bf16, plan.hdp, [&](auto cfg) {
        using C = decltype(cfg);
        using G = FusedGeom<typename C::elem, C::hdp>;
        auto* k1 = &fused_attention_backward_dq_kernel<typename C::elem, C::hdp>;
        LCMAE_CUDA_CHECK(cudaFuncSetAttribute(k1, cudaFuncAttributeMaxDynamicSharedMemorySize, int(G::row_kernel_bytes)));
        k1<<<grid, kFusedThreads, G::row_kernel_bytes, ctx.stream()>>>(int(N), int(H), int(hd), scale, qkv, P, dout,
                                                                       dqkv, scratch);
        LCMAE_CUDA_CHECK_LAUNCH("fused_attention_backward_dq_kernel");
        auto* k2 = &fused_attention_backward_dkv_kernel<typename C::elem, C::hdp>;
        LCMAE_CUDA_CHECK(cudaFuncSetAttribute(k2, cudaFuncAttributeMaxDynamicSharedMemorySize, int(G::key_kernel_bytes)));
        k2<<<grid, kFusedThreads, G::key_kernel_bytes, ctx.stream()>>>(int(N), int(H), int(hd), qkv, P, dout, scratch,
                                                                       dqkv);
        LCMAE_CUDA_CHECK_LAUNCH("fused_attention_backward_dkv_kernel");
    });
}

}  // namespace lcmae::backend::cuda_detail
