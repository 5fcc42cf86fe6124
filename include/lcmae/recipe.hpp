// lcmae/recipe.hpp - the structure of a pre-training recipe beyond the backbone, loss and crop:
// guidance type, pooled tokens, guided tokens, view schedule, baseline, decoder and head dims.
//
// A recipe is a struct; override one policy by inheritance (the policy idiom of Modern C++ Design):
//
//   struct TokenWise : lcmae::recipe::Default { using Guidance = lcmae::guidance::TokenWise; };
//   struct Narrow    : lcmae::recipe::Default { static constexpr long head_hidden = 1024; };
//
// Numbers that are not structure (alpha, mask ratios, temperature, ...) are run-time values of
// lcmae::RunConfig. When the loss is loss::None, Guidance / Pool / Guided and the head dims are
// ignored (there is no target and no head), but they must still be valid.
#pragma once

#include <concepts>

#include "lcmae/policies/baseline.hpp"
#include "lcmae/policies/guidance.hpp"
#include "lcmae/policies/tokens.hpp"
#include "lcmae/policies/views.hpp"

namespace lcmae::recipe {

/// The paper's recipe (SPEC 2-3): global guidance pooled over visible tokens, visible tokens guided,
/// symmetric views, MAE baseline, decoder 512 x 8 blocks x 16 heads, heads 2 + 2 layers of width 4096.
struct Default {
    using Guidance = guidance::Global;
    using Pool = tokens::Visible;
    using Guided = guided::Visible;
    using Views = views::Symmetric;
    using Baseline = baseline::Mae;
    static constexpr long decoder_dim = 512, decoder_depth = 8, decoder_heads = 16;
    static constexpr long head_hidden = 4096;
    static constexpr int projector_depth = 2, predictor_depth = 2;
};

/// The CPU preset: the default recipe with a 128 x 4 blocks x 4 heads decoder.
struct Cpu : Default {
    static constexpr long decoder_dim = 128, decoder_depth = 4, decoder_heads = 4;
};

/// LC-SimMIM (appendix B.1): the SimMIM baseline with the Paper view schedule (the only one it supports).
struct SimMim : Default {
    using Baseline = baseline::SimMim;
    using Views = views::Paper;
};

/// What a recipe must provide: the five policy types and the decoder / head dims.
template <class R>
concept RecipePolicy = requires {
    requires guidance::GuidancePolicy<typename R::Guidance>;
    requires tokens::PoolPolicy<typename R::Pool>;
    requires guided::GuidedPolicy<typename R::Guided>;
    requires views::ViewPolicy<typename R::Views>;
    requires baseline::BaselinePolicy<typename R::Baseline>;
    { R::decoder_dim } -> std::convertible_to<long>;
    { R::decoder_depth } -> std::convertible_to<long>;
    { R::decoder_heads } -> std::convertible_to<long>;
    { R::head_hidden } -> std::convertible_to<long>;
    { R::projector_depth } -> std::convertible_to<int>;
    { R::predictor_depth } -> std::convertible_to<int>;
};

static_assert(RecipePolicy<Default> && RecipePolicy<Cpu> && RecipePolicy<SimMim>);

}  // namespace lcmae::recipe
