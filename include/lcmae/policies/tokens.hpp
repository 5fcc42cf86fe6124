// lcmae/policies/tokens.hpp - which tokens take part in the guidance (SPEC 3):
//   tokens::*  which tokens are POOLED into the guidance vector (paper Table 5d): `Recipe::Pool`;
//   guided::*  which tokens are GUIDED (paper Table 5e): `Recipe::Guided`.
// Both are ignored when the loss is loss::None.
#pragma once

#include <concepts>
#include <string_view>

#include "lcmae/models/model_spec.hpp"

namespace lcmae::tokens {

/// Mean of the non-cls tokens after the final LayerNorm (default).
struct Visible {
    static constexpr models::PoolTokens kind = models::PoolTokens::Visible;
    static constexpr std::string_view name = "visible";
};
/// The CLS token (global guidance only).
struct Cls {
    static constexpr models::PoolTokens kind = models::PoolTokens::Cls;
    static constexpr std::string_view name = "cls";
};

/// What a pooling policy must provide.
template <class T>
concept PoolPolicy = requires {
    { T::kind } -> std::convertible_to<models::PoolTokens>;
    { T::name } -> std::convertible_to<std::string_view>;
};

static_assert(PoolPolicy<Visible> && PoolPolicy<Cls>);

}  // namespace lcmae::tokens

namespace lcmae::guided {

/// The visible tokens learn the guidance (default).
struct Visible {
    static constexpr models::GuidedTokens kind = models::GuidedTokens::Visible;
    static constexpr std::string_view name = "visible";
};
/// Visible + mask tokens (Table 5e): the online side pools MAE's decoder-side sequence (decoder_embed
/// of the visible tokens plus the mask tokens, decoder width); the target pools decoder_embed of its
/// tokens (its EMA copy includes decoder_embed). Needs the MAE baseline, global guidance and
/// visible-token pooling (the engine throws lcmae::Error otherwise).
struct VisibleAndMask {
    static constexpr models::GuidedTokens kind = models::GuidedTokens::VisibleAndMask;
    static constexpr std::string_view name = "visible_and_mask";
};

/// What a guided-tokens policy must provide.
template <class T>
concept GuidedPolicy = requires {
    { T::kind } -> std::convertible_to<models::GuidedTokens>;
    { T::name } -> std::convertible_to<std::string_view>;
};

static_assert(GuidedPolicy<Visible> && GuidedPolicy<VisibleAndMask>);

}  // namespace lcmae::guided
