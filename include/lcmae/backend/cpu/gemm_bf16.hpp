// lcmae/backend/cpu/gemm_bf16.hpp - single-threaded float GEMM with bf16 operands and FP32
// accumulation on AVX512-BF16 (vdpbf16ps), for backend::Cpu's Precision::Bf16 (contract of gemm in
// ops.hpp; cpu/gemm.hpp calls this per thread panel).
//
// Why an own kernel: Eigen has no bf16 dot-product kernel. The shape is BLIS's: B is packed into
// KC x 32 micro-panels, A into 8 x KC micro-panels, both as bf16 PAIRS along K (one 32-bit word holds
// op(X)(.., k) and op(X)(.., k+1), the layout vdpbf16ps multiplies pairwise); an 8 x 32 register tile
// (16 zmm accumulators) takes one broadcast A pair and two B vectors per K pair. Packing reads any
// transpose and leading dimension, pads odd K and edge tiles with zeros, and the epilogue masks the
// columns and skips the rows past the edge, so C is never touched outside M x N.
//
// The functions that use AVX-512 carry a target attribute, so the library builds without -march
// flags; backend::Cpu::set_precision refuses Bf16 unless CPUID reports AVX512-BF16, so they only run
// where the instructions exist. AMX-BF16 is not used (not testable on the machines we have).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LCMAE_HAVE_BF16_KERNEL 1
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lcmae::backend::cpu::bf16 {

/// float -> bf16 bits, round to nearest even (what vcvtneps2bf16 does); a NaN stays a (quiet) NaN.
inline std::uint16_t to_bf16(float x) noexcept {
    std::uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return std::uint16_t(u >> 16);
}
inline float from_bf16(std::uint16_t h) noexcept {
    const std::uint32_t u = std::uint32_t(h) << 16;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}
/// x rounded to the nearest bf16, as a float (tests build their FP32 references from this).
inline float round_bf16(float x) noexcept { return from_bf16(to_bf16(x)); }

inline constexpr long kMR = 8;    // rows of the register tile
inline constexpr long kNR = 32;   // columns of the register tile (two zmm of 16 floats)
inline constexpr long kKC = 384;  // K per block (even): a 384 x 32 bf16 B micro-panel is 24 KiB, in L1
inline constexpr long kMC = 96;   // rows of A per block: 96 x 384 bf16 = 72 KiB, in L2
inline constexpr long kNC = 1024; // columns of B per block: 768 KiB

#ifdef LCMAE_HAVE_BF16_KERNEL
namespace detail {

inline std::uint32_t pair(float lo, float hi) noexcept {
    return std::uint32_t(to_bf16(lo)) | (std::uint32_t(to_bf16(hi)) << 16);
}

/// kc floats x[0..kc) -> (kc + 1) / 2 pair words, the odd tail padded with 0. Where K is the contiguous
/// dimension, pair words in K order are just the bf16 values in memory order, so one vcvtne2ps2bf16
/// converts 32 floats (same rounding as to_bf16 for normal numbers; denormals, which vdpbf16ps treats
/// as zero anyway, are flushed). The scalar form packing needs 10x longer, which showed on attention.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void convert_row(const float* x, long kc,
                                                                                       std::uint32_t* out) {
    long k = 0;
    for (; k + 32 <= kc; k += 32) {
        const __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + k + 16), _mm512_loadu_ps(x + k));
        _mm512_storeu_si512(out + k / 2, (__m512i)h);
    }
    for (; k < kc; k += 2) out[k / 2] = pair(x[k], k + 1 < kc ? x[k + 1] : 0.f);
}

/// kc values along K of `count` rows r0.. of a matrix X whose element (r, k) is X[r * ldx + k]
/// (k_contiguous) or X[k * ldx + r] -> micro-panels of R rows: [panel][kpair][row], zero-padded.
/// op(A)'s rows and op(B)'s columns are both such rows (pack_a, pack_b).
template <long R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void pack_panels(
    bool k_contiguous, const float* X, long ldx, long r0, long count, long k0, long kc, std::uint32_t* out) {
    const long kp = (kc + 1) / 2;
    auto at = [&](long r, long k) { return k_contiguous ? X[r * ldx + k] : X[k * ldx + r]; };
    std::uint32_t row[kKC / 2];
    for (long pr = 0; pr < count; pr += R) {
        const long nr = std::min(R, count - pr);
        std::uint32_t* o = out + pr * kp;
        if (k_contiguous) {  // a row's K values are adjacent: vectorised conversion
            for (long r = 0; r < R; ++r) {
                if (r < nr) convert_row(X + (r0 + pr + r) * ldx + k0, kc, row);
                for (long p = 0; p < kp; ++p) o[p * R + r] = r < nr ? row[p] : 0u;
            }
            continue;
        }
        for (long p = 0; p < kp; ++p) {
            const long k = k0 + 2 * p;
            const bool odd_end = 2 * p + 1 >= kc;
            for (long r = 0; r < R; ++r) {
                if (r >= nr) { o[p * R + r] = 0; continue; }
                const long i = r0 + pr + r;
                o[p * R + r] = pair(at(i, k), odd_end ? 0.f : at(i, k + 1));
            }
        }
    }
}

/// op(A)(i0.., k0..) for m <= kMC rows, kc columns -> micro-panels of kMR rows: [panel][kpair][row].
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void pack_a(bool ta, const float* A, long lda, long i0, long m, long k0, long kc, std::uint32_t* out) {
    pack_panels<kMR>(!ta, A, lda, i0, m, k0, kc, out);
}

/// op(B)(k0.., j0..) for kc rows, n <= kNC columns -> micro-panels of kNR columns: [panel][kpair][col].
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void pack_b(bool tb, const float* B, long ldb, long k0, long kc, long j0, long n, std::uint32_t* out) {
    pack_panels<kNR>(tb, B, ldb, j0, n, k0, kc, out);
}

/// The 8 x 32 tile: C(0..m, 0..n) = alpha * sum + (first ? beta * C : C); beta == 0 on the first K
/// block never reads C (the contract: old contents, NaN included, are ignored).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void micro_kernel(
    long kp, const std::uint32_t* a, const std::uint32_t* b, float* C, long ldc, long m, long n, float alpha,
    float beta, bool first) {
    __m512 acc[kMR][2];
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (long p = 0; p < kp; ++p) {
        const __m512i b0 = _mm512_loadu_si512(b + p * kNR), b1 = _mm512_loadu_si512(b + p * kNR + 16);
#pragma GCC unroll 8
        for (int r = 0; r < kMR; ++r) {
            const __m512i av = _mm512_set1_epi32(int(a[p * kMR + r]));
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], (__m512bh)av, (__m512bh)b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], (__m512bh)av, (__m512bh)b1);
        }
    }
    const __mmask16 m0 = n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
    const __mmask16 m1 = n >= 32 ? __mmask16(0xffff) : n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    const bool overwrite = first && beta == 0.f, scale = first && beta != 1.f;
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) {
        if (r >= m) break;
        float* c = C + r * ldc;
        // Explicit FMAs: with separate mul and add, GCC's default -ffp-contract=fast fused them
        // differently in different inlined copies, and a thread panel differed from the whole call
        // in the last bit (the panel-split test caught it).
        __m512 r0, r1;
        if (overwrite) {
            r0 = _mm512_mul_ps(va, acc[r][0]);
            r1 = _mm512_mul_ps(va, acc[r][1]);
        } else {
            __m512 c0 = _mm512_maskz_loadu_ps(m0, c), c1 = _mm512_maskz_loadu_ps(m1, c + 16);
            if (scale) { c0 = _mm512_mul_ps(vb, c0); c1 = _mm512_mul_ps(vb, c1); }
            r0 = _mm512_fmadd_ps(va, acc[r][0], c0);
            r1 = _mm512_fmadd_ps(va, acc[r][1], c1);
        }
        _mm512_mask_storeu_ps(c, m0, r0);
        _mm512_mask_storeu_ps(c + 16, m1, r1);
    }
}

}  // namespace detail

/// C = alpha op(A) op(B) + beta C on one thread (M, N, K > 0; the caller handles empty sizes).
/// Packing buffers are per thread and grow once, so a training step allocates nothing after warm-up.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void gemm(
    bool ta, bool tb, long M, long N, long K, float alpha, const float* A, long lda, const float* B, long ldb,
    float beta, float* C, long ldc) {
    thread_local std::vector<std::uint32_t> abuf, bbuf;
    const long kcmax = std::min(kKC, K), kpmax = (kcmax + 1) / 2;
    const long ncmax = std::min(kNC, N), mcmax = std::min(kMC, M);
    const std::size_t bneed = std::size_t((ncmax + kNR - 1) / kNR * kNR * kpmax);
    const std::size_t aneed = std::size_t((mcmax + kMR - 1) / kMR * kMR * kpmax);
    if (bbuf.size() < bneed) bbuf.resize(bneed);
    if (abuf.size() < aneed) abuf.resize(aneed);
    for (long jc = 0; jc < N; jc += kNC) {
        const long nc = std::min(kNC, N - jc);
        for (long pc = 0; pc < K; pc += kKC) {
            const long kc = std::min(kKC, K - pc), kp = (kc + 1) / 2;
            detail::pack_b(tb, B, ldb, pc, kc, jc, nc, bbuf.data());
            for (long ic = 0; ic < M; ic += kMC) {
                const long mc = std::min(kMC, M - ic);
                detail::pack_a(ta, A, lda, ic, mc, pc, kc, abuf.data());
                for (long jr = 0; jr < nc; jr += kNR)
                    for (long ir = 0; ir < mc; ir += kMR)
                        detail::micro_kernel(kp, abuf.data() + ir * kp, bbuf.data() + jr * kp,
                                             C + (ic + ir) * ldc + jc + jr, ldc, std::min(kMR, mc - ir),
                                             std::min(kNR, nc - jr), alpha, beta, pc == 0);
            }
        }
    }
}
#else
inline void gemm(bool, bool, long, long, long, float, const float*, long, const float*, long, float, float*, long) {
    // Unreachable: backend::Cpu::set_precision refuses Bf16 where this kernel is not compiled.
}
#endif

}  // namespace lcmae::backend::cpu::bf16
