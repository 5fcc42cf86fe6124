// lcmae/nn/layernorm.hpp - LayerNorm over the last dim (eps 1e-6 as in timm's ViT).
#pragma once

#include <string>

#include "lcmae/backend/ops.hpp"
#include "lcmae/core/arena.hpp"
#include "lcmae/nn/init.hpp"

namespace lcmae::nn {

template <class T, class Backend = backend::Cpu>
struct LayerNorm {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    long dim = 0;
    T eps = T(1e-6);
    Slot g, b;
    std::string name;

    LayerNorm() = default;
    LayerNorm(ParamArena<T, Backend>& P, std::string prefix, long d, T epsilon = T(1e-6))
        : dim(d), eps(epsilon), name(std::move(prefix)) {
        LCMAE_CHECK(dim > 0, "LayerNorm '" << name << "' needs a positive width, got " << dim);
        g = P.add(name + ".weight", Shape{dim});
        b = P.add(name + ".bias", Shape{dim});
    }
    template <class HostParams>
    void init(HostParams& P, std::uint64_t) const {
        init_constant(P.value(g), dim, T(1));
        init_constant(P.value(b), dim, T(0));
    }
    /// y = LN(x); mean and rstd (rows values each) are saved for backward.
    void forward(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr x, Ptr y, Ptr mean, Ptr rstd,
                 long rows) const {
        layernorm_forward(ctx, rows, dim, x, P.value(g), P.value(b), eps, y, mean, rstd);
    }
    /// x += res, then y = LN(x), in one pass where the backend has add_layernorm_forward (a
    /// pre-norm block's residual add and the next norm); add_inplace + forward elsewhere.
    void forward_residual(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr res, Ptr x, Ptr y, Ptr mean,
                          Ptr rstd, long rows) const {
        if constexpr (requires { add_layernorm_forward(ctx, rows, dim, res, x, P.value(g), P.value(b), eps, y, mean, rstd); }) {
            add_layernorm_forward(ctx, rows, dim, res, x, P.value(g), P.value(b), eps, y, mean, rstd);
        } else {
            add_inplace(ctx, rows * dim, res, x);
            forward(ctx, P, CPtr(x), y, mean, rstd, rows);
        }
    }
    /// dx += LN'^T dy (accumulates: pre-norm blocks add onto the residual gradient in place).
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, CPtr x, CPtr mean, CPtr rstd,
                  CPtr dy, Ptr dx, long rows) const {
        layernorm_backward(ctx, rows, dim, x, mean, rstd, P.value(g), dy, dx, P.grad(g), P.grad(b));
    }
};

}  // namespace lcmae::nn
