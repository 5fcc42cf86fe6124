// Fused element-wise ops (issue 13, item 2) against the unfused composition they replace.
#include <doctest/doctest.h>

#include <vector>

#include "lcmae/backend/ops.hpp"
#include "support/gradcheck.hpp"

using namespace lcmae;

namespace {
backend::Cpu ctx(2);
}

// bias_gelu_forward does per element exactly what bias_fill + add + gelu_forward do (one add, then
// the same gelu()), so the results must be equal bit for bit, serial and parallel sizes alike.
TEST_CASE_TEMPLATE("bias_gelu_forward equals bias add then gelu_forward, bit for bit", T, float, double) {
    for (const auto& [rows, cols] : {std::pair{3L, 5L}, std::pair{130L, 300L}}) {
        const auto xd = test::random_vector(rows * cols, 7, 3.0), bd = test::random_vector(cols, 8);
        const std::vector<T> x(xd.begin(), xd.end()), bias(bd.begin(), bd.end());
        // unfused: b = bias broadcast, pre = x + b, y = gelu(pre)
        std::vector<T> b(rows * cols), pre_ref(rows * cols), y_ref(rows * cols);
        ops::bias_fill(ctx, rows, cols, bias.data(), b.data());
        ops::add(ctx, rows * cols, x.data(), b.data(), pre_ref.data());
        ops::gelu_forward(ctx, rows * cols, pre_ref.data(), y_ref.data());
        // fused, in place on x
        std::vector<T> pre = x, y(rows * cols, T(-99));
        ops::bias_gelu_forward(ctx, rows, cols, bias.data(), pre.data(), y.data());
        bool same_pre = true, same_y = true;
        for (long i = 0; i < rows * cols; ++i) {
            same_pre = same_pre && pre[i] == pre_ref[i];
            same_y = same_y && y[i] == y_ref[i];
        }
        CHECK(same_pre);
        CHECK(same_y);
    }
}

// add_layernorm_forward runs add_inplace's add and layernorm_forward's row code (one shared
// function), so x, y, mean and rstd must equal the two-pass results bit for bit.
TEST_CASE_TEMPLATE("add_layernorm_forward equals add_inplace then layernorm_forward, bit for bit", T, float, double) {
    for (const auto& [rows, cols] : {std::pair{3L, 5L}, std::pair{260L, 192L}}) {
        const auto xd = test::random_vector(rows * cols, 11, 2.0), rd = test::random_vector(rows * cols, 12);
        const auto gd = test::random_vector(cols, 13), bd = test::random_vector(cols, 14);
        const std::vector<T> x0(xd.begin(), xd.end()), res(rd.begin(), rd.end()), gamma(gd.begin(), gd.end()),
            beta(bd.begin(), bd.end());
        const T eps = T(1e-6);
        std::vector<T> x_ref = x0, y_ref(rows * cols), m_ref(rows), s_ref(rows);
        ops::add_inplace(ctx, rows * cols, res.data(), x_ref.data());
        ops::layernorm_forward(ctx, rows, cols, x_ref.data(), gamma.data(), beta.data(), eps, y_ref.data(),
                               m_ref.data(), s_ref.data());
        std::vector<T> x = x0, y(rows * cols, T(-99)), m(rows, T(-99)), s(rows, T(-99));
        ops::add_layernorm_forward(ctx, rows, cols, res.data(), x.data(), gamma.data(), beta.data(), eps, y.data(),
                                   m.data(), s.data());
        CHECK(x == x_ref);
        CHECK(y == y_ref);
        CHECK(m == m_ref);
        CHECK(s == s_ref);
    }
}
