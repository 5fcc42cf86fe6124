// lcmae/models/lcmae_model.hpp - the LC-MAE engine (SPEC 2-3): online encoder + MAE decoder
// (or SimMIM's mask-token encoder + linear decoder), projector/predictor heads, and the EMA target
// (encoder + projector, eval mode, no gradient). Plain MAE is the same engine with loss None:
// no target, no heads, nothing extra computed.
//
// One call of forward_backward() is one micro-batch: it computes L = L_MIM + alpha L_GG and
// ACCUMULATES every online gradient (scaled by loss_scale, e.g. 1/k for k accumulation steps).
// The optimiser step and the EMA update are the trainer's (train/trainer.hpp).
//
// Symmetric schedule: the two online views share one encoder pass over a batch of 2B (the keep
// sets have the same size), and the target runs once over both full views (2B). Heads run once per
// view, so each view gets its own BatchNorm batch statistics (view 1 first).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "lcmae/models/losses.hpp"
#include "lcmae/models/mae_decoder.hpp"
#include "lcmae/models/masking.hpp"
#include "lcmae/models/model_spec.hpp"
#include "lcmae/models/vit_encoder.hpp"
#include "lcmae/nn/mlp_head.hpp"

namespace lcmae::models {

template <class T>
class LcmaeModel {
public:
    explicit LcmaeModel(const ModelSpec& spec, std::uint64_t seed = 0) : spec_(spec) {
        validate(spec);
        const auto& e = spec.encoder;
        const long B = spec.max_batch, L = e.tokens(), D = e.dim;
        simmim_ = spec.baseline == Baseline::SimMim;
        views_ = spec.symmetric() && spec.guided_enabled() ? 2 : 1;
        K_ = simmim_ ? L : len_keep(L, spec.mask_ratio);
        Kt_ = L;
        if (views_ == 2)
            LCMAE_CHECK(2 * K_ <= L, "the Symmetric view schedule needs disjoint keep sets, so a mask ratio >= 0.5; got "
                                         << spec.mask_ratio << " (keeps " << K_ << " of " << L << " tokens per view)");
        // ---- online model
        encoder_ = std::make_unique<VitEncoder<T>>(P_, e, EncoderOptions{.max_batch = views_ * B, .max_keep = K_, .mask_token = simmim_});
        if (simmim_) {
            simmim_decoder_ = nn::Linear<T>(P_, "decoder", D, e.patch_dim());
        } else {
            decoder_ = std::make_unique<MaeDecoder<T>>(P_, e, spec.decoder, B, K_);
        }
        if (spec.guided_enabled()) {
            const long rows = token_wise() ? B * K_ : B;
            const int calls = 2 * views_;  // [global view v] = v, [token-wise view v] = 2 + v
            // Guided tokens "visible + mask" (Table 5e) pool the decoder-side sequence, of the decoder's width
            Fi_ = decoder_side() ? spec.decoder.dim : D;
            head_ = nn::MlpHead<T>(P_, A_, "head", {Fi_, spec.head_hidden, D, spec.projector_depth, rows, calls});
            predictor_ = nn::MlpHead<T>(P_, A_, "predictor", {D, spec.head_hidden, D, spec.predictor_depth, rows, calls});
            // ---- target: encoder + projector, same names, its own arena
            Kt_ = spec.target_mask_ratio > 0 ? len_keep(L, spec.target_mask_ratio) : L;
            target_encoder_ = std::make_unique<VitEncoder<T>>(
                Pt_, e, EncoderOptions{.max_batch = views_ * B, .max_keep = Kt_, .forward_only = true});
            if (decoder_side()) target_embed_ = nn::Linear<T>(Pt_, "decoder_embed", D, spec.decoder.dim);
            target_head_ = nn::MlpHead<T>(Pt_, A_, "head", {Fi_, spec.head_hidden, D, spec.projector_depth, rows, 1});
        }
        // ---- model-level buffers
        images_ = A_.reserve(views_ * B * e.channels * e.image * e.image);
        mask_ = A_.reserve(B * L);
        target_patches_ = A_.reserve(B * L * e.patch_dim());
        d_pred_ = A_.reserve(B * L * e.patch_dim());
        d_latent_ = A_.reserve(views_ * B * (1 + K_) * D);
        d_lat1_ = A_.reserve(B * (1 + K_) * D);  // the decoder writes here; the guidance adds into d_latent_
        if (simmim_) {
            rows_ = A_.reserve(B * L * D);
            pred_ = A_.reserve(B * L * e.patch_dim());
            d_rows_ = A_.reserve(B * L * D);
        }
        const long feat = views_ * B * (token_wise() ? K_ : 1) * D;
        const long wide = views_ * B * (token_wise() ? K_ : 1) * std::max(D, Fi_);  // head inputs
        feat_ = A_.reserve(wide);
        d_feat_ = A_.reserve(wide);
        tfeat_ = A_.reserve(wide);
        if (decoder_side()) {
            mean_visible_ = A_.reserve(views_ * B * D);
            d_mean_ = A_.reserve(B * D);
            d_embed_ = A_.reserve(B * Fi_);
            target_pool_ = A_.reserve(B * D);
        }
        t_ = A_.reserve(feat);
        dq_ = A_.reserve(feat);
        A_.allocate();
        keep_.resize(static_cast<std::size_t>(views_ * B * K_));
        if (spec.loss == GuidanceLoss::InfoNCE)
            infonce_scratch_.resize(infonce_scratch_size((token_wise() ? B * K_ : B), D));
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
        }
        P_.allocate();
        encoder_->init(P_, seed);
        if (decoder_) decoder_->init(P_, seed);
        if (simmim_) simmim_decoder_.init(P_, seed);
        if (spec.guided_enabled()) {
            head_.init(P_, seed);
            predictor_.init(P_, seed);
            Pt_.allocate();
            copy_online_to_target();
        }
    }
    LcmaeModel(const LcmaeModel&) = delete;
    LcmaeModel& operator=(const LcmaeModel&) = delete;

    /// SPEC 3: the target starts as an exact copy of the online encoder + projector.
    void copy_online_to_target() {
        for (const auto& te : Pt_.entries()) {
            const auto& oe = P_.entry(te.name);
            std::memcpy(Pt_.value(te.slot), P_.value(oe.slot), sizeof(T) * te.slot.count);
        }
    }

    /// One micro-batch with masks drawn from `rng`. view1, view2: (B, C, H, W); view2 unused by
    /// plain MAE (may be null).
    StepLosses forward_backward(const backend::Cpu& ctx, const T* view1, const T* view2, long B, Rng& rng,
                                double loss_scale = 1.0) {
        const long L = spec_.encoder.tokens();
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
    StepLosses forward_backward_mae(const backend::Cpu& ctx, const T* view1, const T* view2, long B,
                                    const std::int64_t* ids_shuffle, double loss_scale = 1.0,
                                    const std::int64_t* target_ids_shuffle = nullptr) {
        LCMAE_CHECK(!simmim_, "this model is LC-SimMIM: call forward_backward_simmim");
        check_batch(B, view1, view2);
        if (spec_.guided_enabled() && Kt_ < spec_.encoder.tokens()) {
            LCMAE_CHECK(target_ids_shuffle != nullptr, "target mask ratio " << spec_.target_mask_ratio
                                                                             << " needs target_ids_shuffle");
            const long L = spec_.encoder.tokens(), TB = views_ * B;
            check_shuffle(target_ids_shuffle, TB, L);
            for (long b = 0; b < TB; ++b)
                for (long k = 0; k < Kt_; ++k) target_keep_[b * Kt_ + k] = target_ids_shuffle[b * L + k];
        }
        const auto& e = spec_.encoder;
        const long L = e.tokens(), D = e.dim, K = K_, V = views_, img = e.channels * e.image * e.image;
        check_shuffle(ids_shuffle, B, L);
        T* images = A_.at(images_);
        std::memcpy(images, view1, sizeof(T) * B * img);
        if (V == 2) std::memcpy(images + B * img, view2, sizeof(T) * B * img);
        for (long v = 0; v < V; ++v) keep_set(ids_shuffle, B, L, v * K, K, keep_.data() + v * B * K, v == 0 ? A_.at(mask_) : (T*)nullptr);
        // ---- MIM on view 1
        const T* latent = encoder_->forward(ctx, P_, images, V * B, keep_.data(), K);
        const T* pred = decoder_->forward(ctx, P_, latent, B, keep_.data(), K);
        patchify_target(geom(), view1, B, A_.at(target_patches_));
        StepLosses out;
        out.mim = norm_pix_mse(pred, A_.at(target_patches_), A_.at(mask_), B, L, e.patch_dim(), spec_.norm_pix,
                               A_.at(d_pred_), loss_scale);
        T* d_latent = A_.at(d_latent_);
        std::memset(d_latent, 0, sizeof(T) * V * B * (1 + K) * D);
        // ---- guidance (adds into d_latent)
        if (spec_.guided_enabled()) out.gg = guidance(ctx, latent, view1, view2, B, loss_scale);
        decoder_->backward(ctx, P_, A_.at(d_pred_), A_.at(d_lat1_));
        add_inplace(d_latent, A_.at(d_lat1_), B * (1 + K) * D);
        encoder_->backward(ctx, P_, d_latent);
        out.total = out.mim + spec_.alpha * out.gg;
        return out;
    }

    /// LC-SimMIM with an injected per-token mask w (B, L), 1 = masked (Paper schedule).
    StepLosses forward_backward_simmim(const backend::Cpu& ctx, const T* view1, const T* view2, long B, const T* w,
                                       double loss_scale = 1.0) {
        LCMAE_CHECK(simmim_, "this model is not LC-SimMIM: call forward_backward_mae");
        check_batch(B, view1, view2);
        const auto& e = spec_.encoder;
        const long L = e.tokens(), D = e.dim, Pd = e.patch_dim(), N = 1 + L;
        long masked = 0;
        for (long i = 0; i < B * L; ++i) {
            LCMAE_CHECK(w[i] == T(0) || w[i] == T(1), "SimMIM mask values must be 0 or 1, got " << w[i] << " at " << i);
            masked += w[i] == T(1);
        }
        LCMAE_CHECK(masked > 0 && masked < B * L, "the SimMIM mask must mask some but not all tokens");
        std::memcpy(A_.at(mask_), w, sizeof(T) * B * L);
        const T* latent = encoder_->forward_masked(ctx, P_, view1, B, w);
        T* rows = A_.at(rows_);
        for (long b = 0; b < B; ++b) std::memcpy(rows + b * L * D, latent + (b * N + 1) * D, sizeof(T) * L * D);
        simmim_decoder_.forward(ctx, P_, rows, A_.at(pred_), B * L);
        patchify_target(geom(), view1, B, A_.at(target_patches_));
        StepLosses out;
        out.mim = simmim_l1(A_.at(pred_), A_.at(target_patches_), w, B, L, Pd, e.patch * e.patch, e.channels,
                            A_.at(d_pred_), loss_scale);
        T* d_latent = A_.at(d_latent_);
        std::memset(d_latent, 0, sizeof(T) * B * N * D);
        if (spec_.guided_enabled()) out.gg = guidance(ctx, latent, view1, view2, B, loss_scale);
        T* d_rows = A_.at(d_rows_);
        simmim_decoder_.backward(ctx, P_, rows, A_.at(d_pred_), d_rows, B * L);
        for (long b = 0; b < B; ++b) add_inplace(d_latent + (b * N + 1) * D, d_rows + b * L * D, L * D);
        encoder_->backward(ctx, P_, d_latent);
        out.total = out.mim + spec_.alpha * out.gg;
        return out;
    }

    ParamArena<T>& params() noexcept { return P_; }
    const ParamArena<T>& params() const noexcept { return P_; }
    /// The target (EMA) arena; empty for plain MAE.
    ParamArena<T>& target_params() noexcept { return Pt_; }
    const ParamArena<T>& target_params() const noexcept { return Pt_; }
    bool has_target() const noexcept { return spec_.guided_enabled(); }
    const ModelSpec& spec() const noexcept { return spec_; }
    VitEncoder<T>& encoder() noexcept { return *encoder_; }
    long kept_tokens() const noexcept { return K_; }
    long online_views() const noexcept { return views_; }
    /// Activation memory (bytes) of the model-level buffers and every component.
    std::size_t activation_bytes() const {
        std::size_t b = A_.bytes() + encoder_->activations().bytes();
        if (target_encoder_) b += target_encoder_->activations().bytes();
        return b;
    }

    /// Analytic FLOPs of one forward_backward on B samples per view (GEMMs and attention products).
    double flops_step(long B) const {
        const long V = views_, L = spec_.encoder.tokens();
        double f = encoder_->flops_forward(V * B, K_) + encoder_->flops_backward(V * B, K_);
        if (decoder_) f += 3.0 * decoder_->flops_forward(B, K_);
        if (simmim_) f += 3.0 * simmim_decoder_.flops_forward(B * L);
        if (spec_.guided_enabled()) {
            const long rows = V * B * (token_wise() ? K_ : 1) * (spec_.guidance == GuidanceType::Both ? 2 : 1);
            f += 3.0 * (head_.flops_forward(rows) + predictor_.flops_forward(rows));
            f += target_encoder_->flops_forward(V * B, L) + target_head_.flops_forward(rows);
        }
        return f;
    }

private:
    static void validate(const ModelSpec& s) {
        LCMAE_CHECK(s.max_batch >= 1, "max_batch must be >= 1, got " << s.max_batch);
        LCMAE_CHECK(s.alpha >= 0, "alpha must be non-negative, got " << s.alpha);
        if (s.guided_enabled()) {
            LCMAE_CHECK(s.projector_depth >= 0 && s.predictor_depth >= 0, "head depths must be >= 0");
            LCMAE_CHECK(s.head_hidden >= 1, "head hidden width must be >= 1, got " << s.head_hidden);
            if (s.guided == GuidedTokens::VisibleAndMask)
                LCMAE_CHECK(s.baseline == Baseline::Mae && s.guidance == GuidanceType::Global && s.pool == PoolTokens::Visible,
                            "guided tokens 'visible + mask' (Table 5e) pool MAE's decoder-side sequence: they need the MAE "
                            "baseline, global guidance and visible-token pooling");
            if (s.guidance != GuidanceType::Global) {
                LCMAE_CHECK(s.pool == PoolTokens::Visible, "token-wise guidance regresses visible tokens; pooling must be Visible");
                LCMAE_CHECK(s.target_mask_ratio == 0.0, "token-wise guidance needs the target token at every online "
                                                        "position, so the target mask ratio must be 0, got "
                                                            << s.target_mask_ratio);
            }
            LCMAE_CHECK(s.target_mask_ratio >= 0.0 && s.target_mask_ratio < 1.0,
                        "target mask ratio must lie in [0, 1), got " << s.target_mask_ratio);
            LCMAE_CHECK(s.target_mask_ratio == 0.0 || s.baseline == Baseline::Mae,
                        "a masked target (Table 5c) is implemented for the MAE baseline only");
        }
        if (s.baseline == Baseline::SimMim) {
            LCMAE_CHECK(s.views == ViewSchedule::Paper,
                        "LC-SimMIM supports the Paper view schedule only (its encoder sees every token, so there are no "
                        "disjoint keep sets)");
            LCMAE_CHECK(s.guidance == GuidanceType::Global, "LC-SimMIM supports global guidance only");
        }
    }
    bool token_wise() const { return spec_.guidance != GuidanceType::Global; }
    nn::PatchGeometry geom() const { return {spec_.encoder.channels, spec_.encoder.image, spec_.encoder.patch}; }
    void check_batch(long B, const T* view1, const T* view2) const {
        LCMAE_CHECK(B >= 1 && B <= spec_.max_batch, "batch " << B << " is outside the planned [1, " << spec_.max_batch << "]");
        LCMAE_CHECK(view1 != nullptr, "view1 is null");
        LCMAE_CHECK(!spec_.guided_enabled() || view2 != nullptr, "LC-MAE needs two views; view2 is null");
        if (spec_.guided_enabled())
            LCMAE_CHECK(spec_.loss != GuidanceLoss::InfoNCE || B >= 2, "InfoNCE needs a batch of at least 2");
    }
    static void add_inplace(T* y, const T* x, long n) {
        for (long i = 0; i < n; ++i) y[i] += x[i];
    }

    // Guidance loss L_GG; adds alpha * dL_GG/dlatent (times loss_scale) into d_latent.
    double guidance(const backend::Cpu& ctx, const T* latent, const T* /*view1: already in images_*/, const T* view2, long B,
                    double loss_scale) {
        const auto& e = spec_.encoder;
        const long L = e.tokens(), D = e.dim, V = views_;
        const long N_on = simmim_ ? 1 + L : 1 + K_;
        // target: both full views (Symmetric) or view 2 (Paper); eval mode, no gradient
        T* timgs = A_.at(images_);  // reuse: view 1 then view 2, as for the online pass
        const long img = e.channels * e.image * e.image;
        long TV = 1;
        if (V == 2) {
            TV = 2;  // images_ already holds [view1; view2]
        } else {
            std::memcpy(timgs, view2, sizeof(T) * B * img);
        }
        const bool target_masked = Kt_ < L;
        const T* tlat = target_encoder_->forward(ctx, Pt_, timgs, TV * B, target_masked ? target_keep_.data() : nullptr, Kt_);
        // pairs (online view v, target view u, weight)
        struct Pair { long v, u; double w; };
        static constexpr Pair kSymmetric[2] = {{0, 1, 0.5}, {1, 0, 0.5}};
        static constexpr Pair kPaper[1] = {{0, 0, 1.0}};
        const std::span<const Pair> pairs = V == 2 ? std::span<const Pair>(kSymmetric) : std::span<const Pair>(kPaper);
        double gg = 0;
        T* d_latent = A_.at(d_latent_);
        const double scale = spec_.alpha * loss_scale;
        const bool global = spec_.guidance != GuidanceType::TokenWise;
        const bool tokens = spec_.guidance != GuidanceType::Global;
        // Online features for every view first (so BatchNorm sees view 1 then view 2 in each layer).
        for (int kind = 0; kind < 2; ++kind) {
            if ((kind == 0 && !global) || (kind == 1 && !tokens)) continue;
            const long R = kind == 0 ? B : B * K_;  // rows per view
            const long Fw = kind == 0 ? Fi_ : D;      // width of the head inputs
            T* feat = A_.at(feat_);
            T* tfeat = A_.at(tfeat_);
            T* tbuf = A_.at(t_);
            T* dq = A_.at(dq_);
            const T* q[2] = {nullptr, nullptr};
            for (long v = 0; v < V; ++v) {
                T* f = feat + v * R * Fw;
                const T* lat = latent + v * B * N_on * D;
                if (kind == 0 && decoder_side()) {
                    T* m = A_.at(mean_visible_) + v * B * D;
                    pool_online(lat, B, N_on, m);
                    decoder_side_pool(ctx, m, B, f);
                } else if (kind == 0) pool_online(lat, B, N_on, f);
                else for (long b = 0; b < B; ++b) std::memcpy(f + b * K_ * D, lat + (b * N_on + 1) * D, sizeof(T) * K_ * D);
                const int call = int(kind * 2 + v);
                const T* h = head_.forward(ctx, P_, A_, f, R, true, call);
                q[v] = predictor_.forward(ctx, P_, A_, h, R, true, call);
            }
            std::memset(dq, 0, sizeof(T) * V * R * D);
            for (const auto& pr : pairs) {
                // target features of view u matching online view v
                const T* tl = tlat + pr.u * B * (1 + Kt_) * D;
                T* tf = tfeat + pr.v * R * Fw;
                if (kind == 0 && decoder_side()) {
                    // the target's decoder-side sequence has no mask tokens: decoder_embed of its mean
                    pool_target(tl, B, A_.at(target_pool_));
                    target_embed_.forward(ctx, Pt_, A_.at(target_pool_), tf, B);
                } else if (kind == 0) pool_target(tl, B, tf);
                else
                    for (long b = 0; b < B; ++b)
                        for (long k = 0; k < K_; ++k)
                            std::memcpy(tf + (b * K_ + k) * D, tl + (b * (1 + L) + 1 + keep_[(pr.v * B + b) * K_ + k]) * D, sizeof(T) * D);
                const T* t = target_head_.forward(ctx, Pt_, A_, tf, R, false, 0);
                std::memcpy(tbuf + pr.v * R * D, t, sizeof(T) * R * D);
                gg += pr.w * loss(q[pr.v], tbuf + pr.v * R * D, R, D, dq + pr.v * R * D, scale * pr.w);
            }
            for (long v = 0; v < V; ++v) {
                const int call = int(kind * 2 + v);
                T* dh = A_.at(d_feat_);  // (R, D) scratch
                predictor_.backward(ctx, P_, A_, dq + v * R * D, dh, R, call);
                T* df = feat + v * R * Fw;  // features no longer needed: reuse as d_features
                head_.backward(ctx, P_, A_, dh, df, R, call);
                T* dl = d_latent + v * B * N_on * D;
                if (kind == 0 && decoder_side()) {
                    decoder_side_unpool(ctx, A_.at(mean_visible_) + v * B * D, df, B, A_.at(d_mean_));
                    unpool_online(A_.at(d_mean_), B, N_on, dl, v);
                } else if (kind == 0) unpool_online(df, B, N_on, dl, v);
                else
                    for (long b = 0; b < B; ++b) add_inplace(dl + (b * N_on + 1) * D, df + b * K_ * D, K_ * D);
            }
        }
        return gg;
    }

    double loss(const T* q, const T* t, long R, long D, T* dq, double scale) {
        switch (spec_.loss) {
            case GuidanceLoss::Cosine: return guidance_cosine(q, t, R, D, dq, scale);
            case GuidanceLoss::InfoNCE:
                return guidance_infonce(q, t, R, D, spec_.temperature, dq, scale, infonce_scratch_.data());
            case GuidanceLoss::SmoothL1: return guidance_smooth_l1(q, t, R, D, spec_.smooth_l1_beta, dq, scale);
            case GuidanceLoss::None: break;
        }
        return 0.0;
    }

    bool decoder_side() const { return spec_.guided_enabled() && spec_.guided == GuidedTokens::VisibleAndMask; }

    // Table 5e: the mean of MAE's decoder-side sequence (decoder_embed of the K visible tokens and
    // L - K mask tokens, before the decoder's pos-embed). decoder_embed is linear, so with m the mean
    // of the visible encoder tokens: pool = (K/L) (W m + b) + ((L-K)/L) mask_token - no need to
    // build the sequence, and the same formula serves view 2 of the Symmetric schedule.
    void decoder_side_pool(const backend::Cpu& ctx, const T* m, long B, T* out) const {
        const long L = spec_.encoder.tokens(), Dd = Fi_;
        const T kv = T(double(K_) / double(L)), km = T(double(L - K_) / double(L));
        decoder_->embed().forward(ctx, P_, m, out, B);
        const T* mt = P_.value(decoder_->mask_token());
        for (long b = 0; b < B; ++b)
            for (long c = 0; c < Dd; ++c) out[b * Dd + c] = kv * out[b * Dd + c] + km * mt[c];
    }
    // Backward of decoder_side_pool: d_out (B, Dd) -> d_m (B, D) written; decoder_embed and
    // mask_token gradients accumulate.
    void decoder_side_unpool(const backend::Cpu& ctx, const T* m, const T* d_out, long B, T* d_m) {
        const long L = spec_.encoder.tokens(), Dd = Fi_;
        const T kv = T(double(K_) / double(L)), km = T(double(L - K_) / double(L));
        T* dy = A_.at(d_embed_);
        T* dmt = P_.grad(decoder_->mask_token());
        for (long b = 0; b < B; ++b)
            for (long c = 0; c < Dd; ++c) {
                dy[b * Dd + c] = kv * d_out[b * Dd + c];
                dmt[c] += km * d_out[b * Dd + c];
            }
        decoder_->embed().backward(ctx, P_, m, dy, d_m, B);
    }

    // Online pooling: mean of the non-cls tokens (SimMIM: of the unmasked ones), or the cls token.
    void pool_online(const T* lat, long B, long N, T* out) const {
        const long D = spec_.encoder.dim, L = spec_.encoder.tokens();
        const T* w = A_.at(mask_);
        for (long b = 0; b < B; ++b) {
            T* o = out + b * D;
            if (spec_.pool == PoolTokens::Cls) { std::memcpy(o, lat + b * N * D, sizeof(T) * D); continue; }
            std::fill(o, o + D, T(0));
            long count = 0;
            for (long n = 1; n < N; ++n) {
                if (simmim_ && w[b * L + n - 1] != T(0)) continue;
                ++count;
                for (long c = 0; c < D; ++c) o[c] += lat[(b * N + n) * D + c];
            }
            for (long c = 0; c < D; ++c) o[c] /= T(count);
        }
    }
    void unpool_online(const T* d, long B, long N, T* dl, long /*view*/) const {
        const long D = spec_.encoder.dim, L = spec_.encoder.tokens();
        const T* w = A_.at(mask_);
        for (long b = 0; b < B; ++b) {
            const T* g = d + b * D;
            if (spec_.pool == PoolTokens::Cls) { add_inplace(dl + b * N * D, g, D); continue; }
            long count = 0;
            for (long n = 1; n < N; ++n) count += !(simmim_ && w[b * L + n - 1] != T(0));
            for (long n = 1; n < N; ++n) {
                if (simmim_ && w[b * L + n - 1] != T(0)) continue;
                for (long c = 0; c < D; ++c) dl[(b * N + n) * D + c] += g[c] / T(count);
            }
        }
    }
    // Target pooling over its (possibly masked, Table 5c) visible tokens, or its cls token.
    void pool_target(const T* lat, long B, T* out) const {
        const long D = spec_.encoder.dim, N = 1 + Kt_;
        for (long b = 0; b < B; ++b) {
            T* o = out + b * D;
            if (spec_.pool == PoolTokens::Cls) { std::memcpy(o, lat + b * N * D, sizeof(T) * D); continue; }
            std::fill(o, o + D, T(0));
            for (long n = 1; n < N; ++n)
                for (long c = 0; c < D; ++c) o[c] += lat[(b * N + n) * D + c];
            for (long c = 0; c < D; ++c) o[c] /= T(N - 1);
        }
    }

    ModelSpec spec_;
    bool simmim_ = false;
    long views_ = 1, K_ = 0;
    long Kt_ = 0;  // tokens the target sees (all unless Table 5c masks it)
    long Fi_ = 0;  // width of the projector input (the decoder width for Table 5e)
    ParamArena<T> P_, Pt_;
    mutable ActivationArena<T> A_;
    std::unique_ptr<VitEncoder<T>> encoder_, target_encoder_;
    std::unique_ptr<MaeDecoder<T>> decoder_;
    nn::Linear<T> simmim_decoder_, target_embed_;
    nn::MlpHead<T> head_, predictor_, target_head_;
    Slot mean_visible_, d_mean_, d_embed_, target_pool_;
    Slot images_, d_lat1_, mask_, target_patches_, d_pred_, d_latent_, rows_, pred_, d_rows_, feat_, d_feat_, tfeat_, t_, dq_;
    std::vector<std::int64_t> keep_, ids_, target_ids_, target_keep_;
    std::vector<double> noise_, infonce_scratch_;
    std::vector<T> simmim_mask_;
    std::vector<long> block_order_;
};

}  // namespace lcmae::models
