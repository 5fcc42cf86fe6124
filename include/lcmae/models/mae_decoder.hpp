// lcmae/models/mae_decoder.hpp - MAE's decoder (SPEC 2): decoder_embed D -> Dd on the encoder
// output (cls included), mask_token at removed positions, un-shuffle to token order, fixed
// decoder pos-embed, blocks, decoder_norm, decoder_pred Dd -> p*p*C; the cls row is dropped.
//
// Un-shuffling is done with the keep lists directly: position n takes the encoder token that kept
// it, or the mask token. This is exactly MAE's gather with ids_restore.
#pragma once

#include <cstdint>
#include <cstring>
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

template <class T>
class MaeDecoder {
public:
    MaeDecoder(ParamArena<T>& P, const vit::VitDims& enc, const DecoderDims& dd, long max_batch, long max_keep)
        : enc_(enc), dd_(dd), max_batch_(max_batch), max_keep_(max_keep) {
        LCMAE_CHECK(dd.heads > 0 && dd.dim % dd.heads == 0,
                    "decoder width " << dd.dim << " is not divisible by " << dd.heads << " heads");
        LCMAE_CHECK(dd.dim % 4 == 0, "decoder width " << dd.dim << " must be a multiple of 4 (sin-cos pos-embed)");
        const long L = enc.tokens(), N = 1 + L;
        embed_ = nn::Linear<T>(P, "decoder_embed", enc.dim, dd.dim);
        mask_token_ = P.add("mask_token", Shape{1, 1, dd.dim});
        const nn::BlockPlan bp{dd.dim, dd.heads, 4 * dd.dim, max_batch, N};
        for (long i = 0; i < dd.depth; ++i) blocks_.emplace_back(P, A_, "decoder_blocks." + std::to_string(i), bp);
        norm_ = nn::LayerNorm<T>(P, "decoder_norm", dd.dim);
        pred_ = nn::Linear<T>(P, "decoder_pred", dd.dim, enc.patch_dim());
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
        A_.allocate();
        pos_ = nn::sincos_pos_embed_2d<T>(dd.dim, enc.grid());
        slot_of_.reserve(static_cast<std::size_t>(max_batch * L));
    }
    MaeDecoder(const MaeDecoder&) = delete;
    MaeDecoder& operator=(const MaeDecoder&) = delete;

    void init(ParamArena<T>& P, std::uint64_t seed) const {
        embed_.init(P, seed);
        nn::init_normal(P.value(mask_token_), dd_.dim, 0.02, nn::init_rng(seed, "mask_token"));
        for (const auto& b : blocks_) b.init(P, seed);
        norm_.init(P, seed);
        pred_.init(P, seed);
    }

    /// latent (B, 1 + K, D) from the encoder run with keep (B, K). Returns pred (B, L, p*p*C).
    const T* forward(const backend::Cpu& ctx, const ParamArena<T>& P, const T* latent, long B,
                     const std::int64_t* keep, long K) {
        LCMAE_CHECK(B >= 1 && B <= max_batch_, "decoder batch " << B << " is outside [1, " << max_batch_ << "]");
        LCMAE_CHECK(K >= 1 && K <= max_keep_, "decoder got " << K << " kept tokens; planned [1, " << max_keep_ << "]");
        const long L = enc_.tokens(), N = 1 + L, Dd = dd_.dim;
        B_ = B; K_ = K; latent_ = latent;
        slot_of_.assign(static_cast<std::size_t>(B * L), -1);
        for (long b = 0; b < B; ++b)
            for (long k = 0; k < K; ++k) {
                const std::int64_t n = keep[b * K + k];
                LCMAE_CHECK(n >= 0 && n < L, "kept token id " << n << " is outside [0, " << L << ")");
                slot_of_[b * L + n] = k;
            }
        T* emb = A_.at(emb_);
        embed_.forward(ctx, P, latent, emb, B * (1 + K));
        T* x0 = A_.at(x0_);
        const T* mt = P.value(mask_token_);
        for (long b = 0; b < B; ++b)
            for (long n = 0; n < N; ++n) {
                const T* src = n == 0 ? emb + b * (1 + K) * Dd
                                      : (slot_of_[b * L + n - 1] >= 0 ? emb + (b * (1 + K) + 1 + slot_of_[b * L + n - 1]) * Dd : mt);
                T* o = x0 + (b * N + n) * Dd;
                const T* pe = pos_.data() + n * Dd;
                for (long c = 0; c < Dd; ++c) o[c] = src[c] + pe[c];
            }
        const T* x = x0;
        for (const auto& blk : blocks_) {
            blk.forward(ctx, P, A_, x, B, N);
            x = A_.at(blk.out);
        }
        norm_.forward(ctx, P, x, A_.at(normed_), A_.at(mean_), A_.at(rstd_), B * N);
        pred_.forward(ctx, P, A_.at(normed_), A_.at(out_), B * N);
        const long Pd = enc_.patch_dim();
        T* rows = A_.at(pred_rows_);
        for (long b = 0; b < B; ++b) std::memcpy(rows + b * L * Pd, A_.at(out_) + (b * N + 1) * Pd, sizeof(T) * L * Pd);
        return rows;
    }

    /// d_pred (B, L, p*p*C) -> d_latent (B, 1 + K, D), written. Parameter gradients accumulate.
    void backward(const backend::Cpu& ctx, ParamArena<T>& P, const T* d_pred, T* d_latent) {
        LCMAE_CHECK(B_ > 0, "decoder backward called before forward");
        const long B = B_, K = K_, L = enc_.tokens(), N = 1 + L, Dd = dd_.dim, Pd = enc_.patch_dim();
        T* dout = A_.at(dout_);
        for (long b = 0; b < B; ++b) {
            std::memset(dout + b * N * Pd, 0, sizeof(T) * Pd);  // the dropped cls row
            std::memcpy(dout + (b * N + 1) * Pd, d_pred + b * L * Pd, sizeof(T) * L * Pd);
        }
        T* dx = A_.at(dx_);
        std::memset(dx, 0, sizeof(T) * B * N * Dd);
        T* dnormed = A_.at(scratch_.d_ln);  // free until the blocks run backward
        pred_.backward(ctx, P, A_.at(normed_), dout, dnormed, B * N);
        const T* last = blocks_.empty() ? A_.at(x0_) : A_.at(blocks_.back().out);
        norm_.backward(ctx, P, last, A_.at(mean_), A_.at(rstd_), dnormed, dx, B * N);
        for (long i = static_cast<long>(blocks_.size()) - 1; i >= 0; --i) {
            const T* x_in = i == 0 ? A_.at(x0_) : A_.at(blocks_[i - 1].out);
            blocks_[i].backward(ctx, P, A_, x_in, B, N, dx, scratch_);
        }
        T* demb = A_.at(demb_);
        T* dmt = P.grad(mask_token_);
        for (long b = 0; b < B; ++b) {
            std::memcpy(demb + b * (1 + K) * Dd, dx + b * N * Dd, sizeof(T) * Dd);
            for (long n = 0; n < L; ++n) {
                const T* src = dx + (b * N + 1 + n) * Dd;
                const long k = slot_of_[b * L + n];
                if (k >= 0) std::memcpy(demb + (b * (1 + K) + 1 + k) * Dd, src, sizeof(T) * Dd);
                else for (long c = 0; c < Dd; ++c) dmt[c] += src[c];
            }
        }
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
    /// decoder_embed (D -> Dd) and the mask token, for guidance on the decoder-side sequence.
    const nn::Linear<T>& embed() const noexcept { return embed_; }
    Slot mask_token() const noexcept { return mask_token_; }

private:
    vit::VitDims enc_;
    DecoderDims dd_;
    long max_batch_, max_keep_;
    nn::Linear<T> embed_, pred_;
    Slot mask_token_;
    std::vector<nn::Block<T>> blocks_;
    nn::LayerNorm<T> norm_;
    ActivationArena<T> A_;
    nn::BlockScratch<T> scratch_;
    Slot emb_, x0_, normed_, mean_, rstd_, out_, pred_rows_, dout_, dx_, demb_;
    std::vector<T> pos_;
    std::vector<long> slot_of_;
    const T* latent_ = nullptr;
    long B_ = 0, K_ = 0;
};

}  // namespace lcmae::models
