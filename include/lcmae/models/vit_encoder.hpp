// lcmae/models/vit_encoder.hpp - the ViT encoder of MAE (SPEC 1-2) with explicit forward and
// backward on a subset of tokens (the visible ones), on all tokens, or (SimMIM) on all tokens
// with mask tokens mixed in after the patch embedding.
//
// forward: patch-embed the kept tokens only (cheaper than embedding all and gathering), add
// pos_embed[1 + id], prepend cls_token + pos_embed[0], blocks, final LayerNorm `norm`.
// Parameter names are timm's VisionTransformer names (cls_token, patch_embed.proj.*, blocks.i.*,
// norm.*); the fixed pos_embed is not a parameter.
//
// Fine-tuning (eval/finetune.hpp) adds two options that pre-training leaves off: final_norm = false
// (MAE's global-pool classifier drops `norm`: it pools the last block's output and normalises with
// its own fc_norm) and drop_path (stochastic depth: set_drop_path() gives per-sample scales for
// each block's two residual branches, nn::Block; drop_path_scales() draws them). With both off the
// encoder runs exactly as before.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/dist/grad_ready.hpp"
#include "lcmae/nn/block.hpp"
#include "lcmae/nn/patch_embed.hpp"
#include "lcmae/nn/pos_embed.hpp"
#include "lcmae/vit/config.hpp"

namespace lcmae::models {

struct EncoderOptions {
    long max_batch = 1;       // largest batch a forward will see
    long max_keep = 0;        // largest number of kept tokens (0 = all tokens)
    bool mask_token = false;  // SimMIM: a learned mask_token mixed in at masked positions
    bool forward_only = false;  // no backward (the EMA target): all blocks share one set of
                                // activation buffers, about depth times less memory
    std::string prefix;       // name prefix (empty: timm's names)
    bool final_norm = true;   // false: no `norm` (parameters absent), forward returns the last block's output
    bool drop_path = false;   // plans drop-path scales (set_drop_path); needs a trainable encoder
};

/// Drop-path scales for `depth` blocks and B samples, laid out (depth, 2, B) as
/// VitEncoder::set_drop_path takes them: block i drops with rate max_rate * i / (depth - 1)
/// (torch.linspace(0, max_rate, depth), as timm), each sample's attention and MLP branch
/// independently; a kept branch is scaled by 1 / (1 - rate). The draws are Philox words keyed by
/// (seed, step, block, branch, sample), so they do not depend on threads or order.
template <class T>
std::vector<T> drop_path_scales(long depth, double max_rate, long B, std::uint64_t seed, std::uint64_t step) {
    LCMAE_CHECK(max_rate >= 0 && max_rate < 1, "drop path rate must lie in [0, 1), got " << max_rate);
    std::vector<T> s(static_cast<std::size_t>(depth * 2 * B), T(1));
    for (long i = 0; i < depth; ++i) {
        const double rate = depth > 1 ? max_rate * double(i) / double(depth - 1) : 0.0;
        if (rate == 0) continue;
        const double keep = 1.0 - rate;
        for (long br = 0; br < 2; ++br)
            for (long b = 0; b < B; ++b) {
                Rng r(seed, stream_id(0xd7090a7full, step, static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(br),
                                      static_cast<std::uint64_t>(b)));
                s[static_cast<std::size_t>((i * 2 + br) * B + b)] = r.bernoulli(keep) ? static_cast<T>(1.0 / keep) : T(0);
            }
    }
    return s;
}

template <class T, class Backend = backend::Cpu>
class VitEncoder {
public:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    using Ids = dptr<Backend, const std::int64_t>;

    VitEncoder(ParamArena<T, Backend>& P, const vit::VitDims& d, EncoderOptions opt) : dims_(d), opt_(std::move(opt)) {
        LCMAE_CHECK(d.dim > 0 && d.heads > 0 && d.dim % d.heads == 0,
                    "encoder width " << d.dim << " is not divisible by " << d.heads << " heads");
        LCMAE_CHECK(d.patch > 0 && d.image % d.patch == 0, "image " << d.image << " is not divisible by patch " << d.patch);
        LCMAE_CHECK(opt_.max_batch >= 1, "encoder max_batch must be >= 1, got " << opt_.max_batch);
        if (opt_.max_keep == 0) opt_.max_keep = d.tokens();
        LCMAE_CHECK(opt_.max_keep >= 1 && opt_.max_keep <= d.tokens(),
                    "encoder max_keep " << opt_.max_keep << " is outside [1, " << d.tokens() << "]");
        LCMAE_CHECK(!opt_.mask_token || opt_.max_keep == d.tokens(), "a mask-token encoder sees all tokens");
        LCMAE_CHECK(!(opt_.drop_path && opt_.forward_only), "drop path needs a trainable encoder, not forward_only");
        const std::string& p = opt_.prefix;
        geom_ = nn::PatchGeometry{d.channels, d.image, d.patch};
        cls_ = P.add(p + "cls_token", Shape{1, 1, d.dim});
        patch_embed_ = nn::PatchEmbed<T, Backend>(P, p + "patch_embed", geom_, d.dim);
        if (opt_.mask_token) mask_token_ = P.add(p + "mask_token", Shape{1, 1, d.dim});
        const nn::BlockPlan bp{d.dim, d.heads, d.mlp_hidden(), opt_.max_batch, 1 + opt_.max_keep};
        const long rows = bp.max_rows();
        if (opt_.forward_only) {
            nn::plan_forward_only_stack(P, A_, p + "blocks", d.depth, bp, blocks_);  // one shared set of buffers
        } else {
            for (long i = 0; i < d.depth; ++i) {
                block_begin_.push_back(P.planned_size());  // this block's gradients start here (GradReady)
                blocks_.emplace_back(P, A_, p + "blocks." + std::to_string(i), bp);
            }
            scratch_.plan(A_, bp);
        }
        norm_begin_ = P.planned_size();
        if (opt_.final_norm) norm_ = nn::LayerNorm<T, Backend>(P, p + "norm", d.dim);
        patches_ = A_.reserve(opt_.max_batch * opt_.max_keep * geom_.patch_dim());
        emb_ = A_.reserve(opt_.max_batch * opt_.max_keep * d.dim);
        x0_ = A_.reserve(rows * d.dim);
        out_ = A_.reserve(rows * d.dim);
        mean_ = A_.reserve(rows);
        rstd_ = A_.reserve(rows);
        if (!opt_.forward_only) dx_ = A_.reserve(rows * d.dim);
        if (opt_.mask_token) w_ = A_.reserve(opt_.max_batch * d.tokens());
        pos_slot_ = A_.reserve((1 + d.tokens()) * d.dim);
        if (opt_.drop_path) drop_ = A_.reserve(d.depth * 2 * opt_.max_batch);
        A_.allocate();
        pos_ = nn::sincos_pos_embed_2d<T>(d.dim, d.grid());  // host copy; uploaded by the first forward
    }
    VitEncoder(const VitEncoder&) = delete;
    VitEncoder& operator=(const VitEncoder&) = delete;

    /// SPEC 1 initialisation (after P.allocate()).
    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        nn::init_normal(P.value(cls_), dims_.dim, 0.02, nn::init_rng(seed, opt_.prefix + "cls_token"));
        if (opt_.mask_token) nn::init_normal(P.value(mask_token_), dims_.dim, 0.02, nn::init_rng(seed, opt_.prefix + "mask_token"));
        patch_embed_.init(P, seed);
        for (const auto& b : blocks_) b.init(P, seed);
        if (opt_.final_norm) norm_.init(P, seed);
    }

    /// Drop path for the following forwards and backwards: host_scales (depth, 2, B) as
    /// drop_path_scales() makes them, uploaded once; null turns it off (evaluation). Every forward
    /// then needs batch B. Needs an encoder built with drop_path = true.
    void set_drop_path(const Backend& ctx, const T* host_scales, long B) {
        if (host_scales == nullptr) {
            drop_B_ = 0;
            return;
        }
        LCMAE_CHECK(opt_.drop_path, "set_drop_path needs an encoder built with drop_path = true");
        LCMAE_CHECK(B >= 1 && B <= opt_.max_batch, "drop path batch " << B << " is outside [1, " << opt_.max_batch << "]");
        upload(ctx, dims_.depth * 2 * B, host_scales, A_.at(drop_));
        drop_B_ = B;
    }

    /// images (B, C, H, W); keep (B, K) token ids per sample (in the order the caller wants them),
    /// or null for all L tokens in order. Returns (B, 1 + K, D) after the final norm.
    /// All memory arguments are the backend's (keep: int64 in backend memory).
    CPtr forward(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr images, long B, Ids keep, long K) {
        if (!keep) K = dims_.tokens();
        LCMAE_CHECK(!opt_.mask_token, "this encoder mixes mask tokens: call forward_masked");
        begin(ctx, B, K);
        patchify_conv(ctx, geom_.channels, geom_.image, geom_.patch, B, images, keep, K, A_.at(patches_));
        patch_embed_.proj.forward(ctx, P, A_.at(patches_), A_.at(emb_), B * K);
        assemble_tokens(ctx, B, K, dims_.dim, CPtr(A_.at(emb_)), keep, P.value(cls_), CPtr(A_.at(pos_slot_)), A_.at(x0_));
        return run_blocks(ctx, P);
    }

    /// SimMIM: all L tokens; w (B, L) with 1 at masked positions: x = x (1 - w) + mask_token w
    /// after the patch embedding. Returns (B, 1 + L, D).
    CPtr forward_masked(const Backend& ctx, const ParamArena<T, Backend>& P, CPtr images, long B, CPtr w) {
        LCMAE_CHECK(opt_.mask_token, "forward_masked needs an encoder built with mask_token = true");
        const long L = dims_.tokens(), D = dims_.dim;
        begin(ctx, B, L);
        copy(ctx, B * L, w, A_.at(w_));  // kept for backward
        patchify_conv(ctx, geom_.channels, geom_.image, geom_.patch, B, images, Ids(nullptr), L, A_.at(patches_));
        Ptr emb = A_.at(emb_);
        patch_embed_.proj.forward(ctx, P, A_.at(patches_), emb, B * L);
        mask_token_mix(ctx, B * L, D, CPtr(A_.at(w_)), P.value(mask_token_), emb);
        assemble_tokens(ctx, B, L, D, CPtr(emb), Ids(nullptr), P.value(cls_), CPtr(A_.at(pos_slot_)), A_.at(x0_));
        return run_blocks(ctx, P);
    }

    /// d_out (B, 1 + K, D) for the last forward; accumulates every parameter gradient.
    void backward(const Backend& ctx, ParamArena<T, Backend>& P, CPtr d_out) {
        LCMAE_CHECK(!opt_.forward_only, "this encoder was built forward_only (no saved activations); it has no backward");
        LCMAE_CHECK(B_ > 0, "encoder backward called before forward");
        const long B = B_, N = 1 + K_, D = dims_.dim, rows = B * N;
        Ptr dx = A_.at(dx_);
        if (opt_.final_norm) {
            fill(ctx, rows * D, T(0), dx);
            CPtr last = blocks_.empty() ? A_.at(x0_) : A_.at(blocks_.back().out);
            norm_.backward(ctx, P, last, A_.at(mean_), A_.at(rstd_), d_out, dx, rows);
        } else {
            copy(ctx, rows * D, d_out, dx);
        }
        if (grad_ready_) grad_ready_->ready_from(ctx, norm_begin_);
        for (long i = static_cast<long>(blocks_.size()) - 1; i >= 0; --i) {
            CPtr x_in = i == 0 ? A_.at(x0_) : A_.at(blocks_[i - 1].out);
            blocks_[i].backward(ctx, P, A_, x_in, B, N, dx, scratch_, drop_of(i));
            if (grad_ready_) grad_ready_->ready_from(ctx, block_begin_[std::size_t(i)]);
        }
        Ptr demb = A_.at(emb_);  // reused: the embedding itself is no longer needed
        split_token_grads(ctx, B, K_, D, CPtr(dx), P.grad(cls_), demb);
        if (opt_.mask_token) mask_token_mix_backward(ctx, B * K_, D, CPtr(A_.at(w_)), demb, P.grad(mask_token_));
        patch_embed_.proj.backward(ctx, P, A_.at(patches_), demb, Ptr(nullptr), B * K_);
    }

    /// During backward, tells `r` (null: nobody) after the final norm and after each block that the
    /// gradients from there to the end of the arena are final (dist/grad_ready.hpp). The caller
    /// reports the rest (cls, patch embedding, mask token: the arena's lowest offsets) after
    /// backward returns, and must have planned nothing between this encoder and its own later
    /// parameters that a later part of its backward still writes.
    void set_grad_ready(dist::GradReady<Backend>* r) noexcept { grad_ready_ = r; }

    const vit::VitDims& dims() const noexcept { return dims_; }
    const EncoderOptions& options() const noexcept { return opt_; }
    /// The (1 + L, D) position table: SPEC 1's fixed sin-cos table unless set_pos_embed replaced it.
    const std::vector<T>& pos_embed() const noexcept { return pos_; }
    /// Replaces the position table (1 + L, D) row-major, e.g. by the pos_embed of a checkpoint
    /// imported from timm (`lcmae import`); it is uploaded with the next forward. Not a parameter:
    /// training never changes it.
    void set_pos_embed(std::vector<T> table) {
        LCMAE_CHECK(table.size() == pos_.size(), "set_pos_embed: the table has " << table.size() << " values, expected (1 + "
                                                     << dims_.tokens() << ") * " << dims_.dim);
        pos_ = std::move(table);
        pos_uploaded_ = false;
    }
    const std::vector<nn::Block<T, Backend>>& blocks() const noexcept { return blocks_; }
    ActivationArena<T, Backend>& activations() noexcept { return A_; }
    /// Attention probabilities (B, H, N, N) of block i from the last forward (a forward_only
    /// encoder keeps only the last block's).
    CPtr attention_probs(long i) {
        LCMAE_CHECK(!opt_.forward_only || i + 1 == long(blocks_.size()),
                    "a forward_only encoder keeps the attention of its last block only, not of block " << i);
        return A_.at(blocks_.at(static_cast<std::size_t>(i)).probs);
    }
    long last_batch() const noexcept { return B_; }
    long last_kept() const noexcept { return K_; }

    /// Analytic FLOPs of one forward on B samples with K kept tokens (GEMMs and attention products).
    double flops_forward(long B, long K) const {
        double f = patch_embed_.proj.flops_forward(B * K);
        for (const auto& b : blocks_) f += b.flops_forward(B, 1 + K);
        return f;
    }
    /// Backward costs two GEMMs per forward GEMM, except the patch embedding (no input gradient).
    double flops_backward(long B, long K) const {
        return 2.0 * flops_forward(B, K) - patch_embed_.proj.flops_forward(B * K);
    }

private:
    void begin(const Backend& ctx, long B, long K) {
        LCMAE_CHECK(B >= 1 && B <= opt_.max_batch, "encoder batch " << B << " is outside the planned [1, " << opt_.max_batch << "]");
        LCMAE_CHECK(K >= 1 && K <= opt_.max_keep, "encoder got " << K << " kept tokens; planned [1, " << opt_.max_keep << "]");
        LCMAE_CHECK(drop_B_ == 0 || B == drop_B_, "drop path was set for batch " << drop_B_ << ", the forward has " << B);
        B_ = B;
        K_ = K;
        if (!pos_uploaded_) {  // once: the fixed table moves to the backend with the first forward
            upload(ctx, long(pos_.size()), pos_.data(), A_.at(pos_slot_));
            pos_uploaded_ = true;
        }
    }
    CPtr run_blocks(const Backend& ctx, const ParamArena<T, Backend>& P) {
        const long B = B_, N = 1 + K_;
        CPtr x = A_.at(x0_);
        for (long i = 0; i < long(blocks_.size()); ++i) {
            blocks_[i].forward(ctx, P, A_, x, B, N, drop_of(i));
            x = A_.at(blocks_[i].out);
        }
        if (!opt_.final_norm) return x;
        norm_.forward(ctx, P, x, A_.at(out_), A_.at(mean_), A_.at(rstd_), B * N);
        return A_.at(out_);
    }
    /// Block i's 2B drop-path scales, or null when drop path is off.
    CPtr drop_of(long i) {
        if (drop_B_ == 0) return CPtr(nullptr);
        return CPtr(A_.at(drop_)) + i * 2 * drop_B_;
    }

    vit::VitDims dims_;
    EncoderOptions opt_;
    nn::PatchGeometry geom_;
    Slot cls_, mask_token_;
    nn::PatchEmbed<T, Backend> patch_embed_;
    std::vector<nn::Block<T, Backend>> blocks_;
    std::vector<std::size_t> block_begin_;  // arena offset of each block's first parameter
    std::size_t norm_begin_ = 0;            // ... and of the final norm (the arena's end without one)
    dist::GradReady<Backend>* grad_ready_ = nullptr;
    nn::LayerNorm<T, Backend> norm_;
    ActivationArena<T, Backend> A_;
    nn::BlockScratch<T, Backend> scratch_;
    Slot patches_, emb_, x0_, out_, mean_, rstd_, dx_, w_, pos_slot_, drop_;
    std::vector<T> pos_;  // host copy of the fixed table (checkpoint export, tests)
    bool pos_uploaded_ = false;
    long B_ = 0, K_ = 0;
    long drop_B_ = 0;  // batch of the active drop-path scales; 0 = off
};

}  // namespace lcmae::models
