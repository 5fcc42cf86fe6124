// lcmae/nn/linear.hpp - y = x W^T + b with W stored (out, in) as in PyTorch.
//
// Contract (every nn layer follows it):
//   * plan in the constructor: parameters are added to the arena by name; nothing is allocated.
//   * forward writes its output; the caller keeps the input alive until backward.
//   * backward ACCUMULATES parameter gradients (+=) and writes dx (or adds it with accumulate_dx).
//   * sizes are checked against the plan and fail with lcmae::Error, never corrupt memory.
#pragma once

#include <string>

#include "lcmae/backend/ops.hpp"
#include "lcmae/core/arena.hpp"
#include "lcmae/nn/init.hpp"

namespace lcmae::nn {

template <class T, class Backend = backend::Cpu>
struct Linear {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    long in = 0, out = 0;
    bool has_bias = true;
    Slot w, b;
    std::string name;

    Linear() = default;
    /// `weight_shape` lets a conv-shaped weight (patch embedding (D, C, p, p)) keep its PyTorch
    /// shape in the table while acting as the (out, in) matrix it is in memory.
    Linear(ParamArena<T, Backend>& P, std::string prefix, long in_features, long out_features, bool bias = true,
           Shape weight_shape = {})
        : in(in_features), out(out_features), has_bias(bias), name(std::move(prefix)) {
        LCMAE_CHECK(in > 0 && out > 0, "Linear '" << name << "' needs positive sizes, got " << in << " -> " << out);
        if (weight_shape.rank() == 0) weight_shape = Shape{out, in};
        LCMAE_CHECK(weight_shape.numel() == in * out, "Linear '" << name << "': weight shape " << weight_shape
                                                                   << " does not hold " << out << " x " << in);
        w = P.add(name + ".weight", weight_shape);
        if (has_bias) b = P.add(name + ".bias", Shape{out});
    }

    /// SPEC 1: xavier-uniform weight, zero bias.
    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        init_xavier_uniform(P.value(w), out, in, init_rng(seed, name + ".weight"));
        if (has_bias) init_constant(P.value(b), out, T(0));
    }

    void forward(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr x, Ptr y, long rows) const {
        if (has_bias) {
            bias_fill(ctx, rows, out, P.value(b), y);
            gemm(ctx, false, true, rows, out, in, T(1), x, in, P.value(w), in, T(1), y, out);
        } else {
            gemm(ctx, false, true, rows, out, in, T(1), x, in, P.value(w), in, T(0), y, out);
        }
    }

    /// y = x W^T only, bias NOT added: for a caller that adds it in a fused pass after the GEMM
    /// (nn::Mlp's bias + GELU).
    void forward_matmul(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr x, Ptr y, long rows) const {
        gemm(ctx, false, true, rows, out, in, T(1), x, in, P.value(w), in, T(0), y, out);
    }

    /// dW += dy^T x; db += sum dy; dx = dy W (+= with accumulate_dx); dx may be null.
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, CPtr x, CPtr dy, Ptr dx, long rows,
                  bool accumulate_dx = false) const {
        gemm(ctx, true, false, out, in, rows, T(1), dy, out, x, in, T(1), P.grad(w), in);
        if (has_bias) bias_grad(ctx, rows, out, dy, P.grad(b));
        if (dx) gemm(ctx, false, false, rows, in, out, T(1), dy, out, P.value(w), in,
                          accumulate_dx ? T(1) : T(0), dx, in);
    }

    double flops_forward(long rows) const { return 2.0 * rows * in * out; }
};

}  // namespace lcmae::nn
