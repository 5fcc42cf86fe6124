// lcmae/lcmae.hpp - the umbrella header and the typed front end (DESIGN.md, "What a user writes"):
//
//   #include <lcmae/lcmae.hpp>
//   using Model = lcmae::LCMAE<lcmae::vit::Base16, lcmae::loss::Cosine, lcmae::crop::SimpleResized>;
//   using Mae   = lcmae::LCMAE<lcmae::vit::Base16, lcmae::loss::None, lcmae::crop::RandomResized>;
//   struct TokenWise : lcmae::recipe::Default { using Guidance = lcmae::guidance::TokenWise; };
//   using Row = lcmae::LCMAE<lcmae::vit::Small16, lcmae::loss::Cosine, lcmae::crop::SimpleResized,
//                            lcmae::backend::Cpu, TokenWise>;
//
//   Model m(lcmae::RunConfig{.alpha = 0.25, .max_batch = 64});
//   auto losses = m.forward_backward(ctx, view1, view2, B, rng);
//
// Structure is the type (checked here, at compile time, with a sentence for each invalid
// combination); numbers are a RunConfig (checked by the engine at run time, lcmae::Error).
//
// Everything public is included EXCEPT lcmae/data/ (it needs OpenCV): include lcmae/data/... yourself.
#pragma once

#include <cstdint>
#include <type_traits>

#include "lcmae/backend/backend.hpp"
#include "lcmae/backend/cpu.hpp"
#include "lcmae/core/arena.hpp"
#include "lcmae/core/buffer.hpp"
#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/core/shape.hpp"
#include "lcmae/io/atomic_file.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/json.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/io/timm_import.hpp"
#include "lcmae/io/train_state.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/models/model_spec.hpp"
#include "lcmae/models/spec_rules.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/ema.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/lars.hpp"
#include "lcmae/optim/layer_decay.hpp"
#include "lcmae/optim/schedule.hpp"
#include "lcmae/optim/state.hpp"
#include "lcmae/policies/baseline.hpp"
#include "lcmae/policies/crop.hpp"
#include "lcmae/policies/guidance.hpp"
#include "lcmae/policies/loss.hpp"
#include "lcmae/policies/tokens.hpp"
#include "lcmae/policies/views.hpp"
#include "lcmae/recipe.hpp"
#include "lcmae/train/trainer.hpp"
#include "lcmae/vit/config.hpp"

namespace lcmae {

/// The run-time numbers of a model (structure is the LCMAE type). The trainer's config fills it.
struct RunConfig {
    double mask_ratio = 0.75;         // MAE random masking (Symmetric views need >= 0.5)
    double simmim_mask_ratio = 0.6;   // SimMIM block masking (baseline::SimMim only)
    double target_mask_ratio = 0.0;   // Table 5c: the target sees every token (0) or a random subset
    double alpha = 0.25;              // L = L_MIM + alpha L_GG (forced to 0 with loss::None); Table B
    double temperature = 0.2;         // loss::InfoNCE
    double smooth_l1_beta = 1.0;      // loss::SmoothL1
    bool norm_pix = true;             // MAE's normalised-pixel target
    long max_batch = 64;              // per view; buffers are planned for it
    std::uint64_t seed = 0;           // parameter initialisation
};

namespace detail {
/// The structural part of LCMAE<...>::spec(), a free function so the class's static_asserts can
/// evaluate it while the class is still incomplete.
template <class B, class Loss, class Recipe>
constexpr models::ModelSpec structural_spec() {
    models::ModelSpec s{};
    s.encoder = B::dims();
    s.decoder = models::DecoderDims{Recipe::decoder_dim, Recipe::decoder_depth, Recipe::decoder_heads};
    s.head_hidden = Recipe::head_hidden;
    s.projector_depth = Recipe::projector_depth;
    s.predictor_depth = Recipe::predictor_depth;
    s.loss = Loss::kind;
    s.guidance = Recipe::Guidance::kind;
    s.pool = Recipe::Pool::kind;
    s.guided = Recipe::Guided::kind;
    s.views = Recipe::Views::kind;
    s.baseline = Recipe::Baseline::kind;
    return s;
}
}  // namespace detail

/// An LC-MAE pre-training model, fully described by its type:
///   B        the backbone (vit::Config<...> or a preset such as vit::Base16),
///   Loss     the guidance loss (loss::Cosine, InfoNCE, SmoothL1; loss::None = plain MAE / SimMIM),
///   Crop     the crop that makes the views (the data pipeline reads it: lcmae/data/views.hpp),
///   Backend  backend::Cpu (default) or any type satisfying backend::Backend (backend::Cuda from
///            lcmae/backend/cuda.cuh; include its header before instantiating),
///   Recipe   recipe::Default or a struct derived from it (lcmae/recipe.hpp).
/// It owns the engine (models::LcmaeModel<float, Backend>) built from spec(RunConfig).
template <vit::Backbone B, loss::LossPolicy Loss, crop::CropPolicy Crop, class Backend = backend::Cpu,
          class Recipe = recipe::Default>
class LCMAE {
    static_assert(::lcmae::backend::Backend<Backend, float>,
                  "LCMAE: Backend must be a backend context (lcmae::backend::Cpu, lcmae::backend::Cuda, or a type "
                  "satisfying lcmae::backend::Backend: derived from ops::BackendTag, with ptr<T>, buffer<T> and "
                  "every op of backend/ops.hpp; see docs/writing-a-backend.md)");
    static_assert(::lcmae::recipe::RecipePolicy<Recipe>,
                  "LCMAE: Recipe must provide the policy types Guidance, Pool, Guided, Views, Baseline and the "
                  "constants decoder_dim, decoder_depth, decoder_heads, head_hidden, projector_depth, "
                  "predictor_depth; derive it from lcmae::recipe::Default and override what you change");

public:
    using backbone = B;
    using loss = Loss;
    using crop = Crop;
    using backend = Backend;
    using recipe = Recipe;
    using guidance = typename Recipe::Guidance;
    using pool = typename Recipe::Pool;
    using guided = typename Recipe::Guided;
    using views = typename Recipe::Views;
    using baseline = typename Recipe::Baseline;
    using engine_type = models::LcmaeModel<float, Backend>;
    using trainer_type = train::Trainer<float, Backend>;

    static constexpr bool guided_enabled = Loss::kind != models::GuidanceLoss::None;
    static constexpr bool simmim = baseline::kind == models::Baseline::SimMim;

    // ---- invalid combinations, in words (each rule and sentence lives once, in models/spec_rules.hpp)
    static constexpr models::ModelSpec kStructure = detail::structural_spec<B, Loss, Recipe>();
    static_assert(models::rules::simmim_views(kStructure), "LCMAE: " LCMAE_RULE_SIMMIM_VIEWS_MSG);
    static_assert(models::rules::simmim_global(kStructure), "LCMAE: " LCMAE_RULE_SIMMIM_GLOBAL_MSG);
    static_assert(models::rules::tokenwise_pool(kStructure), "LCMAE: " LCMAE_RULE_TOKENWISE_POOL_MSG);
    static_assert(models::rules::decoder_positive(kStructure), "LCMAE: " LCMAE_RULE_DECODER_POSITIVE_MSG);
    static_assert(models::rules::decoder_heads(kStructure), "LCMAE: " LCMAE_RULE_DECODER_HEADS_MSG);
    static_assert(models::rules::decoder_sincos(kStructure), "LCMAE: " LCMAE_RULE_DECODER_SINCOS_MSG);
    static_assert(models::rules::heads(kStructure), "LCMAE: " LCMAE_RULE_HEADS_MSG);

    /// The engine's description of this type with the run-time numbers of `rc`.
    static constexpr models::ModelSpec spec(const RunConfig& rc = {}) {
        models::ModelSpec s = detail::structural_spec<B, Loss, Recipe>();
        s.mask_ratio = rc.mask_ratio;
        s.simmim_mask_ratio = rc.simmim_mask_ratio;
        s.target_mask_ratio = rc.target_mask_ratio;
        s.alpha = guided_enabled ? rc.alpha : 0.0;
        s.temperature = rc.temperature;
        s.smooth_l1_beta = rc.smooth_l1_beta;
        s.norm_pix = rc.norm_pix;
        s.max_batch = rc.max_batch;
        return s;
    }

    /// Builds the engine; throws lcmae::Error for invalid numbers (e.g. Symmetric views with a mask
    /// ratio below 0.5) or a combination the engine rejects (guided::VisibleAndMask without the MAE
    /// baseline, global guidance, visible pooling and an unmasked target).
    explicit LCMAE(const RunConfig& rc = {})
        requires Backend::host_memory
        : config_(rc), engine_(spec(rc), rc.seed) {}
    /// Any backend: parameters are initialised on the host and uploaded through ctx.
    LCMAE(const Backend& ctx, const RunConfig& rc) : config_(rc), engine_(ctx, spec(rc), rc.seed) {}
    LCMAE(const LCMAE&) = delete;
    LCMAE& operator=(const LCMAE&) = delete;

    /// One micro-batch: L = L_MIM + alpha L_GG, gradients ACCUMULATED (scaled by loss_scale) into
    /// params(). view1, view2: (B, C, H, W) floats; view2 is unused by plain MAE (may be null).
    models::StepLosses forward_backward(const Backend& ctx, const float* view1, const float* view2, long batch,
                                        Rng& rng, double loss_scale = 1.0) {
        return engine_.forward_backward(ctx, view1, view2, batch, rng, loss_scale);
    }

    engine_type& engine() noexcept { return engine_; }
    const engine_type& engine() const noexcept { return engine_; }
    const RunConfig& config() const noexcept { return config_; }
    ParamArena<float, Backend>& params() noexcept { return engine_.params(); }
    const ParamArena<float, Backend>& params() const noexcept { return engine_.params(); }
    ParamArena<float, Backend>& target_params() noexcept { return engine_.target_params(); }
    const ParamArena<float, Backend>& target_params() const noexcept { return engine_.target_params(); }
    bool has_target() const noexcept { return engine_.has_target(); }

private:
    RunConfig config_;
    engine_type engine_;
};

}  // namespace lcmae
