// backend::Cpu with Precision::Bf16: the AVX512-BF16 GEMM (cpu/gemm_bf16.hpp) against an FP32-accumulation
// reference built from bf16-rounded inputs, on sizes that are not multiples of the 8 x 32 tile, odd K,
// K across several K blocks, every transpose, padded leading dimensions, alpha/beta (beta 0 with NaN in
// C), the thread panel split and the batched form; exact on small integers. Skipped, with a message,
// on a CPU without AVX512-BF16 (there, set_precision must throw).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <initializer_list>
#include <random>
#include <vector>

#include "lcmae/backend/cpu/ops_cpu.hpp"

using namespace lcmae;
using backend::Precision;
namespace bf = backend::cpu::bf16;

namespace {

// Uniform [-1, 1) values into each vector in turn, from one generator (same draws as filling
// them one after another).
void fill_uniform(std::mt19937& g, std::initializer_list<std::vector<float>*> vs) {
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    for (auto* v : vs)
        for (auto& x : *v) x = d(g);
}

#define LCMAE_SKIP_WITHOUT_BF16()                                                                   \
    if (!backend::cpu_has_avx512_bf16()) {                                                          \
        MESSAGE("LCMAE_SKIP: this CPU has no AVX512-BF16; the bf16 GEMM is not tested here");      \
        return;                                                                                     \
    }

struct Problem {
    bool ta, tb;
    long M, N, K;
    float alpha, beta;
};

/// C_ref in double from bf16-rounded A and B (round = true) or from A and B as they are, and the
/// bound on FP32 accumulation: (K + 3) u (|alpha| sum_k |a b| + |beta c|), u = 2^-24 (recursive
/// summation's worst case, plus the alpha, beta and final add roundings).
void reference(const Problem& p, const std::vector<float>& A, long lda, const std::vector<float>& B, long ldb,
               const std::vector<float>& C0, long ldc, bool round, std::vector<double>& R, std::vector<double>& tol) {
    R.assign(C0.size(), 0.0);
    tol.assign(C0.size(), 0.0);
    const double u = std::ldexp(1.0, -24);
    for (long i = 0; i < p.M; ++i)
        for (long j = 0; j < p.N; ++j) {
            double s = 0, sa = 0;
            for (long k = 0; k < p.K; ++k) {
                double a = p.ta ? A[k * lda + i] : A[i * lda + k];
                double b = p.tb ? B[j * ldb + k] : B[k * ldb + j];
                if (round) { a = bf::round_bf16(float(a)); b = bf::round_bf16(float(b)); }
                s += a * b;
                sa += std::abs(a * b);
            }
            const double c = p.beta == 0.f ? 0.0 : double(p.beta) * C0[i * ldc + j];
            R[i * ldc + j] = p.alpha * s + c;
            tol[i * ldc + j] = double(p.K + 3) * u * (std::abs(p.alpha) * sa + std::abs(c)) + 1e-30;
        }
}

/// Runs one problem with random inputs (integers in [-4, 4] when exact), checks every element of C
/// (and that C's padding columns are untouched); returns the largest |C - R_unrounded| / tol, so a
/// caller can prove the bf16 path really rounded.
double run(backend::Cpu& ctx, const Problem& p, bool exact, unsigned seed) {
    CAPTURE(p.ta); CAPTURE(p.tb); CAPTURE(p.M); CAPTURE(p.N); CAPTURE(p.K); CAPTURE(p.alpha); CAPTURE(p.beta);
    const long lda = (p.ta ? p.M : p.K) + 3, ldb = (p.tb ? p.K : p.N) + 5, ldc = p.N + 7;
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    std::uniform_int_distribution<int> di(-4, 4);
    auto fill = [&](std::vector<float>& v) { for (auto& x : v) x = exact ? float(di(g)) : d(g); };
    std::vector<float> A((p.ta ? p.K : p.M) * lda), B((p.tb ? p.N : p.K) * ldb), C(p.M * ldc);
    fill(A); fill(B); fill(C);
    if (p.beta == 0.f)  // beta 0 ignores C's old contents, NaN included
        for (auto& x : C) x = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> C0 = C;
    ops::gemm(ctx, p.ta, p.tb, p.M, p.N, p.K, p.alpha, A.data(), lda, B.data(), ldb, p.beta, C.data(), ldc);
    std::vector<double> R, tol, Ru, tolu;
    reference(p, A, lda, B, ldb, C0, ldc, true, R, tol);
    reference(p, A, lda, B, ldb, C0, ldc, false, Ru, tolu);
    long bad = 0, pad = 0;
    double worst = 0, vs_unrounded = 0;
    for (long i = 0; i < p.M; ++i) {
        for (long j = 0; j < p.N; ++j) {
            const long e = i * ldc + j;
            const double err = std::abs(double(C[e]) - R[e]);
            if (exact ? C[e] != float(R[e]) : !(err <= tol[e])) ++bad;
            worst = std::max(worst, err / tol[e]);
            vs_unrounded = std::max(vs_unrounded, std::abs(double(C[e]) - Ru[e]) / tolu[e]);
        }
        for (long j = p.N; j < ldc; ++j) {  // padding keeps its old value (NaN compares unequal: bits)
            const long e = i * ldc + j;
            if (std::memcmp(&C[e], &C0[e], 4) != 0) ++pad;
        }
    }
    CHECK_MESSAGE(bad == 0, bad << " elements outside the bound (worst err / tol " << worst << ")");
    CHECK_MESSAGE(pad == 0, pad << " padding elements of C written");
    return vs_unrounded;
}

}  // namespace

TEST_CASE("cpu precision: Fp32 is the default, Tf32 is refused, Bf16 only where CPUID has AVX512-BF16") {
    backend::Cpu ctx(1);
    CHECK(ctx.precision() == Precision::Fp32);
    CHECK_THROWS_AS(ctx.set_precision(Precision::Tf32), Error);
    if (backend::cpu_has_avx512_bf16()) {
        CHECK_NOTHROW(ctx.set_precision(Precision::Bf16));
        CHECK(ctx.precision() == Precision::Bf16);
    } else {
        CHECK_THROWS_AS(ctx.set_precision(Precision::Bf16), Error);
        MESSAGE("LCMAE_SKIP: this CPU has no AVX512-BF16; set_precision(Bf16) throws as documented");
    }
}

TEST_CASE("gemm bf16: every transpose, odd sizes and strides, alpha/beta, within the FP32 accumulation bound") {
    LCMAE_SKIP_WITHOUT_BF16();
    backend::Cpu ctx(1, Precision::Bf16);
    const long sizes[][3] = {{1, 1, 1}, {17, 33, 65}, {8, 32, 2}, {9, 31, 3}, {70, 45, 29}, {3, 100, 1},
                             {97, 40, 800}, {65, 65, 64}};  // K 800: three K blocks of 384
    double rounded = 0;
    unsigned seed = 1;
    for (const auto& s : sizes)
        for (bool ta : {false, true})
            for (bool tb : {false, true})
                for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.5f, 1.f}, std::pair{-2.f, 0.25f}})
                    rounded = std::max(rounded, run(ctx, {ta, tb, s[0], s[1], s[2], alpha, beta}, false, seed++));
    // The same inputs without rounding are far outside the FP32 bound: the bf16 path did round.
    MESSAGE("largest error against the unrounded FP32 product, in units of the FP32 bound: " << rounded);
    CHECK(rounded > 100);
}

TEST_CASE("gemm bf16: exact on small integers (every transpose, beta 0 over NaN, beta 1)") {
    LCMAE_SKIP_WITHOUT_BF16();
    backend::Cpu ctx(1, Precision::Bf16);
    unsigned seed = 100;
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (float beta : {0.f, 1.f}) {
                run(ctx, {ta, tb, 37, 50, 131, 1.f, beta}, true, seed++);
                run(ctx, {ta, tb, 1, 1, 1, 1.f, beta}, true, seed++);
            }
}

TEST_CASE("gemm bf16: the thread panel split (both directions) gives the single-thread result bit for bit") {
    LCMAE_SKIP_WITHOUT_BF16();
    backend::Cpu one(1, Precision::Bf16), two(2, Precision::Bf16);
    for (auto [M, N] : {std::pair{300L, 90L}, std::pair{90L, 300L}}) {
        const long K = 97, ld = 400;  // 300 x 90 x 97 > kGemmSplitMin: split along the longer side
        CAPTURE(M); CAPTURE(N);
        std::mt19937 g(7);
        std::vector<float> A(M * ld), B(K * ld), C1(M * ld), C2;
        fill_uniform(g, {&A, &B, &C1});
        C2 = C1;
        ops::gemm(one, false, false, M, N, K, 0.75f, A.data(), ld, B.data(), ld, 0.5f, C1.data(), ld);
        ops::gemm(two, false, false, M, N, K, 0.75f, A.data(), ld, B.data(), ld, 0.5f, C2.data(), ld);
        long differ = 0;
        for (std::size_t e = 0; e < C1.size(); ++e) differ += std::memcmp(&C1[e], &C2[e], 4) != 0;
        CHECK_MESSAGE(differ == 0, differ << " elements differ between 1 and 2 threads");
        run(two, {true, true, M, N, K, 1.f, 0.f}, false, 11);
    }
}

TEST_CASE("gemm_batched bf16: each problem of the batch within the bound") {
    LCMAE_SKIP_WITHOUT_BF16();
    backend::Cpu ctx(2, Precision::Bf16);
    const long M = 19, N = 23, K = 17, batch = 5, lda = K + 1, ldb = K + 2, ldc = N + 3;
    const long sA = M * lda + 4, sB = N * ldb + 1, sC = M * ldc + 2;
    std::mt19937 g(3);
    std::vector<float> A(batch * sA), B(batch * sB), C(batch * sC), C0;
    fill_uniform(g, {&A, &B, &C});
    C0 = C;
    ops::gemm_batched(ctx, false, true, M, N, K, 1.5f, A.data(), lda, sA, B.data(), ldb, sB, -1.f, C.data(), ldc,
                      sC, batch);
    const double u = std::ldexp(1.0, -24);
    long bad = 0;
    for (long b = 0; b < batch; ++b)
        for (long i = 0; i < M; ++i)
            for (long j = 0; j < N; ++j) {
                double s = 0, sa = 0;
                for (long k = 0; k < K; ++k) {
                    const double p = double(bf::round_bf16(A[b * sA + i * lda + k])) *
                                     bf::round_bf16(B[b * sB + j * ldb + k]);
                    s += p;
                    sa += std::abs(p);
                }
                const long e = b * sC + i * ldc + j;
                const double r = 1.5 * s - C0[e], tol = (K + 3) * u * (1.5 * sa + std::abs(C0[e]));
                if (!(std::abs(C[e] - r) <= tol)) ++bad;
            }
    CHECK_MESSAGE(bad == 0, bad << " elements outside the bound");
}

TEST_CASE("bf16 rounding: nearest even, NaN stays NaN") {
    CHECK(bf::round_bf16(1.f) == 1.f);
    CHECK(bf::round_bf16(1.f + std::ldexp(1.f, -8)) == 1.f);                            // tie -> even (down)
    CHECK(bf::round_bf16(1.f + 3 * std::ldexp(1.f, -8)) == 1.f + std::ldexp(1.f, -6));  // tie -> even (up)
    CHECK(bf::round_bf16(1.f + std::ldexp(1.f, -8) + std::ldexp(1.f, -20)) == 1.f + std::ldexp(1.f, -7));
    CHECK(std::isnan(bf::round_bf16(std::numeric_limits<float>::quiet_NaN())));
}
