// lcmae/nn/block.hpp - the pre-norm transformer block: x += Attn(LN1(x)); x += MLP(LN2(x)).
//
// A Block owns the activations it saves for backward (planned in an ActivationArena for the
// largest batch and token count); the backward scratch is shared by all blocks of one stack
// (BlockScratch), since blocks run backward one after another.
//
// Drop path (stochastic depth, fine-tuning): forward and backward optionally take `drop`, 2B
// per-sample scales in backend memory (drop[0:B] for the attention branch, drop[B:2B] for the MLP
// branch; 0 drops the branch of that sample, 1 / keep_prob keeps it), so
//   x1 = x + drop[b] Attn(LN1(x));  out = x1 + drop[B + b] MLP(LN2(x1)).
// Without `drop` (null, the default) the block runs exactly the ops it always ran.
#pragma once

#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/nn/attention.hpp"
#include "lcmae/nn/layernorm.hpp"
#include "lcmae/nn/mlp.hpp"

namespace lcmae::nn {

/// Width, heads and planned sizes shared by the blocks of one stack.
struct BlockPlan {
    long dim = 0, heads = 0, mlp_hidden = 0;
    long max_batch = 0, max_tokens = 0;
    long max_rows() const { return max_batch * max_tokens; }
    long max_probs() const { return max_batch * heads * max_tokens * max_tokens; }
};

/// Backward scratch shared by the blocks of one stack.
template <class T, class Backend = backend::Cpu>
struct BlockScratch {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    Slot d_ln, d_att, d_qkv, d_probs, d_h;
    void plan(ActivationArena<T, Backend>& A, const BlockPlan& p) {
        const long r = p.max_rows();
        d_ln = A.reserve(r * p.dim);
        d_att = A.reserve(r * p.dim);
        d_qkv = A.reserve(r * 3 * p.dim);
        d_probs = A.reserve(p.max_probs());
        d_h = A.reserve(r * p.mlp_hidden);
    }
};

template <class T, class Backend = backend::Cpu>
struct Block {
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    BlockPlan plan;
    LayerNorm<T, Backend> norm1, norm2;
    Attention<T, Backend> attn;
    Mlp<T, Backend> mlp;
    // saved activations (slots in the owner's activation arena)
    Slot ln1, mean1, rstd1, qkv, probs, att, x1, ln2, mean2, rstd2, h_pre, h, out;

    Block() = default;
    Block(ParamArena<T, Backend>& P, ActivationArena<T, Backend>& A, const std::string& prefix, const BlockPlan& p) : plan(p) {
        norm1 = LayerNorm<T, Backend>(P, prefix + ".norm1", p.dim);
        attn = Attention<T, Backend>(P, prefix + ".attn", p.dim, p.heads);
        norm2 = LayerNorm<T, Backend>(P, prefix + ".norm2", p.dim);
        mlp = Mlp<T, Backend>(P, prefix + ".mlp", p.dim, p.mlp_hidden);
        const long r = p.max_rows(), d = p.dim;
        ln1 = A.reserve(r * d); mean1 = A.reserve(r); rstd1 = A.reserve(r);
        qkv = A.reserve(r * 3 * d); probs = A.reserve(p.max_probs()); att = A.reserve(r * d);
        x1 = A.reserve(r * d);
        ln2 = A.reserve(r * d); mean2 = A.reserve(r); rstd2 = A.reserve(r);
        h_pre = A.reserve(r * p.mlp_hidden); h = A.reserve(r * p.mlp_hidden);
        out = A.reserve(r * d);
    }
    /// Parameters only: the activations are assigned later with share_activations() (a
    /// forward-only stack lets all its blocks reuse one set of buffers).
    Block(ParamArena<T, Backend>& P, const std::string& prefix, const BlockPlan& p) : plan(p) {
        norm1 = LayerNorm<T, Backend>(P, prefix + ".norm1", p.dim);
        attn = Attention<T, Backend>(P, prefix + ".attn", p.dim, p.heads);
        norm2 = LayerNorm<T, Backend>(P, prefix + ".norm2", p.dim);
        mlp = Mlp<T, Backend>(P, prefix + ".mlp", p.dim, p.mlp_hidden);
    }
    /// Uses `other`'s activation slots (same plan) and writes its output to `output`. Valid only
    /// when no backward will run: the saved activations are overwritten by the next block.
    void share_activations(const Block& other, Slot output) {
        ln1 = other.ln1; mean1 = other.mean1; rstd1 = other.rstd1; qkv = other.qkv; probs = other.probs;
        att = other.att; x1 = other.x1; ln2 = other.ln2; mean2 = other.mean2; rstd2 = other.rstd2;
        h_pre = other.h_pre; h = other.h;
        out = output;
    }
    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        norm1.init(P, seed); attn.init(P, seed); norm2.init(P, seed); mlp.init(P, seed);
    }

    void check_size(long B, long N) const {
        LCMAE_CHECK(B >= 1 && N >= 1, "a block needs a positive batch and token count, got B " << B << " N " << N);
        LCMAE_CHECK(B <= plan.max_batch, "batch " << B << " exceeds the planned maximum " << plan.max_batch);
        LCMAE_CHECK(N <= plan.max_tokens, N << " tokens exceed the planned maximum " << plan.max_tokens);
    }

    /// x (B, N, D) -> A.at(out) (B, N, D). x must stay valid until backward.
    /// drop: null, or 2B drop-path scales (see the header).
    void forward(const Backend& ctx, const ParamArena<T, Backend>& P, ActivationArena<T, Backend>& A, CPtr x,
                 long B, long N, CPtr drop = CPtr(nullptr)) const {
        check_size(B, N);
        const long rows = B * N, d = plan.dim;
        norm1.forward(ctx, P, x, A.at(ln1), A.at(mean1), A.at(rstd1), rows);
        attn.forward(ctx, P, A.at(ln1), B, N, A.at(qkv), A.at(probs), A.at(att), A.at(x1));
        if (drop) scale_rows(ctx, B, N * d, drop, A.at(x1));
        norm2.forward_residual(ctx, P, x, A.at(x1), A.at(ln2), A.at(mean2), A.at(rstd2), rows);  // x1 += x
        mlp.forward(ctx, P, A.at(ln2), A.at(h_pre), A.at(h), A.at(out), rows);
        if (drop) scale_rows(ctx, B, N * d, drop + B, A.at(out));
        add_inplace(ctx, rows * d, A.at(x1), A.at(out));
    }

    /// In place: `d` holds dL/d(out) on entry and dL/dx on exit. Parameter grads accumulate.
    /// drop: the scales the forward used (null: none).
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, ActivationArena<T, Backend>& A, CPtr x, long B, long N,
                  Ptr d, const BlockScratch<T, Backend>& s, CPtr drop = CPtr(nullptr)) const {
        check_size(B, N);
        const long rows = B * N, dm = plan.dim;
        Ptr d_ln = A.at(s.d_ln);
        CPtr dy = d;  // the gradient of a residual branch's output: d, or d times the sample's scale
        if (drop) {   // d_att is free until the attention backward
            copy(ctx, rows * dm, CPtr(d), A.at(s.d_att));
            scale_rows(ctx, B, N * dm, drop + B, A.at(s.d_att));
            dy = A.at(s.d_att);
        }
        mlp.backward(ctx, P, A.at(ln2), A.at(h_pre), A.at(h), dy, d_ln, A.at(s.d_h), rows);
        norm2.backward(ctx, P, A.at(x1), A.at(mean2), A.at(rstd2), d_ln, d, rows);  // d += ...
        dy = d;
        if (drop) {  // d_ln is read by the attention's first op (proj) before its last op writes it
            copy(ctx, rows * dm, CPtr(d), d_ln);
            scale_rows(ctx, B, N * dm, drop, d_ln);
            dy = d_ln;
        }
        attn.backward(ctx, P, A.at(ln1), B, N, A.at(qkv), A.at(probs), A.at(att), dy, d_ln, A.at(s.d_att),
                      A.at(s.d_qkv), A.at(s.d_probs));
        norm1.backward(ctx, P, x, A.at(mean1), A.at(rstd1), d_ln, d, rows);  // d += ...
    }

    double flops_forward(long B, long N) const {
        return attn.flops_forward(B, N) + mlp.flops_forward(B * N);
    }
};

/// Plans a FORWARD-ONLY stack of `depth` blocks named prefix + "." + i (an EMA target's copy, which
/// never runs backward): block 0 owns one set of activation buffers in A and every later block
/// shares them (share_activations), the outputs ping-ponging between block 0's `out` and one more
/// buffer, so block i reads block i-1's output while writing the other. About depth times less
/// memory than a trainable stack. Only the last block's saved activations (its attention
/// probabilities, say) survive a forward.
template <class T, class Backend>
void plan_forward_only_stack(ParamArena<T, Backend>& P, ActivationArena<T, Backend>& A, const std::string& prefix,
                             long depth, const BlockPlan& bp, std::vector<Block<T, Backend>>& blocks) {
    Slot outs[2];
    for (long i = 0; i < depth; ++i) {
        if (i == 0) {
            blocks.emplace_back(P, A, prefix + ".0", bp);
            outs[0] = blocks[0].out;
            outs[1] = A.reserve(bp.max_rows() * bp.dim);
        } else {
            blocks.emplace_back(P, prefix + "." + std::to_string(i), bp);
            blocks.back().share_activations(blocks[0], outs[i % 2]);
        }
    }
}

}  // namespace lcmae::nn
