// lcmae/models/lcmae_model.hpp - the LC-MAE engine (SPEC 2-3): online encoder + MAE decoder
// (or SimMIM's mask-token encoder + linear decoder), projector/predictor heads, and the EMA target
// (encoder + projector, eval mode, no gradient; plus the decoder trunk for Table 5e). Plain MAE is the same engine with loss None:
// no target, no heads, nothing extra computed.
//
// One call of forward_backward() is one micro-batch: it computes L = L_MIM + alpha L_GG and
// ACCUMULATES every online gradient (scaled by loss_scale, e.g. 1/k for k accumulation steps).
// The optimiser step and the EMA update are the trainer's (train/trainer.hpp).
//
// Symmetric schedule: the two online views share one encoder pass over a batch of 2B (the keep
// sets have the same size), and the target runs once over both full views (2B). Heads run once per
// view, so each view gets its own BatchNorm batch statistics (view 1 first).
//
// Guided tokens "visible + mask" (Table 5e) guide the DECODED tokens, so the decoder runs on every
// online view (one pass over V B samples; the MIM loss still reads view 1's prediction only, view
// 2's prediction is computed and unused) and the target runs its EMA copy of the decoder trunk
// (target_decoder.hpp) on its encoder's output.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "lcmae/backend/graph_cache.hpp"
#include "lcmae/models/guidance_branch.hpp"
#include "lcmae/models/mae_decoder.hpp"
#include "lcmae/models/masking.hpp"
#include "lcmae/models/model_spec.hpp"
#include "lcmae/models/spec_rules.hpp"
#include "lcmae/models/target_decoder.hpp"
#include "lcmae/models/vit_encoder.hpp"

namespace lcmae::models {

/// Which rows of a data-parallel global batch this process holds: local row j is global row
/// j * world + rank (round-robin, as data::Loader deals an epoch's order to ranks). Everything drawn
/// per sample (masks) is drawn for the whole global batch and this rank's rows are taken, so a
/// sample's mask depends on its global position only, never on the number of ranks.
struct BatchShard {
    int rank = 0, world = 1;
};

template <class T, class Backend = backend::Cpu>
class LcmaeModel {
public:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    using Ids = dptr<Backend, const std::int64_t>;

    /// A host-memory backend can build the model without a context (initialisation is host work).
    explicit LcmaeModel(const ModelSpec& spec, std::uint64_t seed = 0)
        requires Backend::host_memory
        : LcmaeModel(Backend(1), spec, seed) {}
    /// Parameters are initialised on the host and uploaded through `ctx` (which must outlive the call only).
    LcmaeModel(const Backend& ctx, const ModelSpec& spec, std::uint64_t seed = 0) : spec_(spec) {
        validate(spec);
        const auto& e = spec.encoder;
        const long B = spec.max_batch, L = e.tokens(), D = e.dim;
        simmim_ = spec.baseline == Baseline::SimMim;
        views_ = spec.symmetric() && spec.guided_enabled() ? 2 : 1;
        dec_views_ = guides_decoded(spec) ? views_ : 1;
        K_ = simmim_ ? L : len_keep(L, spec.mask_ratio);
        Kt_ = L;
        if (views_ == 2)
            LCMAE_CHECK(2 * K_ <= L, "the Symmetric view schedule needs disjoint keep sets, so a mask ratio >= 0.5; got "
                                         << spec.mask_ratio << " (keeps " << K_ << " of " << L << " tokens per view)");
        // ---- online model
        encoder_ = std::make_unique<VitEncoder<T, Backend>>(P_, e, EncoderOptions{.max_batch = views_ * B, .max_keep = K_, .mask_token = simmim_});
        encoder_end_ = P_.planned_size();  // the encoder is [0, encoder_end_); decoder and heads follow (GradReady)
        if (simmim_) {
            simmim_decoder_ = nn::Linear<T, Backend>(P_, "decoder", D, e.patch_dim());
        } else {
            decoder_ = std::make_unique<MaeDecoder<T, Backend>>(P_, e, spec.decoder, dec_views_ * B, K_);
        }
        if (spec.guided_enabled()) {
            // ---- target: encoder (+ projector in the branch), same names as online, its own arena
            Kt_ = spec.target_mask_ratio > 0 ? len_keep(L, spec.target_mask_ratio) : L;
            target_encoder_ = std::make_unique<VitEncoder<T, Backend>>(
                Pt_, e, EncoderOptions{.max_batch = views_ * B, .max_keep = Kt_, .forward_only = true});
            if (guides_decoded(spec))  // Table 5e: the target's EMA copy of the decoder trunk
                target_decoder_ = std::make_unique<TargetDecoder<T, Backend>>(Pt_, e, spec.decoder, views_ * B);
            // ---- the guidance: online heads (P_), the target's projector (Pt_), their activations
            guidance_ = std::make_unique<GuidanceBranch<T, Backend>>(P_, Pt_, A_, spec, K_, Kt_, views_);
        }
        // ---- model-level buffers
        images_ = A_.reserve(views_ * B * e.channels * e.image * e.image);
        mask_ = A_.reserve(B * L);
        target_patches_ = A_.reserve(B * L * e.patch_dim());
        d_pred_ = A_.reserve(dec_views_ * B * L * e.patch_dim());
        d_latent_ = A_.reserve(views_ * B * (1 + K_) * D);
        d_lat1_ = A_.reserve(dec_views_ * B * (1 + K_) * D);  // the decoder writes here; the guidance adds into d_latent_
        if (guides_decoded(spec)) d_decoded_ = A_.reserve(dec_views_ * B * (1 + L) * spec.decoder.dim);
        if (simmim_) {
            rows_ = A_.reserve(B * L * D);
            pred_ = A_.reserve(B * L * e.patch_dim());
            d_rows_ = A_.reserve(B * L * D);
        }
        A_.allocate();
        keep_.resize(static_cast<std::size_t>(views_ * B * K_));
        keep_host_.resize(static_cast<std::size_t>(views_ * B * K_));
        mask_host_.resize(static_cast<std::size_t>(B * L));
        scalars_.resize(kScalars);
        if (simmim_) {
            LCMAE_CHECK(spec.simmim_block >= 1 && e.grid() % spec.simmim_block == 0,
                        "SimMIM mask block " << spec.simmim_block << " does not tile the " << e.grid() << "-patch grid");
            simmim_mask_.resize(static_cast<std::size_t>(B * L));
            block_order_.resize(static_cast<std::size_t>((e.grid() / spec.simmim_block) * (e.grid() / spec.simmim_block)));
        }
        ids_.resize(static_cast<std::size_t>(B * L));  // masks drawn per step, without allocating
        noise_.resize(static_cast<std::size_t>(L));
        if (Kt_ < L) {
            target_ids_.resize(static_cast<std::size_t>(views_ * B * L));
            target_keep_.resize(static_cast<std::size_t>(views_ * B * Kt_));
            target_keep_host_.resize(static_cast<std::size_t>(views_ * B * Kt_));
        }
        P_.allocate();
        {  // SPEC 1 initialisation on the host, then one upload
            auto host = host_layout(P_);
            encoder_->init(host, seed);
            if (decoder_) decoder_->init(host, seed);
            if (simmim_) simmim_decoder_.init(host, seed);
            if (guidance_) guidance_->init(host, seed);
            upload(ctx, long(P_.planned_size()), host.values().data(), P_.values().data());
        }
        if (spec.guided_enabled()) {
            Pt_.allocate();
            copy_online_to_target(ctx);
        }
        ctx.synchronize();  // the host staging above dies here
    }
    LcmaeModel(const LcmaeModel&) = delete;
    LcmaeModel& operator=(const LcmaeModel&) = delete;

    /// SPEC 3: the target starts as an exact copy of the online encoder + projector (and, for
    /// Table 5e, of decoder_embed, the decoder blocks and decoder_norm).
    void copy_online_to_target(const Backend& ctx) {
        for (const auto& te : Pt_.entries()) {
            const auto& oe = P_.entry(te.name);
            copy(ctx, long(te.slot.count), CPtr(P_.value(oe.slot)), Pt_.value(te.slot));
        }
    }
    void copy_online_to_target()
        requires Backend::host_memory
    {
        copy_online_to_target(Backend(1));
    }

    /// Data-parallel training: the online heads' BatchNorm uses the statistics of the global batch
    /// through `r` (SyncBatchNorm); null (the default) is single-process BatchNorm.
    void set_batch_reducer(const dist::Reducer<Backend>* r) {
        if (guidance_) guidance_->set_reducer(r);
        batch_reducer_ = r != nullptr;
    }
    /// Replays of recorded step graphs so far (0 on a backend without graphs, or with them off).
    long graph_launches() const noexcept { return graphs_.launches(); }
    /// Data-parallel training: during the following backward passes, tell `r` (null: nobody) which
    /// gradients are final, so their all-reduce can overlap the rest of the backward
    /// (dist/grad_ready.hpp). The heads and the decoder finish first (they follow the encoder in
    /// the arena), then the encoder block by block from the last, then cls and the patch embedding.
    void set_grad_ready(dist::GradReady<Backend>* r) noexcept {
        grad_ready_ = r;
        encoder_->set_grad_ready(r);
    }

    /// One micro-batch with masks drawn from `rng`. view1, view2: (B, C, H, W); view2 unused by
    /// plain MAE (may be null). With a shard of world > 1, B is this rank's part of a global batch
    /// of B * world rows, and the masks are the global batch's rows of this rank (BatchShard).
    StepLosses forward_backward(const Backend& ctx, const T* view1, const T* view2, long B, Rng& rng,
                                double loss_scale = 1.0, BatchShard shard = {}) {
        const long L = spec_.encoder.tokens();
        if (shard.world > 1) return forward_backward_shard(ctx, view1, view2, B, rng, loss_scale, shard);
        if (simmim_) {
            block_mask_into(B, spec_.encoder.grid(), spec_.simmim_block, spec_.simmim_mask_ratio, rng,
                            simmim_mask_.data(), block_order_.data());
            return forward_backward_simmim(ctx, view1, view2, B, simmim_mask_.data(), loss_scale);
        }
        random_shuffle_into(B, L, rng, ids_.data(), noise_.data());
        if (Kt_ < L) random_shuffle_into(views_ * B, L, rng, target_ids_.data(), noise_.data());
        return forward_backward_mae(ctx, view1, view2, B, ids_.data(), loss_scale, Kt_ < L ? target_ids_.data() : nullptr);
    }

    /// MAE / LC-MAE with an injected ids_shuffle (B, L) (tests pass a fixed permutation). With a
    /// target mask ratio > 0 (Table 5c), target_ids_shuffle (V*B, L) says which tokens each target
    /// view keeps (the first int(L (1 - ratio)) of each row); V = 2 for the Symmetric schedule.
    /// Views and ids are host arrays; they are uploaded once here. The losses come back with one
    /// download at the end of the step.
    StepLosses forward_backward_mae(const Backend& ctx, const T* view1, const T* view2, long B,
                                    const std::int64_t* ids_shuffle, double loss_scale = 1.0,
                                    const std::int64_t* target_ids_shuffle = nullptr) {
        LCMAE_CHECK(!simmim_, "this model is LC-SimMIM: call forward_backward_simmim");
        check_batch(B, view1, view2);
        const auto& e = spec_.encoder;
        const long L = e.tokens(), K = K_, V = views_, img = e.channels * e.image * e.image;
        if (spec_.guided_enabled() && Kt_ < L) {
            LCMAE_CHECK(target_ids_shuffle != nullptr, "target mask ratio " << spec_.target_mask_ratio
                                                                             << " needs target_ids_shuffle");
            const long TB = views_ * B;
            check_shuffle(target_ids_shuffle, TB, L);
            keep_set(target_ids_shuffle, TB, L, 0, Kt_, target_keep_host_.data(), (T*)nullptr);
            upload(ctx, TB * Kt_, target_keep_host_.data(), target_keep_.data());
        }
        check_shuffle(ids_shuffle, B, L);
        Ptr images = A_.at(images_);
        upload(ctx, B * img, view1, images);
        if (V == 2) upload(ctx, B * img, view2, images + B * img);
        for (long v = 0; v < V; ++v)
            keep_set(ids_shuffle, B, L, v * K, K, keep_host_.data() + v * B * K, v == 0 ? mask_host_.data() : (T*)nullptr);
        upload(ctx, V * B * K, keep_host_.data(), keep_.data());
        upload(ctx, B * L, mask_host_.data(), A_.at(mask_));
        // The device work from here to the losses' download has fixed shapes and memory for a given
        // (B, loss scale, target masking): on a backend with graphs it is recorded once and replayed
        // (backend/graph_cache.hpp). Not recorded: with a gradient sink or a batch reducer (they
        // talk to other ranks from inside), or for the Paper view schedule (guide() uploads view 2
        // from host memory in the middle).
        const bool recordable = grad_ready_ == nullptr && !batch_reducer_ && !(spec_.guided_enabled() && V == 1);
        const std::uint64_t key =
            recordable ? backend::graph_key({1, std::uint64_t(B), std::bit_cast<std::uint64_t>(loss_scale), Kt_ < L ? 1u : 2u}) : 0;
        graphs_.run(ctx, key, [&] { mae_device_work(ctx, view2, B, loss_scale); });
        return read_losses(ctx);
    }

private:
    /// forward_backward_mae's device work (after the uploads, before the losses' download).
    void mae_device_work(const Backend& ctx, const T* view2, long B, double loss_scale) {
        const auto& e = spec_.encoder;
        const long L = e.tokens(), D = e.dim, K = K_, V = views_;
        const Ptr images = A_.at(images_);
        fill(ctx, kScalars, 0.0, scalars_.data());
        // ---- MIM on view 1
        const CPtr latent = encoder_->forward(ctx, P_, CPtr(images), V * B, keep(), K);
        const long VD = dec_views_;  // views the decoder runs on (view 1 only, unless Table 5e)
        const CPtr pred = decoder_->forward(ctx, P_, latent, VD * B, keep(), K);
        patchify_target(ctx, e.channels, e.image, e.patch, B, CPtr(images), A_.at(target_patches_));
        norm_pix_mse(ctx, B, L, e.patch_dim(), pred, CPtr(A_.at(target_patches_)), CPtr(A_.at(mask_)), spec_.norm_pix,
                     loss_scale, A_.at(d_pred_), scalars_.data() + kMim);
        if (VD > 1) fill(ctx, (VD - 1) * B * L * e.patch_dim(), T(0), A_.at(d_pred_) + B * L * e.patch_dim());  // no MIM loss
        const Ptr d_latent = A_.at(d_latent_);
        fill(ctx, V * B * (1 + K) * D, T(0), d_latent);
        const bool decoded = guides_decoded(spec_);
        if (decoded) fill(ctx, VD * B * (1 + L) * spec_.decoder.dim, T(0), A_.at(d_decoded_));
        // ---- guidance (adds into d_latent, or into d_decoded for Table 5e)
        if (spec_.guided_enabled()) guide(ctx, latent, view2, B, loss_scale);
        decoder_->backward(ctx, P_, CPtr(A_.at(d_pred_)), A_.at(d_lat1_), decoded ? CPtr(A_.at(d_decoded_)) : CPtr(nullptr));
        if (grad_ready_) grad_ready_->ready_from(ctx, encoder_end_);  // decoder and heads are done
        add_inplace(ctx, VD * B * (1 + K) * D, CPtr(A_.at(d_lat1_)), d_latent);
        encoder_->backward(ctx, P_, CPtr(d_latent));
        if (grad_ready_) grad_ready_->ready_from(ctx, 0);
    }

public:
    /// LC-SimMIM with an injected per-token mask w (B, L) (host), 1 = masked (Paper schedule).
    /// mim_rescale multiplies the L1 loss's gradient only (a data-parallel rank's correction of
    /// the loss normalisation, see forward_backward_shard).
    StepLosses forward_backward_simmim(const Backend& ctx, const T* view1, const T* view2, long B, const T* w,
                                       double loss_scale = 1.0, double mim_rescale = 1.0) {
        LCMAE_CHECK(simmim_, "this model is not LC-SimMIM: call forward_backward_mae");
        check_batch(B, view1, view2);
        const auto& e = spec_.encoder;
        const long L = e.tokens(), D = e.dim, Pd = e.patch_dim(), N = 1 + L, img = e.channels * e.image * e.image;
        long masked = 0;
        for (long i = 0; i < B * L; ++i) {  // host data: the caller's mask, validated before upload
            LCMAE_CHECK(w[i] == T(0) || w[i] == T(1), "SimMIM mask values must be 0 or 1, got " << w[i] << " at " << i);
            masked += w[i] == T(1);
        }
        LCMAE_CHECK(masked > 0 && masked < B * L, "the SimMIM mask must mask some but not all tokens");
        const Ptr images = A_.at(images_);
        upload(ctx, B * img, view1, images);
        upload(ctx, B * L, w, A_.at(mask_));
        fill(ctx, kScalars, 0.0, scalars_.data());
        const CPtr mask = A_.at(mask_);
        const CPtr latent = encoder_->forward_masked(ctx, P_, CPtr(images), B, mask);
        const Ptr rows = A_.at(rows_);
        copy_rows(ctx, B, L * D, latent + D, N * D, rows, L * D);  // drop the cls rows
        simmim_decoder_.forward(ctx, P_, CPtr(rows), A_.at(pred_), B * L);
        patchify_target(ctx, e.channels, e.image, e.patch, B, CPtr(images), A_.at(target_patches_));
        simmim_l1(ctx, B, L, Pd, e.patch * e.patch, e.channels, CPtr(A_.at(pred_)), CPtr(A_.at(target_patches_)), mask,
                  loss_scale * mim_rescale, A_.at(d_pred_), scalars_.data() + kMim);
        const Ptr d_latent = A_.at(d_latent_);
        fill(ctx, B * N * D, T(0), d_latent);
        if (spec_.guided_enabled()) guide(ctx, latent, view2, B, loss_scale);
        const Ptr d_rows = A_.at(d_rows_);
        simmim_decoder_.backward(ctx, P_, CPtr(rows), CPtr(A_.at(d_pred_)), d_rows, B * L);
        if (grad_ready_) grad_ready_->ready_from(ctx, encoder_end_);  // decoder and heads are done
        add_rows(ctx, B, L * D, CPtr(d_rows), L * D, d_latent + D, N * D);
        encoder_->backward(ctx, P_, CPtr(d_latent));
        if (grad_ready_) grad_ready_->ready_from(ctx, 0);
        return read_losses(ctx);
    }

    ParamArena<T, Backend>& params() noexcept { return P_; }
    const ParamArena<T, Backend>& params() const noexcept { return P_; }
    /// The target (EMA) arena; empty for plain MAE.
    ParamArena<T, Backend>& target_params() noexcept { return Pt_; }
    const ParamArena<T, Backend>& target_params() const noexcept { return Pt_; }
    bool has_target() const noexcept { return spec_.guided_enabled(); }
    const ModelSpec& spec() const noexcept { return spec_; }
    VitEncoder<T, Backend>& encoder() noexcept { return *encoder_; }
    long kept_tokens() const noexcept { return K_; }
    long online_views() const noexcept { return views_; }
    /// Activation memory (bytes) of the model-level buffers and every component.
    std::size_t activation_bytes() const {
        std::size_t b = A_.bytes() + encoder_->activations().bytes();
        if (decoder_) b += decoder_->activations().bytes();  // (missing before 2026-11-27: the "arenas" figures of bench_cuda_step under-counted it)
        if (target_encoder_) b += target_encoder_->activations().bytes();
        if (target_decoder_) b += target_decoder_->activations().bytes();
        return b;
    }

    /// Analytic FLOPs of one forward_backward on B samples per view (GEMMs and attention products).
    double flops_step(long B) const {
        const long V = views_, L = spec_.encoder.tokens();
        double f = encoder_->flops_forward(V * B, K_) + encoder_->flops_backward(V * B, K_);
        if (decoder_) f += 3.0 * decoder_->flops_forward(dec_views_ * B, K_);
        if (simmim_) f += 3.0 * simmim_decoder_.flops_forward(B * L);
        if (spec_.guided_enabled()) {
            const long rows = V * B * (token_wise() ? K_ : 1) * (spec_.guidance == GuidanceType::Both ? 2 : 1);
            f += 3.0 * guidance_->flops_forward(rows);
            f += target_encoder_->flops_forward(V * B, L) + guidance_->flops_target(rows);
            if (target_decoder_) f += target_decoder_->flops_forward(V * B);
        }
        return f;
    }

private:
    /// forward_backward for rank `shard.rank` of `shard.world`: the masks of the whole global batch
    /// are drawn exactly as a single process with that batch draws them (same stream, same order),
    /// and this rank's rows (j * world + rank) are picked. Host work only (B * world masks).
    StepLosses forward_backward_shard(const Backend& ctx, const T* view1, const T* view2, long B, Rng& rng,
                                      double loss_scale, BatchShard shard) {
        LCMAE_CHECK(shard.world >= 1 && shard.rank >= 0 && shard.rank < shard.world,
                    "batch shard: rank " << shard.rank << " is not in [0, " << shard.world << ")");
        const long L = spec_.encoder.tokens(), W = shard.world, G = B * W;
        const auto global_row = [&](long j) { return j * W + shard.rank; };
        if (simmim_) {
            std::vector<T> global(static_cast<std::size_t>(G * L));
            block_mask_into(G, spec_.encoder.grid(), spec_.simmim_block, spec_.simmim_mask_ratio, rng, global.data(),
                            block_order_.data());
            for (long j = 0; j < B; ++j)
                std::copy_n(global.data() + global_row(j) * L, L, simmim_mask_.data() + j * L);
            // SimMIM's L1 divides by (masked pixels + 1e-5): rescale this rank's gradient so that the
            // ranks' mean is the global batch's (the ratio is W up to the 1e-5; the reported loss
            // stays this rank's own, so the logged mean differs from the global one by ~1e-7).
            const double ppt = double(spec_.encoder.patch * spec_.encoder.patch);
            double mine = 0, all = 0;
            for (long i = 0; i < B * L; ++i) mine += double(simmim_mask_[std::size_t(i)]);
            for (long i = 0; i < G * L; ++i) all += double(global[std::size_t(i)]);
            const double rescale = double(W) * (mine * ppt + 1e-5) / (all * ppt + 1e-5);
            return forward_backward_simmim(ctx, view1, view2, B, simmim_mask_.data(), loss_scale, rescale);
        }
        std::vector<std::int64_t> global(static_cast<std::size_t>(G * L));
        random_shuffle_into(G, L, rng, global.data(), noise_.data());
        for (long j = 0; j < B; ++j) std::copy_n(global.data() + global_row(j) * L, L, ids_.data() + j * L);
        if (Kt_ < L) {  // the target's masks: V blocks of G rows, view-major, as random_shuffle_into(V * G) lays them
            global.resize(static_cast<std::size_t>(views_ * G * L));
            random_shuffle_into(views_ * G, L, rng, global.data(), noise_.data());
            for (long v = 0; v < views_; ++v)
                for (long j = 0; j < B; ++j)
                    std::copy_n(global.data() + (v * G + global_row(j)) * L, L, target_ids_.data() + (v * B + j) * L);
        }
        return forward_backward_mae(ctx, view1, view2, B, ids_.data(), loss_scale, Kt_ < L ? target_ids_.data() : nullptr);
    }

    static void validate(const ModelSpec& s) {
        LCMAE_CHECK(s.max_batch >= 1, "max_batch must be >= 1, got " << s.max_batch);
        LCMAE_CHECK(s.alpha >= 0, "alpha must be non-negative, got " << s.alpha);
        if (s.guided_enabled()) {
            LCMAE_CHECK(rules::heads(s), LCMAE_RULE_HEADS_MSG << " (head_hidden " << s.head_hidden << ", depths "
                                                              << s.projector_depth << " / " << s.predictor_depth << ")");
            if (s.guided == GuidedTokens::VisibleAndMask) {
                LCMAE_CHECK(s.baseline == Baseline::Mae && s.guidance == GuidanceType::Global && s.pool == PoolTokens::Visible,
                            "guided tokens 'visible + mask' (Table 5e) pool the MAE decoder's decoded tokens: they need the "
                            "MAE baseline, global guidance and visible-token pooling");
                LCMAE_CHECK(s.target_mask_ratio == 0.0,
                            "guided tokens 'visible + mask' (Table 5e) run the target's decoder copy on all of its tokens, so "
                            "the target mask ratio must be 0, got " << s.target_mask_ratio);
            }
            if (s.guidance != GuidanceType::Global) {
                LCMAE_CHECK(rules::tokenwise_pool(s), LCMAE_RULE_TOKENWISE_POOL_MSG);
                LCMAE_CHECK(s.target_mask_ratio == 0.0, "token-wise guidance needs the target token at every online "
                                                        "position, so the target mask ratio must be 0, got "
                                                            << s.target_mask_ratio);
            }
            LCMAE_CHECK(s.target_mask_ratio >= 0.0 && s.target_mask_ratio < 1.0,
                        "target mask ratio must lie in [0, 1), got " << s.target_mask_ratio);
            LCMAE_CHECK(s.target_mask_ratio == 0.0 || s.baseline == Baseline::Mae,
                        "a masked target (Table 5c) is implemented for the MAE baseline only");
        }
        LCMAE_CHECK(rules::simmim_views(s), LCMAE_RULE_SIMMIM_VIEWS_MSG);
        LCMAE_CHECK(rules::simmim_global(s), LCMAE_RULE_SIMMIM_GLOBAL_MSG);
        if (s.baseline == Baseline::Mae) {
            LCMAE_CHECK(rules::decoder_positive(s), LCMAE_RULE_DECODER_POSITIVE_MSG << ", got " << s.decoder.dim << " x "
                                                                                      << s.decoder.depth << " x " << s.decoder.heads);
            LCMAE_CHECK(rules::decoder_heads(s), LCMAE_RULE_DECODER_HEADS_MSG << " (" << s.decoder.dim << " / "
                                                                              << s.decoder.heads << ")");
            LCMAE_CHECK(rules::decoder_sincos(s), LCMAE_RULE_DECODER_SINCOS_MSG << ", got " << s.decoder.dim);
        }
    }
    bool token_wise() const { return spec_.guidance != GuidanceType::Global; }
    /// Table 5e: the guidance pools the decoder's decoded tokens (needs the MAE decoder).
    static bool guides_decoded(const ModelSpec& s) {
        return s.guided_enabled() && s.baseline == Baseline::Mae && s.guided == GuidedTokens::VisibleAndMask;
    }
    nn::PatchGeometry geom() const { return {spec_.encoder.channels, spec_.encoder.image, spec_.encoder.patch}; }
    void check_batch(long B, const T* view1, const T* view2) const {
        LCMAE_CHECK(B >= 1 && B <= spec_.max_batch, "batch " << B << " is outside the planned [1, " << spec_.max_batch << "]");
        LCMAE_CHECK(view1 != nullptr, "view1 is null");
        LCMAE_CHECK(!spec_.guided_enabled() || view2 != nullptr, "LC-MAE needs two views; view2 is null");
        if (spec_.guided_enabled())
            LCMAE_CHECK(spec_.loss != GuidanceLoss::InfoNCE || B >= 2, "InfoNCE needs a batch of at least 2");
    }
    // Scalars a step reports, written by the loss ops into backend memory and read once per step.
    static constexpr long kMim = 0, kGuidance = 1, kScalars = 8;  // [kGuidance + GuidanceBranch's terms]
    StepLosses read_losses(const Backend& ctx) {
        double h[kScalars];
        download(ctx, kScalars, dptr<Backend, const double>(scalars_.data()), h);
        StepLosses out;
        out.mim = h[kMim];
        if (guidance_) out.gg = guidance_->combine(h + kGuidance);
        out.total = out.mim + spec_.alpha * out.gg;
        return out;
    }
    Ids keep() const { return Ids(keep_.data()); }

    // The guidance: the target encoder on its views (both full views for the Symmetric schedule,
    // view 2 for the Paper one; eval mode, no gradient), then the branch (heads, loss, un-pooling),
    // which adds its gradient into d_latent_.
    void guide(const Backend& ctx, CPtr latent, const T* view2, long B, double loss_scale) {
        const auto& e = spec_.encoder;
        const Ptr timgs = A_.at(images_);  // [view1; view2] already for Symmetric; view 2 for Paper
        if (views_ == 1) upload(ctx, B * e.channels * e.image * e.image, view2, timgs);
        const bool target_masked = Kt_ < e.tokens();
        const CPtr tlat = target_encoder_->forward(ctx, Pt_, CPtr(timgs), views_ * B,
                                                   target_masked ? Ids(target_keep_.data()) : Ids(nullptr), Kt_);
        typename GuidanceBranch<T, Backend>::Step s;
        s.latent = latent;
        s.tlat = tlat;
        if (target_decoder_) {  // Table 5e: decoded tokens on both sides
            s.decoded = decoder_->decoded();
            s.tdecoded = target_decoder_->forward(ctx, Pt_, tlat, views_ * B);
            s.d_decoded = A_.at(d_decoded_);
        }
        s.keep = keep();
        s.mask = simmim_ ? CPtr(A_.at(mask_)) : CPtr(nullptr);
        s.d_latent = A_.at(d_latent_);
        s.scalars = scalars_.data() + kGuidance;
        s.B = B;
        s.loss_scale = loss_scale;
        guidance_->run(ctx, P_, Pt_, A_, s);
    }

    ModelSpec spec_;
    bool simmim_ = false;
    long views_ = 1, K_ = 0;
    long dec_views_ = 1;  // online views the MAE decoder runs on: views_ for Table 5e, else 1
    long Kt_ = 0;  // tokens the target sees (all unless Table 5c masks it)
    ParamArena<T, Backend> P_, Pt_;
    std::size_t encoder_end_ = 0;  // P_ offset where the encoder's parameters end
    dist::GradReady<Backend>* grad_ready_ = nullptr;
    bool batch_reducer_ = false;
    backend::graph_cache_t<Backend> graphs_;  // the recorded step graphs (a no-op off the GPU)
    mutable ActivationArena<T, Backend> A_;
    std::unique_ptr<VitEncoder<T, Backend>> encoder_, target_encoder_;
    std::unique_ptr<MaeDecoder<T, Backend>> decoder_;
    std::unique_ptr<TargetDecoder<T, Backend>> target_decoder_;  // Table 5e only
    nn::Linear<T, Backend> simmim_decoder_;
    std::unique_ptr<GuidanceBranch<T, Backend>> guidance_;
    Slot images_, d_lat1_, mask_, target_patches_, d_pred_, d_latent_, rows_, pred_, d_rows_, d_decoded_;
    // backend memory: this step's keep lists, the loss scalars, the InfoNCE scratch
    dbuffer<Backend, std::int64_t> keep_, target_keep_;
    dbuffer<Backend, double> scalars_;
    // host data: masks are drawn on the host (counter-based RNG) and uploaded once per step
    std::vector<std::int64_t> ids_, target_ids_, keep_host_, target_keep_host_;
    std::vector<T> mask_host_;
    std::vector<double> noise_;
    std::vector<T> simmim_mask_;
    std::vector<long> block_order_;
};

}  // namespace lcmae::models
