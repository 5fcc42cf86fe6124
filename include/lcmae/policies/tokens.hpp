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
/// Visible + mask tokens (Table 5e, SPEC 3 "Guided tokens"): the online side pools the DECODED
/// tokens - the MAE decoder's outputs at the visible and the mask positions, after the decoder
/// blocks and decoder_norm, before decoder_pred (decoder width) - so the guidance reaches the mask
/// token and the visible tokens through the decoder's attention. The target runs its EMA copy of
/// decoder_embed, the decoder blocks and decoder_norm over all of its tokens and pools them the
/// same way. Needs the MAE baseline, global guidance, visible-token pooling and target mask ratio
/// 0 (the engine throws lcmae::Error otherwise).
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
