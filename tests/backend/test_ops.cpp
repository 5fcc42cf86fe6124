// Op tests against straightforward loops: every GEMM transpose combination (float and double,
// alpha/beta, strided), softmax rows, LayerNorm statistics, exact GELU, BatchNorm, gather/scatter.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lcmae/backend/ops.hpp"
#include "support/gradcheck.hpp"

using namespace lcmae;

namespace {
backend::Cpu ctx(2);

// Every GEMM provider this program was built with (Eigen always; OpenBLAS with lcmae::openblas).
// The GEMM tests run once per provider on the shared context, then restore its default.
std::vector<backend::cpu::GemmProvider> gemm_providers() {
    std::vector<backend::cpu::GemmProvider> p{backend::cpu::GemmProvider::Eigen};
    if (backend::cpu::openblas_available) p.push_back(backend::cpu::GemmProvider::OpenBlas);
    return p;
}
struct RestoreProvider {
    backend::cpu::GemmProvider was = ctx.gemm_provider();
    ~RestoreProvider() { ctx.set_gemm_provider(was); }
};

template <class T>
void naive_gemm(bool ta, bool tb, long M, long N, long K, T alpha, const T* A, long lda, const T* B, long ldb,
                T beta, T* C, long ldc) {
    for (long i = 0; i < M; ++i)
        for (long j = 0; j < N; ++j) {
            double s = 0;
            for (long k = 0; k < K; ++k) {
                const double a = ta ? A[k * lda + i] : A[i * lda + k];
                const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            C[i * ldc + j] = T(alpha * s + (beta == T(0) ? 0.0 : beta * C[i * ldc + j]));
        }
}
}  // namespace

TEST_CASE_TEMPLATE("gemm: every transpose combination, strides, alpha and beta", T, float, double) {
    const long M = 13, N = 7, K = 9;
    RestoreProvider restore;
    for (auto provider : gemm_providers())
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (auto [alpha, beta] : {std::pair{1.0, 0.0}, std::pair{0.5, 1.0}, std::pair{-2.0, 0.25}}) {
                ctx.set_gemm_provider(provider);
                CAPTURE(backend::cpu::gemm_provider_name(provider));
                CAPTURE(ta); CAPTURE(tb); CAPTURE(alpha); CAPTURE(beta);
                const long lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
                // integer-valued inputs make float GEMM exact, so the comparison is equality
                std::vector<T> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc), R;
                Rng r(1, 2);
                for (auto& v : A) v = T(long(r.below(7)) - 3);
                for (auto& v : B) v = T(long(r.below(7)) - 3);
                for (auto& v : C) v = T(long(r.below(5)) - 2);
                R = C;
                ops::gemm(ctx, ta, tb, M, N, K, T(alpha), A.data(), lda, B.data(), ldb, T(beta), C.data(), ldc);
                naive_gemm(ta, tb, M, N, K, T(alpha), A.data(), lda, B.data(), ldb, T(beta), R.data(), ldc);
                for (long i = 0; i < M; ++i)
                    for (long j = 0; j < ldc; ++j) REQUIRE(C[i * ldc + j] == R[i * ldc + j]);  // padding untouched too
            }
}

TEST_CASE("gemm: beta 0 ignores NaN in C; batched gemm equals a loop") {
  RestoreProvider restore;
  for (auto provider : gemm_providers()) {
    ctx.set_gemm_provider(provider);
    CAPTURE(backend::cpu::gemm_provider_name(provider));
    std::vector<float> A(6, 1.f), B(6, 2.f), C(4, std::nanf(""));
    ops::gemm(ctx, false, false, 2, 2, 3, 1.f, A.data(), 3, B.data(), 2, 0.f, C.data(), 2);
    for (float v : C) CHECK(v == 6.f);
    const long batch = 5, M = 4, N = 3, K = 6;
    std::vector<double> a(batch * M * K), b(batch * K * N), c(batch * M * N), ref(batch * M * N);
    Rng r(3, 4);
    for (auto& v : a) v = r.uniform(-1, 1);
    for (auto& v : b) v = r.uniform(-1, 1);
    ops::gemm_batched(ctx, false, false, M, N, K, 1.0, a.data(), K, M * K, b.data(), N, K * N, 0.0, c.data(), N, M * N, batch);
    for (long i = 0; i < batch; ++i)
        naive_gemm(false, false, M, N, K, 1.0, a.data() + i * M * K, K, b.data() + i * K * N, N, 0.0, ref.data() + i * M * N, N);
    for (std::size_t i = 0; i < c.size(); ++i) CHECK(c[i] == doctest::Approx(ref[i]).epsilon(1e-12));
  }
}

TEST_CASE("gemm: every provider matches a double-precision loop on random floats, also through the panel split") {
    // Non-integer inputs: each provider sums in its own order, so the bound is float rounding of a
    // K-term dot product: |error| <= K * 2^-24 * sum |a||b| (checked per element, with 4x margin).
    RestoreProvider restore;
    const long M = 150, N = 140, K = 130;  // 2.7M multiply-adds: above kGemmSplitMin at 2 threads
    REQUIRE(double(M) * N * K >= double(ops::kGemmSplitMin));
    for (auto provider : gemm_providers())
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                ctx.set_gemm_provider(provider);
                CAPTURE(backend::cpu::gemm_provider_name(provider)); CAPTURE(ta); CAPTURE(tb);
                const long lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
                std::vector<float> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc, 0.5f);
                Rng r(7, 8);
                for (auto& v : A) v = float(r.uniform(-1, 1));
                for (auto& v : B) v = float(r.uniform(-1, 1));
                ops::gemm(ctx, ta, tb, M, N, K, 1.5f, A.data(), lda, B.data(), ldb, -1.0f, C.data(), ldc);
                double worst = 0;
                for (long i = 0; i < M; ++i)
                    for (long j = 0; j < N; ++j) {
                        double s = 0, mag = 0;
                        for (long k = 0; k < K; ++k) {
                            const double a = ta ? A[k * lda + i] : A[i * lda + k];
                            const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                            s += a * b;
                            mag += std::abs(a * b);
                        }
                        const double want = 1.5 * s - 0.5, bound = 4.0 * double(K) * 0x1p-24 * (1.5 * mag + 0.5);
                        worst = std::max(worst, std::abs(double(C[i * ldc + j]) - want) / bound);
                    }
                CHECK(worst <= 1.0);
                for (long i = 0; i < M; ++i)  // the padding columns of C are left alone
                    for (long j = N; j < ldc; ++j) REQUIRE(C[i * ldc + j] == 0.5f);
            }
}

TEST_CASE("gemm provider: asking for OpenBLAS in a build without it is an error naming the fix") {
    backend::Cpu local(1);
    CHECK(local.gemm_provider() == backend::cpu::initial_gemm_provider());
    if (backend::cpu::openblas_available) {
        local.set_gemm_provider(backend::cpu::GemmProvider::Eigen);
        CHECK(local.gemm_provider() == backend::cpu::GemmProvider::Eigen);
    } else {
        CHECK_THROWS_WITH_AS(local.set_gemm_provider(backend::cpu::GemmProvider::OpenBlas),
                             doctest::Contains("lcmae::openblas"), Error);
    }
}

TEST_CASE("softmax rows sum to 1 and match exp/sum") {
    auto x = test::random_vector(5 * 11, 7, 20.0);
    std::vector<double> y(x.size());
    ops::softmax_rows(ctx, 5, 11, x.data(), y.data());
    for (long r = 0; r < 5; ++r) {
        double s = 0, z = 0;
        for (long c = 0; c < 11; ++c) { s += y[r * 11 + c]; z += std::exp(x[r * 11 + c]); }
        CHECK(s == doctest::Approx(1.0).epsilon(1e-14));
        for (long c = 0; c < 11; ++c) CHECK(y[r * 11 + c] == doctest::Approx(std::exp(x[r * 11 + c]) / z).epsilon(1e-12));
    }
}

TEST_CASE("layernorm: output rows have mean beta and unit variance scaled by gamma; saved stats") {
    const long rows = 4, cols = 10;
    auto x = test::random_vector(rows * cols, 8, 3.0);
    std::vector<double> g(cols, 1.0), b(cols, 0.0), y(rows * cols), mean(rows), rstd(rows);
    ops::layernorm_forward(ctx, rows, cols, x.data(), g.data(), b.data(), 1e-6, y.data(), mean.data(), rstd.data());
    for (long r = 0; r < rows; ++r) {
        double m = 0, v = 0, ym = 0, yv = 0;
        for (long c = 0; c < cols; ++c) m += x[r * cols + c] / cols;
        for (long c = 0; c < cols; ++c) v += (x[r * cols + c] - m) * (x[r * cols + c] - m) / cols;
        for (long c = 0; c < cols; ++c) ym += y[r * cols + c] / cols;
        for (long c = 0; c < cols; ++c) yv += y[r * cols + c] * y[r * cols + c] / cols;
        CHECK(mean[r] == doctest::Approx(m).epsilon(1e-13));
        CHECK(rstd[r] == doctest::Approx(1 / std::sqrt(v + 1e-6)).epsilon(1e-13));
        CHECK(std::abs(ym) < 1e-12);
        CHECK(yv == doctest::Approx(v / (v + 1e-6)).epsilon(1e-12));
    }
}

TEST_CASE("gelu is the exact erf form, and its derivative matches differences") {
    for (double x : {-3.0, -1.0, -0.1, 0.0, 0.5, 2.0, 4.0}) {
        CHECK(ops::gelu(x) == doctest::Approx(0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))).epsilon(1e-15));
        const double h = 1e-6;
        CHECK(ops::gelu_grad(x) == doctest::Approx((ops::gelu(x + h) - ops::gelu(x - h)) / (2 * h)).epsilon(1e-8));
    }
    // the tanh approximation differs from the exact form by ~1e-4 at x = 1: make sure we are exact
    CHECK(std::abs(ops::gelu(1.0f) - 0.8413447f) < 1e-6f);
}

TEST_CASE("batchnorm: train statistics, running update with unbiased var, eval uses running stats") {
    const long rows = 8, cols = 3;
    auto x = test::random_vector(rows * cols, 9, 2.0);
    std::vector<double> y(rows * cols), mean(cols), rstd(cols), rm(cols, 0.0), rv(cols, 1.0);
    ops::batchnorm_forward_train(ctx, rows, cols, x.data(), (const double*)nullptr, (const double*)nullptr, 1e-5, 0.1,
                                 y.data(), mean.data(), rstd.data(), rm.data(), rv.data());
    for (long c = 0; c < cols; ++c) {
        double m = 0, v = 0;
        for (long r = 0; r < rows; ++r) m += x[r * cols + c] / rows;
        for (long r = 0; r < rows; ++r) v += (x[r * cols + c] - m) * (x[r * cols + c] - m);
        CHECK(rm[c] == doctest::Approx(0.1 * m).epsilon(1e-13));
        CHECK(rv[c] == doctest::Approx(0.9 + 0.1 * v / (rows - 1)).epsilon(1e-13));
        CHECK(y[c] == doctest::Approx((x[c] - m) / std::sqrt(v / rows + 1e-5)).epsilon(1e-12));
    }
    ops::batchnorm_forward_eval(ctx, rows, cols, x.data(), (const double*)nullptr, (const double*)nullptr, 1e-5,
                                rm.data(), rv.data(), y.data());
    CHECK(y[1] == doctest::Approx((x[1] - rm[1]) / std::sqrt(rv[1] + 1e-5)).epsilon(1e-12));
    std::vector<double> one(cols);
    CHECK_THROWS_AS(ops::batchnorm_forward_train(ctx, 1, cols, x.data(), (const double*)nullptr, (const double*)nullptr,
                                                 1e-5, 0.1, one.data(), mean.data(), rstd.data(), rm.data(), rv.data()),
                    lcmae::Error);
}

TEST_CASE("gather/scatter of tokens by index; out-of-range index is an Error") {
    const long B = 2, N = 5, K = 3, Dm = 4;
    auto src = test::random_vector(B * N * Dm, 10);
    std::vector<std::int64_t> idx = {4, 0, 2, 1, 1, 3};  // duplicates in sample 1 accumulate
    std::vector<double> dst(B * K * Dm), back(B * N * Dm, 0.0);
    ops::gather_rows(ctx, B, N, K, Dm, src.data(), idx.data(), dst.data());
    for (long b = 0; b < B; ++b)
        for (long k = 0; k < K; ++k)
            for (long c = 0; c < Dm; ++c) CHECK(dst[(b * K + k) * Dm + c] == src[(b * N + idx[b * K + k]) * Dm + c]);
    ops::scatter_rows_add(ctx, B, N, K, Dm, dst.data(), idx.data(), back.data());
    CHECK(back[(1 * N + 1) * Dm] == doctest::Approx(2 * src[(1 * N + 1) * Dm]));
    CHECK(back[(0 * N + 3) * Dm] == 0.0);
    idx[2] = 5;
    CHECK_THROWS_AS(ops::gather_rows(ctx, B, N, K, Dm, src.data(), idx.data(), dst.data()), lcmae::Error);
    idx[2] = -1;
    CHECK_THROWS_AS(ops::scatter_rows_add(ctx, B, N, K, Dm, dst.data(), idx.data(), back.data()), lcmae::Error);
}

TEST_CASE("attention forward equals a naive loop") {
    const long B = 2, N = 4, H = 2, hd = 3, Dm = H * hd;
    auto qkv = test::random_vector(B * N * 3 * Dm, 11);
    std::vector<double> P(B * H * N * N), out(B * N * Dm);
    ops::attention_forward(ctx, B, N, H, hd, qkv.data(), P.data(), out.data());
    for (long b = 0; b < B; ++b)
        for (long h = 0; h < H; ++h)
            for (long i = 0; i < N; ++i) {
                std::vector<double> s(N);
                double mx = -1e300, z = 0;
                for (long j = 0; j < N; ++j) {
                    double d = 0;
                    for (long c = 0; c < hd; ++c)
                        d += qkv[(b * N + i) * 3 * Dm + h * hd + c] * qkv[(b * N + j) * 3 * Dm + Dm + h * hd + c];
                    s[j] = d / std::sqrt(double(hd));
                    mx = std::max(mx, s[j]);
                }
                for (auto& v : s) { v = std::exp(v - mx); z += v; }
                for (long c = 0; c < hd; ++c) {
                    double o = 0;
                    for (long j = 0; j < N; ++j) o += s[j] / z * qkv[(b * N + j) * 3 * Dm + 2 * Dm + h * hd + c];
                    CHECK(out[(b * N + i) * Dm + h * hd + c] == doctest::Approx(o).epsilon(1e-12));
                }
            }
}

TEST_CASE("attention forward and backward through every GEMM provider: float matches the double path") {
    // The per-head products go through ops::gemm (the context's provider) with the qkv row stride
    // 3 D; the double path is checked against a naive loop above and by the layer gradient checks.
    RestoreProvider restore;
    const long B = 2, N = 17, H = 3, hd = 8, Dm = H * hd;
    const auto qkv_d = test::random_vector(B * N * 3 * Dm, 21), dout_d = test::random_vector(B * N * Dm, 22);
    std::vector<double> Pd(B * H * N * N), out_d(B * N * Dm), dqkv_d(B * N * 3 * Dm), sd(B * H * N * N);
    ctx.set_gemm_provider(backend::cpu::GemmProvider::Eigen);
    ops::attention_forward(ctx, B, N, H, hd, qkv_d.data(), Pd.data(), out_d.data());
    ops::attention_backward(ctx, B, N, H, hd, qkv_d.data(), Pd.data(), dout_d.data(), dqkv_d.data(), sd.data());
    const std::vector<float> qkv(qkv_d.begin(), qkv_d.end()), dout(dout_d.begin(), dout_d.end());
    // worst |float - double| over the largest |double| of the tensor
    auto rel = [](const std::vector<float>& f, const std::vector<double>& d) {
        double worst = 0, big = 0;
        for (std::size_t i = 0; i < d.size(); ++i) {
            worst = std::max(worst, std::abs(double(f[i]) - d[i]));
            big = std::max(big, std::abs(d[i]));
        }
        return worst / big;
    };
    for (auto provider : gemm_providers()) {
        ctx.set_gemm_provider(provider);
        CAPTURE(backend::cpu::gemm_provider_name(provider));
        std::vector<float> P(Pd.size()), out(out_d.size()), dqkv(dqkv_d.size(), 7.0f), s(sd.size());
        ops::attention_forward(ctx, B, N, H, hd, qkv.data(), P.data(), out.data());
        ops::attention_backward(ctx, B, N, H, hd, qkv.data(), P.data(), dout.data(), dqkv.data(), s.data());
        // float rounding of sums of at most N = 17 terms of size ~1: measured 1.3e-7 to 2.1e-7 for
        // both Eigen and OpenBLAS (P, out, dqkv), tested at 1e-6
        CHECK(rel(P, Pd) < 1e-6);
        CHECK(rel(out, out_d) < 1e-6);
        CHECK(rel(dqkv, dqkv_d) < 1e-6);  // every element written (the 7.0 fill is gone)
    }
}

TEST_CASE("gemm: large problems take the threaded panel split; every transpose combination still exact") {
    // 160 x 130 x 120 = 2.5M multiply-adds, above kGemmSplitMin, so with 2 threads C is cut into
    // panels (rows when M >= N, columns otherwise: both shapes are covered).
    REQUIRE(ctx.threads() >= 2);
    RestoreProvider restore;
    for (auto provider : gemm_providers())
    for (auto [M, N] : {std::pair{160L, 130L}, std::pair{130L, 160L}})
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                const long K = 120;
                REQUIRE(double(M) * N * K >= double(ops::kGemmSplitMin));
                ctx.set_gemm_provider(provider);
                CAPTURE(backend::cpu::gemm_provider_name(provider));
                CAPTURE(M); CAPTURE(ta); CAPTURE(tb);
                const long lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 3, ldc = N + 2;
                std::vector<float> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc), R;
                Rng r(5, 6);
                for (auto& v : A) v = float(long(r.below(5)) - 2);
                for (auto& v : B) v = float(long(r.below(5)) - 2);
                for (auto& v : C) v = float(long(r.below(3)) - 1);
                R = C;
                ops::gemm(ctx, ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.5f, C.data(), ldc);
                naive_gemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.5f, R.data(), ldc);
                bool same = true;
                for (long i = 0; i < M * ldc; ++i) same = same && C[i] == R[i];
                CHECK(same);
            }
}

TEST_CASE("float GELU (vectorised erf) stays within a few float ulps of the exact double form") {
    const long n = 2401;
    std::vector<float> x(n), y(n), dy(n, 1.0f), dx(n);
    for (long i = 0; i < n; ++i) x[i] = -12.0f + 0.01f * float(i);
    ops::gelu_forward(ctx, n, x.data(), y.data());
    ops::gelu_backward(ctx, n, x.data(), dy.data(), dx.data());
    double worst_y = 0, worst_dx = 0;
    for (long i = 0; i < n; ++i) {
        const double xd = x[i];
        worst_y = std::max(worst_y, std::abs(double(y[i]) - ops::gelu(xd)) / std::max(1.0, std::abs(xd)));
        worst_dx = std::max(worst_dx, std::abs(double(dx[i]) - ops::gelu_grad(xd)));
    }
    MESSAGE("float GELU: worst error " << worst_y << " (scaled by max(1,|x|)), derivative " << worst_dx);
    CHECK(worst_y <= 1e-6);
    CHECK(worst_dx <= 1e-6);
}
