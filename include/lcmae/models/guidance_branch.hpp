// lcmae/models/guidance_branch.hpp - LC-MAE's guidance (SPEC 3): pool the online tokens, run the
// projector and predictor heads, pool the target's tokens and run its EMA projector, the guidance
// loss L_GG, and un-pool its gradient back onto the online tokens. LcmaeModel owns one of these and
// orchestrates: it runs the encoders and hands over their outputs.
//
// Pairs: the Symmetric schedule regresses online view v onto target view 1 - v (weights 1/2 each),
// the Paper schedule online view 1 onto target view 2. Global guidance pools (mean of the visible
// tokens, or CLS); token-wise guidance regresses every visible token onto the target token at the
// same position; Both does the two. Online features of every view go through the heads first, so
// each BatchNorm layer sees view 1 then view 2 (its own batch statistics per view).
//
// Guided tokens "visible + mask" (Table 5e, SPEC 3 "Guided tokens") pool the DECODED tokens instead:
// the mean of the MAE decoder's outputs at all L positions (visible and mask; after decoder_norm,
// before decoder_pred) on the online side, and of the target's EMA decoder copy over all its tokens
// on the target side; the head input width is then the decoder's. The gradient goes back to the
// decoded tokens, and through the decoder's blocks to the mask token and the visible tokens.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

#include "lcmae/core/arena.hpp"
#include "lcmae/models/model_spec.hpp"
#include "lcmae/nn/mlp_head.hpp"

namespace lcmae::models {

template <class T, class Backend = backend::Cpu>
class GuidanceBranch {
public:
    using Ptr = dptr<Backend, T>;
    using CPtr = dptr<Backend, const T>;
    using Ids = dptr<Backend, const std::int64_t>;
    /// L_GG's terms go to scalars[0 .. kTerms): [2 kind + pair], kind 0 global, 1 token-wise.
    static constexpr long kTerms = 4;

    /// What one step hands over. latent: the online encoder output, views after each other
    /// ((V B, N_on, D)); tlat: the target encoder output ((TV B, 1 + Kt, D)); keep: the online keep
    /// lists (V B, K); mask: SimMIM's (B, L) mask (null otherwise); d_latent: where the guidance
    /// gradient is ADDED; scalars: kTerms backend doubles for the loss terms.
    /// Table 5e only: decoded, the online decoder's decoded tokens ((V B, 1 + L, Dd)); tdecoded, the
    /// target decoder's ((TV B, 1 + L, Dd)); d_decoded, where their gradient is ADDED (d_latent then
    /// gets nothing from the branch: the decoder's backward carries it to the encoder).
    struct Step {
        CPtr latent, tlat;
        Ids keep;
        CPtr mask;
        Ptr d_latent;
        CPtr decoded, tdecoded;
        Ptr d_decoded;
        dptr<Backend, double> scalars;
        long B = 0;
        double loss_scale = 1.0;
    };

    GuidanceBranch() = default;
    /// Plans the heads (online arena P), the target's projector in the target arena Pt, and the
    /// branch's activations in A.
    GuidanceBranch(ParamArena<T, Backend>& P, ParamArena<T, Backend>& Pt, ActivationArena<T, Backend>& A,
                   const ModelSpec& spec, long K, long Kt, long views)
        : spec_(spec), K_(K), Kt_(Kt), views_(views) {
        const long B = spec.max_batch, D = spec.encoder.dim;
        const long rows = token_wise() ? B * K : B;
        const int calls = 2 * int(views);  // [global view v] = v, [token-wise view v] = 2 + v
        // Guided tokens "visible + mask" (Table 5e) pool decoded tokens, of the decoder's width
        Fi_ = decoded_tokens() ? spec.decoder.dim : D;
        head_ = nn::MlpHead<T, Backend>(P, A, "head", {Fi_, spec.head_hidden, D, spec.projector_depth, rows, calls});
        predictor_ = nn::MlpHead<T, Backend>(P, A, "predictor", {D, spec.head_hidden, D, spec.predictor_depth, rows, calls});
        target_head_ = nn::MlpHead<T, Backend>(Pt, A, "head", {Fi_, spec.head_hidden, D, spec.projector_depth, rows, 1});
        const long feat = views * B * (token_wise() ? K : 1) * D;
        const long wide = views * B * (token_wise() ? K : 1) * std::max(D, Fi_);  // head inputs
        feat_ = A.reserve(wide);
        d_feat_ = A.reserve(wide);
        tfeat_ = A.reserve(wide);
        t_ = A.reserve(feat);
        dq_ = A.reserve(feat);
        if (spec.loss == GuidanceLoss::InfoNCE)
            infonce_scratch_.resize(static_cast<std::size_t>(ops::infonce_scratch_size(rows, D)));
    }

    /// Data-parallel training: the online heads' BatchNorm layers use the global batch's statistics
    /// (SyncBatchNorm). The target's projector runs in eval mode (running statistics): no sync.
    void set_reducer(const dist::Reducer<Backend>* r) {
        head_.set_reducer(r);
        predictor_.set_reducer(r);
    }

    /// SPEC 3 initialisation of the online heads (the target's projector is copied from them).
    template <class HostParams>
    void init(HostParams& P, std::uint64_t seed) const {
        head_.init(P, seed);
        predictor_.init(P, seed);
    }

    /// L_GG into s.scalars; adds alpha * dL_GG/dlatent (times loss_scale) into s.d_latent, or for
    /// Table 5e alpha * dL_GG/d(decoded tokens) into s.d_decoded.
    void run(const Backend& ctx, ParamArena<T, Backend>& P, ParamArena<T, Backend>& Pt,
             ActivationArena<T, Backend>& A, const Step& s) {
        const long B = s.B, D = spec_.encoder.dim, L = spec_.encoder.tokens(), V = views_;
        const long N_on = spec_.baseline == Baseline::SimMim ? 1 + L : 1 + K_;
        const long Dd = Fi_, N_dec = 1 + L;  // Table 5e: the decoded sequences (cls row first)
        const bool cls = spec_.pool == PoolTokens::Cls;
        const CPtr no_weights(nullptr);
        struct Pair { long v, u; double w; };  // (online view v, target view u, weight)
        static constexpr Pair kSymmetric[2] = {{0, 1, 0.5}, {1, 0, 0.5}};
        static constexpr Pair kPaper[1] = {{0, 0, 1.0}};
        const std::span<const Pair> pairs = V == 2 ? std::span<const Pair>(kSymmetric) : std::span<const Pair>(kPaper);
        const double scale = spec_.alpha * s.loss_scale;
        const bool global = spec_.guidance != GuidanceType::TokenWise;
        const bool tokens = spec_.guidance != GuidanceType::Global;
        for (double& w : weight_) w = 0;
        for (int kind = 0; kind < 2; ++kind) {
            if ((kind == 0 && !global) || (kind == 1 && !tokens)) continue;
            const long R = kind == 0 ? B : B * K_;  // rows per view
            const long Fw = kind == 0 ? Fi_ : D;      // width of the head inputs
            const Ptr feat = A.at(feat_), tfeat = A.at(tfeat_), tbuf = A.at(t_), dq = A.at(dq_);
            CPtr q[2] = {nullptr, nullptr};
            for (long v = 0; v < V; ++v) {
                const Ptr f = feat + v * R * Fw;
                const CPtr lat = s.latent + v * B * N_on * D;
                if (kind == 0 && decoded_tokens()) {  // mean over all L positions, visible and mask
                    pool_tokens(ctx, B, N_dec, Dd, s.decoded + v * B * N_dec * Dd, no_weights, false, f);
                } else if (kind == 0) {
                    pool_tokens(ctx, B, N_on, D, lat, s.mask, cls, f);  // SimMIM pools its unmasked tokens
                } else {
                    copy_rows(ctx, B, K_ * D, lat + D, N_on * D, f, K_ * D);
                }
                const int call = int(kind * 2 + v);
                const CPtr h = head_.forward(ctx, P, A, CPtr(f), R, true, call);
                q[v] = predictor_.forward(ctx, P, A, h, R, true, call);
            }
            fill(ctx, V * R * D, T(0), dq);
            for (std::size_t pi = 0; pi < pairs.size(); ++pi) {
                const Pair& pr = pairs[pi];
                // target features of view u matching online view v
                const CPtr tl = s.tlat + pr.u * B * (1 + Kt_) * D;
                const Ptr tf = tfeat + pr.v * R * Fw;
                if (kind == 0 && decoded_tokens()) {  // the target decoded all of its tokens
                    pool_tokens(ctx, B, N_dec, Dd, s.tdecoded + pr.u * B * N_dec * Dd, no_weights, false, tf);
                } else if (kind == 0) {
                    pool_tokens(ctx, B, 1 + Kt_, D, tl, no_weights, cls, tf);
                } else {
                    gather_rows(ctx, B, 1 + L, K_, D, tl + D, s.keep + pr.v * B * K_, tf);
                }
                const CPtr t = target_head_.forward(ctx, Pt, A, CPtr(tf), R, false, 0);
                copy(ctx, R * D, t, tbuf + pr.v * R * D);
                const long term = kind * 2 + long(pi);
                weight_[term] = pr.w;
                loss(ctx, q[pr.v], CPtr(tbuf + pr.v * R * D), R, D, dq + pr.v * R * D, scale * pr.w, s.scalars + term);
            }
            for (long v = 0; v < V; ++v) {
                const int call = int(kind * 2 + v);
                const Ptr dh = A.at(d_feat_);  // (R, D) scratch
                predictor_.backward(ctx, P, A, CPtr(dq + v * R * D), dh, R, call);
                const Ptr df = feat + v * R * Fw;  // features no longer needed: reuse as d_features
                head_.backward(ctx, P, A, CPtr(dh), df, R, call);
                const Ptr dl = s.d_latent + v * B * N_on * D;
                if (kind == 0 && decoded_tokens()) {
                    unpool_tokens_add(ctx, B, N_dec, Dd, CPtr(df), no_weights, false, s.d_decoded + v * B * N_dec * Dd);
                } else if (kind == 0) {
                    unpool_tokens_add(ctx, B, N_on, D, CPtr(df), s.mask, cls, dl);
                } else {
                    add_rows(ctx, B, K_ * D, CPtr(df), K_ * D, dl + D, N_on * D);
                }
            }
        }
    }

    /// L_GG from the downloaded terms (host): sum_term weight * value, in term order.
    double combine(const double* terms) const {
        double gg = 0;
        for (long i = 0; i < kTerms; ++i) gg += weight_[i] * terms[i];
        return gg;
    }

    double flops_forward(long rows) const { return head_.flops_forward(rows) + predictor_.flops_forward(rows); }
    double flops_target(long rows) const { return target_head_.flops_forward(rows); }
    bool token_wise() const { return spec_.guidance != GuidanceType::Global; }

private:
    bool decoded_tokens() const { return spec_.guided == GuidedTokens::VisibleAndMask; }

    void loss(const Backend& ctx, CPtr q, CPtr t, long R, long D, Ptr dq, double scale, dptr<Backend, double> out) {
        switch (spec_.loss) {
            case GuidanceLoss::Cosine: guidance_cosine(ctx, R, D, q, t, scale, dq, out); return;
            case GuidanceLoss::InfoNCE:
                guidance_infonce(ctx, R, D, spec_.temperature, q, t, scale, dq, infonce_scratch_.data(), out);
                return;
            case GuidanceLoss::SmoothL1: guidance_smooth_l1(ctx, R, D, spec_.smooth_l1_beta, q, t, scale, dq, out); return;
            case GuidanceLoss::None: break;
        }
    }

    ModelSpec spec_{};
    long K_ = 0, Kt_ = 0, views_ = 1;
    long Fi_ = 0;  // width of the projector input (the decoder width for Table 5e)
    nn::MlpHead<T, Backend> head_, predictor_, target_head_;
    Slot feat_, d_feat_, tfeat_, t_, dq_;
    dbuffer<Backend, double> infonce_scratch_;
    double weight_[kTerms] = {0, 0, 0, 0};  // host: each term's weight in L_GG
};

}  // namespace lcmae::models
