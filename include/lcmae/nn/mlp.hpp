// lcmae/nn/mlp.hpp - the transformer MLP: fc1 D -> hidden, exact GELU, fc2 hidden -> D.
#pragma once

#include <string>

#include "lcmae/backend/ops.hpp"
#include "lcmae/nn/linear.hpp"

namespace lcmae::nn {

template <class T, class Backend = backend::Cpu>
struct Mlp {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    long dim = 0, hidden = 0;
    Linear<T, Backend> fc1, fc2;

    Mlp() = default;
    Mlp(ParamArena<T, Backend>& P, const std::string& prefix, long d, long hidden_dim) : dim(d), hidden(hidden_dim) {
        fc1 = Linear<T, Backend>(P, prefix + ".fc1", d, hidden_dim);
        fc2 = Linear<T, Backend>(P, prefix + ".fc2", hidden_dim, d);
    }
    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        fc1.init(P, seed);
        fc2.init(P, seed);
    }
    /// x (rows, D) -> y (rows, D); saves h_pre = fc1(x) and h = gelu(h_pre), (rows, hidden) each.
    void forward(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr x, Ptr h_pre, Ptr h, Ptr y,
                 long rows) const {
        // bias + GELU in one pass after a beta-0 GEMM where the backend has the fused op (CPU:
        // saves the bias_fill pass over h_pre); otherwise bias_fill + GEMM beta 1 + gelu_forward.
        // Same numbers whenever the GEMM sums K in one block (Eigen's kc >= K: fc1's K = D).
        if constexpr (requires { bias_gelu_forward(ctx, rows, hidden, P.value(fc1.b), h_pre, h); }) {
            if (fc1.has_bias) {
                fc1.forward_matmul(ctx, P, x, h_pre, rows);
                bias_gelu_forward(ctx, rows, hidden, P.value(fc1.b), h_pre, h);
                fc2.forward(ctx, P, h, y, rows);
                return;
            }
        }
        fc1.forward(ctx, P, x, h_pre, rows);
        gelu_forward(ctx, rows * hidden, h_pre, h);
        fc2.forward(ctx, P, h, y, rows);
    }
    /// dy -> dx written; scratch d_h (rows, hidden).
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, CPtr x, CPtr h_pre, CPtr h,
                  CPtr dy, Ptr dx, Ptr d_h, long rows) const {
        fc2.backward(ctx, P, h, dy, d_h, rows);
        gelu_backward(ctx, rows * hidden, h_pre, d_h, d_h);
        fc1.backward(ctx, P, x, d_h, dx, rows);
    }
    double flops_forward(long rows) const { return fc1.flops_forward(rows) + fc2.flops_forward(rows); }
};

}  // namespace lcmae::nn
