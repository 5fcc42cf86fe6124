// lcmae/models/mae_decoder.hpp - MAE's decoder (SPEC 2): decoder_embed D -> Dd on the encoder
// output (cls included), mask_token at removed positions, un-shuffle to token order, fixed
// decoder pos-embed, blocks, decoder_norm, decoder_pred Dd -> p*p*C; the cls row is dropped.
//
// Un-shuffling is done with the keep lists directly: position n takes the encoder token that kept
// it, or the mask token. This is exactly MAE's gather with ids_restore.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lcmae/nn/block.hpp"
#include "lcmae/nn/pos_embed.hpp"
#include "lcmae/vit/config.hpp"

namespace lcmae::models {

/// Decoder width, depth, heads (SPEC 2 default 512 / 8 / 16; a CPU preset 128 / 4 / 4).
struct DecoderDims {
    long dim = 512, depth = 8, heads = 16;
};

template <class T, class Backend = backend::Cpu>
class MaeDecoder {
public:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    using Ids = dptr<Backend, const std::int64_t>;

    MaeDecoder(ParamArena<T, Backend>& P, const vit::VitDims& enc, const DecoderDims& dd, long max_batch, long max_keep)
        : enc_(enc), dd_(dd), max_batch_(max_batch), max_keep_(max_keep) {
        LCMAE_CHECK(dd.heads > 0 && dd.dim % dd.heads == 0,
                    "decoder width " << dd.dim << " is not divisible by " << dd.heads << " heads");
        LCMAE_CHECK(dd.dim % 4 == 0, "decoder width " << dd.dim << " must be a multiple of 4 (sin-cos pos-embed)");
        const long L = enc.tokens(), N = 1 + L;
        embed_ = nn::Linear<T, Backend>(P, "decoder_embed", enc.dim, dd.dim);
        mask_token_ = P.add("mask_token", Shape{1, 1, dd.dim});
        const nn::BlockPlan bp{dd.dim, dd.heads, 4 * dd.dim, max_batch, N};
        for (long i = 0; i < dd.depth; ++i) blocks_.emplace_back(P, A_, "decoder_blocks." + std::to_string(i), bp);
        norm_ = nn::LayerNorm<T, Backend>(P, "decoder_norm", dd.dim);
        pred_ = nn::Linear<T, Backend>(P, "decoder_pred", dd.dim, enc.patch_dim());
        scratch_.plan(A_, bp);
        emb_ = A_.reserve(max_batch * (1 + max_keep) * dd.dim);
        x0_ = A_.reserve(max_batch * N * dd.dim);
        normed_ = A_.reserve(max_batch * N * dd.dim);
        mean_ = A_.reserve(max_batch * N);
        rstd_ = A_.reserve(max_batch * N);
        out_ = A_.reserve(max_batch * N * enc.patch_dim());
        pred_rows_ = A_.reserve(max_batch * L * enc.patch_dim());
        dout_ = A_.reserve(max_batch * N * enc.patch_dim());
        dx_ = A_.reserve(max_batch * N * dd.dim);
        demb_ = A_.reserve(max_batch * (1 + max_keep) * dd.dim);
        pos_slot_ = A_.reserve(N * dd.dim);
        A_.allocate();
        slot_of_.resize(static_cast<std::size_t>(max_batch * L));
        pos_ = nn::sincos_pos_embed_2d<T>(dd.dim, enc.grid());  // host copy; uploaded by the first forward
    }
    MaeDecoder(const MaeDecoder&) = delete;
    MaeDecoder& operator=(const MaeDecoder&) = delete;

    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        embed_.init(P, seed);
        nn::init_normal(P.value(mask_token_), dd_.dim, 0.02, nn::init_rng(seed, "mask_token"));
        for (const auto& b : blocks_) b.init(P, seed);
        norm_.init(P, seed);
        pred_.init(P, seed);
    }

    /// latent (B, 1 + K, D) from the encoder run with keep (B, K) (int64, backend memory).
    /// Returns pred (B, L, p*p*C). latent must stay valid until backward.
    CPtr forward(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr latent, long B, Ids keep, long K) {
        LCMAE_CHECK(B >= 1 && B <= max_batch_, "decoder batch " << B << " is outside [1, " << max_batch_ << "]");
        LCMAE_CHECK(K >= 1 && K <= max_keep_, "decoder got " << K << " kept tokens; planned [1, " << max_keep_ << "]");
        const long L = enc_.tokens(), N = 1 + L, Dd = dd_.dim;
        B_ = B; K_ = K; latent_ = latent;
        if (!pos_uploaded_) {
            upload(ctx, long(pos_.size()), pos_.data(), A_.at(pos_slot_));
            pos_uploaded_ = true;
        }
        keep_to_slots(ctx, B, L, K, keep, slot_of_.data());
        Ptr emb = A_.at(emb_);
        embed_.forward(ctx, P, latent, emb, B * (1 + K));
        decoder_assemble(ctx, B, L, K, Dd, CPtr(emb), slots(), P.value(mask_token_), CPtr(A_.at(pos_slot_)), A_.at(x0_));
        CPtr x = A_.at(x0_);
        for (const auto& blk : blocks_) {
            blk.forward(ctx, P, A_, x, B, N);
            x = A_.at(blk.out);
        }
        norm_.forward(ctx, P, x, A_.at(normed_), A_.at(mean_), A_.at(rstd_), B * N);
        pred_.forward(ctx, P, A_.at(normed_), A_.at(out_), B * N);
        const long Pd = enc_.patch_dim();
        Ptr rows = A_.at(pred_rows_);
        copy_rows(ctx, B, L * Pd, CPtr(A_.at(out_) + Pd), N * Pd, rows, L * Pd);  // drop the cls row
        return rows;
    }

    /// d_pred (B, L, p*p*C) -> d_latent (B, 1 + K, D), written. Parameter gradients accumulate.
    /// d_decoded (B, 1 + L, Dd), or null: a gradient on the decoded tokens (decoded()) from
    /// elsewhere - the guidance of Table 5e - added to the one decoder_pred sends back.
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, CPtr d_pred, Ptr d_latent,
                  CPtr d_decoded = CPtr(nullptr)) {
        LCMAE_CHECK(B_ > 0, "decoder backward called before forward");
        const long B = B_, K = K_, L = enc_.tokens(), N = 1 + L, Dd = dd_.dim, Pd = enc_.patch_dim();
        Ptr dout = A_.at(dout_);
        fill(ctx, B * N * Pd, T(0), dout);  // the dropped cls rows get no gradient
        copy_rows(ctx, B, L * Pd, d_pred, L * Pd, dout + Pd, N * Pd);
        Ptr dx = A_.at(dx_);
        fill(ctx, B * N * Dd, T(0), dx);
        Ptr dnormed = A_.at(scratch_.d_ln);  // free until the blocks run backward
        pred_.backward(ctx, P, A_.at(normed_), dout, dnormed, B * N);
        if (d_decoded) add_inplace(ctx, B * N * Dd, d_decoded, dnormed);
        CPtr last = blocks_.empty() ? A_.at(x0_) : A_.at(blocks_.back().out);
        norm_.backward(ctx, P, last, A_.at(mean_), A_.at(rstd_), dnormed, dx, B * N);
        for (long i = static_cast<long>(blocks_.size()) - 1; i >= 0; --i) {
            CPtr x_in = i == 0 ? A_.at(x0_) : A_.at(blocks_[i - 1].out);
            blocks_[i].backward(ctx, P, A_, x_in, B, N, dx, scratch_);
        }
        Ptr demb = A_.at(demb_);
        decoder_assemble_backward(ctx, B, L, K, Dd, CPtr(dx), slots(), demb, P.grad(mask_token_));
        embed_.backward(ctx, P, latent_, demb, d_latent, B * (1 + K));
    }

    double flops_forward(long B, long K) const {
        const long N = 1 + enc_.tokens();
        double f = embed_.flops_forward(B * (1 + K)) + pred_.flops_forward(B * N);
        for (const auto& b : blocks_) f += b.flops_forward(B, N);
        return f;
    }
    double flops_backward(long B, long K) const { return 2.0 * flops_forward(B, K); }
    const std::vector<T>& pos_embed() const noexcept { return pos_; }
    /// The decoded tokens of the last forward: (B, 1 + L, Dd) after decoder_norm, before
    /// decoder_pred, cls row first, positions in token order (Table 5e pools them).
    CPtr decoded() { return A_.at(normed_); }
    /// The decoder's own activation arena (saved activations of its blocks and its scratch).
    const ActivationArena<T, Backend>& activations() const noexcept { return A_; }

private:
    vit::VitDims enc_;
    DecoderDims dd_;
    long max_batch_, max_keep_;
    nn::Linear<T, Backend> embed_, pred_;
    Slot mask_token_;
    std::vector<nn::Block<T, Backend>> blocks_;
    nn::LayerNorm<T, Backend> norm_;
    ActivationArena<T, Backend> A_;
    nn::BlockScratch<T, Backend> scratch_;
    Slot emb_, x0_, normed_, mean_, rstd_, out_, pred_rows_, dout_, dx_, demb_, pos_slot_;
    std::vector<T> pos_;  // host copy of the fixed table
    bool pos_uploaded_ = false;
    dbuffer<Backend, std::int64_t> slot_of_;  // (B, L): which kept token fills each position, -1 = mask token
    Ids slots() const { return Ids(slot_of_.data()); }
    CPtr latent_ = nullptr;
    long B_ = 0, K_ = 0;
};

}  // namespace lcmae::models
