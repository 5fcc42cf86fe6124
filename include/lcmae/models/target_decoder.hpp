// lcmae/models/target_decoder.hpp - the EMA target's copy of MAE's decoder trunk, for guided tokens
// "visible + mask" (Table 5e, SPEC 3 "Guided tokens"): decoder_embed, the decoder blocks and
// decoder_norm, run forward-only on ALL of the target's tokens (the target is not masked, so its
// sequence has no mask tokens) with the decoder's fixed sin-cos pos-embed. There is no
// decoder_pred: the guidance pools the decoded tokens before it.
//
// Names are the online decoder's (decoder_embed.*, decoder_blocks.i.*, decoder_norm.*), so the
// initial copy and the EMA update (optim/ema.hpp) match them by name, and a checkpoint stores them
// under "target." with the rest of the target. The blocks share one set of activation buffers
// (nn::plan_forward_only_stack, as the forward-only target encoder).
#pragma once

#include <cstdint>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/models/mae_decoder.hpp"
#include "lcmae/nn/block.hpp"
#include "lcmae/nn/layernorm.hpp"
#include "lcmae/nn/linear.hpp"
#include "lcmae/nn/pos_embed.hpp"
#include "lcmae/vit/config.hpp"

namespace lcmae::models {

template <class T, class Backend = backend::Cpu>
class TargetDecoder {
public:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;

    /// Plans the parameters in Pt (the target arena) for encoder width enc.dim and decoder dd, and
    /// the activations for batches up to max_batch of 1 + L tokens.
    TargetDecoder(ParamArena<T, Backend>& Pt, const vit::VitDims& enc, const DecoderDims& dd, long max_batch)
        : enc_(enc), dd_(dd), max_batch_(max_batch) {
        const long N = 1 + enc.tokens();
        embed_ = nn::Linear<T, Backend>(Pt, "decoder_embed", enc.dim, dd.dim);
        const nn::BlockPlan bp{dd.dim, dd.heads, 4 * dd.dim, max_batch, N};
        nn::plan_forward_only_stack(Pt, A_, "decoder_blocks", dd.depth, bp, blocks_);
        norm_ = nn::LayerNorm<T, Backend>(Pt, "decoder_norm", dd.dim);
        x0_ = A_.reserve(max_batch * N * dd.dim);
        out_ = A_.reserve(max_batch * N * dd.dim);
        mean_ = A_.reserve(max_batch * N);
        rstd_ = A_.reserve(max_batch * N);
        pos_slot_ = A_.reserve(N * dd.dim);
        A_.allocate();
        pos_ = nn::sincos_pos_embed_2d<T>(dd.dim, enc.grid());  // host copy; uploaded by the first forward
    }
    TargetDecoder(const TargetDecoder&) = delete;
    TargetDecoder& operator=(const TargetDecoder&) = delete;

    /// tlat (B, 1 + L, D): the target encoder's output on all L tokens in order (cls first).
    /// Returns the decoded tokens (B, 1 + L, Dd) after decoder_norm, valid until the next forward.
    CPtr forward(const Backend& ctx, const ParamArena<T, Backend>& Pt, CPtr tlat, long B) {
        LCMAE_CHECK(B >= 1 && B <= max_batch_, "target decoder batch " << B << " is outside [1, " << max_batch_ << "]");
        const long N = 1 + enc_.tokens(), Dd = dd_.dim;
        if (!pos_uploaded_) {
            upload(ctx, long(pos_.size()), pos_.data(), A_.at(pos_slot_));
            pos_uploaded_ = true;
        }
        const Ptr x0 = A_.at(x0_);
        embed_.forward(ctx, Pt, tlat, x0, B * N);
        // + pos-embed: every sample is one row of N * Dd values, the table the broadcast vector
        scale_add_broadcast(ctx, B, N * Dd, T(1), x0, T(1), CPtr(A_.at(pos_slot_)));
        CPtr x = x0;
        for (const auto& blk : blocks_) {
            blk.forward(ctx, Pt, A_, x, B, N);
            x = A_.at(blk.out);
        }
        norm_.forward(ctx, Pt, x, A_.at(out_), A_.at(mean_), A_.at(rstd_), B * N);
        return A_.at(out_);
    }

    double flops_forward(long B) const {
        const long N = 1 + enc_.tokens();
        double f = embed_.flops_forward(B * N);
        for (const auto& b : blocks_) f += b.flops_forward(B, N);
        return f;
    }
    ActivationArena<T, Backend>& activations() noexcept { return A_; }
    const ActivationArena<T, Backend>& activations() const noexcept { return A_; }

private:
    vit::VitDims enc_;
    DecoderDims dd_;
    long max_batch_;
    nn::Linear<T, Backend> embed_;
    std::vector<nn::Block<T, Backend>> blocks_;
    nn::LayerNorm<T, Backend> norm_;
    ActivationArena<T, Backend> A_;
    Slot x0_, out_, mean_, rstd_, pos_slot_;
    std::vector<T> pos_;  // host copy of the fixed table
    bool pos_uploaded_ = false;
};

}  // namespace lcmae::models
