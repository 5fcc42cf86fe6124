// lcmae/nn/attention.hpp - multi-head self-attention as in timm: one qkv Linear D -> 3D (q, k, v
// consecutive D-blocks, each split into contiguous heads), scale head_dim^-0.5, softmax over keys,
// proj Linear D -> D. Buffers are the caller's (a Block keeps them in its activation arena).
#pragma once

#include <string>

#include "lcmae/backend/ops.hpp"
#include "lcmae/nn/linear.hpp"

namespace lcmae::nn {

template <class T, class Backend = backend::Cpu>
struct Attention {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    long dim = 0, heads = 0, head_dim = 0;
    Linear<T, Backend> qkv, proj;

    Attention() = default;
    Attention(ParamArena<T, Backend>& P, const std::string& prefix, long d, long h)
        : dim(d), heads(h), head_dim(h > 0 ? d / h : 0) {
        LCMAE_CHECK(h > 0 && d % h == 0, "Attention '" << prefix << "': width " << d
                                                       << " is not divisible by " << h << " heads");
        qkv = Linear<T, Backend>(P, prefix + ".qkv", d, 3 * d);
        proj = Linear<T, Backend>(P, prefix + ".proj", d, d);
    }
    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        qkv.init(P, seed);
        proj.init(P, seed);
    }

    /// x (B*N, D) -> y (B*N, D). Saves qkv_buf (B*N, 3D), probs (B, H, N, N), att (B*N, D).
    void forward(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr x, long B, long N, Ptr qkv_buf,
                 Ptr probs, Ptr att, Ptr y) const {
        qkv.forward(ctx, P, x, qkv_buf, B * N);
        attention_forward(ctx, B, N, heads, head_dim, qkv_buf, probs, att);
        proj.forward(ctx, P, att, y, B * N);
    }

    /// dy (B*N, D) -> dx (B*N, D) written. Scratch: d_att (B*N, D), d_qkv (B*N, 3D), d_probs like probs.
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, CPtr x, long B, long N, CPtr qkv_buf,
                  CPtr probs, CPtr att, CPtr dy, Ptr dx, Ptr d_att, Ptr d_qkv, Ptr d_probs) const {
        proj.backward(ctx, P, att, dy, d_att, B * N);
        attention_backward(ctx, B, N, heads, head_dim, qkv_buf, probs, d_att, d_qkv, d_probs);
        qkv.backward(ctx, P, x, d_qkv, dx, B * N);
    }

    double flops_forward(long B, long N) const {
        return qkv.flops_forward(B * N) + proj.flops_forward(B * N) + 4.0 * B * N * N * dim;
    }
};

}  // namespace lcmae::nn
