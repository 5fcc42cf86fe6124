// lcmae/policies/guidance.hpp - the type of guidance (SPEC 3; paper Table 5b): `Recipe::Guidance`.
//
// Global (default): regress the pooled online vector onto the pooled target vector.
// TokenWise: regress each visible online token onto the target token at the same position (so the
// pooling policy must be tokens::Visible). Both: the sum of the two.
// Ignored when the loss is loss::None.
#pragma once

#include <concepts>
#include <string_view>

#include "lcmae/models/model_spec.hpp"

namespace lcmae::guidance {

struct Global {
    static constexpr models::GuidanceType kind = models::GuidanceType::Global;
    static constexpr std::string_view name = "global";
};
struct TokenWise {
    static constexpr models::GuidanceType kind = models::GuidanceType::TokenWise;
    static constexpr std::string_view name = "token_wise";
};
struct Both {
    static constexpr models::GuidanceType kind = models::GuidanceType::Both;
    static constexpr std::string_view name = "token_wise_and_global";
};

/// What a guidance policy must provide: the engine's guidance type and a name for logs.
template <class T>
concept GuidancePolicy = requires {
    { T::kind } -> std::convertible_to<models::GuidanceType>;
    { T::name } -> std::convertible_to<std::string_view>;
};

static_assert(GuidancePolicy<Global> && GuidancePolicy<TokenWise> && GuidancePolicy<Both>);

}  // namespace lcmae::guidance
