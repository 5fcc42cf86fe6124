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

