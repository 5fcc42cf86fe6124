// nn::Mlp's fused fc1 epilogue (GEMM beta 0, then bias_gelu_forward) against the unfused path it
// replaced (bias_fill, GEMM beta 1, gelu_forward), on the Tiny preset's MLP shape (D 192 -> 768).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lcmae/nn/mlp.hpp"
#include "support/gradcheck.hpp"

using namespace lcmae;

TEST_CASE_TEMPLATE("Mlp forward with the fused bias + GELU matches the unfused composition", T, float, double) {
    backend::Cpu ctx(2);
    const long rows = 260, Dm = 192, Hd = 768;
    ParamArena<T> P;
    nn::Mlp<T> mlp(P, "mlp", Dm, Hd);
    P.allocate();
    {
        const auto v = test::random_vector(long(P.values().size()), 3, 0.2);
        std::copy(v.begin(), v.end(), P.values().begin());
    }
    const auto xd = test::random_vector(rows * Dm, 4);
    const std::vector<T> x(xd.begin(), xd.end());
    std::vector<T> h_pre(rows * Hd), h(rows * Hd), y(rows * Dm);
    mlp.forward(ctx, P, x.data(), h_pre.data(), h.data(), y.data(), rows);
    // the unfused path, spelled out
    std::vector<T> h_pre_ref(rows * Hd), h_ref(rows * Hd), y_ref(rows * Dm);
    mlp.fc1.forward(ctx, P, x.data(), h_pre_ref.data(), rows);
    ops::gelu_forward(ctx, rows * Hd, h_pre_ref.data(), h_ref.data());
    mlp.fc2.forward(ctx, P, h_ref.data(), y_ref.data(), rows);
    double worst_pre = 0, worst_y = 0, max_pre = 0;
    for (long i = 0; i < rows * Hd; ++i) {
        worst_pre = std::max(worst_pre, std::abs(double(h_pre[i]) - double(h_pre_ref[i])));
        max_pre = std::max(max_pre, std::abs(double(h_pre_ref[i])));
    }
    for (long i = 0; i < rows * Dm; ++i) worst_y = std::max(worst_y, std::abs(double(y[i]) - double(y_ref[i])));
    MESSAGE("fused vs unfused Mlp: worst |d h_pre| " << worst_pre << " (max |h_pre| " << max_pre
                                                        << "), worst |d y| " << worst_y);
    CHECK(worst_pre == 0);
    CHECK(worst_y == 0);
}
