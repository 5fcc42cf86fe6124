// lcmae/policies/loss.hpp - the guidance loss L_GG (SPEC 3; paper Table 5a): the `Loss` policy of
// LCMAE<Backbone, Loss, Crop, Backend, Recipe>.
//
// Each tag names the engine's GuidanceLoss. Its numbers (InfoNCE temperature, Smooth-L1 beta,
// alpha) are run-time values of lcmae::RunConfig, not part of the type.
//
// loss::None is plain MAE (or plain SimMIM): no target encoder, no heads, alpha is forced to 0.
// The guidance-related policies of the recipe (Guidance, Pool, Guided) are then meaningless and
// ignored; they are still checked for validity so that a recipe is valid or invalid on its own.
#pragma once

#include <concepts>
#include <string_view>

#include "lcmae/models/model_spec.hpp"

namespace lcmae::loss {

/// No guidance: plain MAE / SimMIM.
struct None {
    static constexpr models::GuidanceLoss kind = models::GuidanceLoss::None;
    static constexpr std::string_view name = "none";
};
/// Normalised L2 = 2 - 2 cos(u, v) (the paper's default).
struct Cosine {
    static constexpr models::GuidanceLoss kind = models::GuidanceLoss::Cosine;
    static constexpr std::string_view name = "cosine";
};
/// InfoNCE over the batch, temperature T (RunConfig::temperature), scaled by 2T.
struct InfoNCE {
    static constexpr models::GuidanceLoss kind = models::GuidanceLoss::InfoNCE;
    static constexpr std::string_view name = "infonce";
};
/// Smooth L1 on raw head outputs, beta = RunConfig::smooth_l1_beta.
struct SmoothL1 {
    static constexpr models::GuidanceLoss kind = models::GuidanceLoss::SmoothL1;
    static constexpr std::string_view name = "smooth_l1";
};

/// What a loss policy must provide: the engine's loss kind and a name for logs.
template <class T>
concept LossPolicy = requires {
    { T::kind } -> std::convertible_to<models::GuidanceLoss>;
    { T::name } -> std::convertible_to<std::string_view>;
};

static_assert(LossPolicy<None> && LossPolicy<Cosine> && LossPolicy<InfoNCE> && LossPolicy<SmoothL1>);

}  // namespace lcmae::loss
