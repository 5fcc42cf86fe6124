// lcmae/policies/baseline.hpp - the masked-image-modelling baseline (SPEC 2-3, appendix B.1):
// `Recipe::Baseline`. Mae: random masking, visible tokens only in the encoder, MAE decoder,
// norm-pix MSE. SimMim: mask tokens inside the encoder, 32-px block masking, linear decoder, L1.
#pragma once

#include <concepts>
#include <string_view>

#include "lcmae/models/model_spec.hpp"

namespace lcmae::baseline {

struct Mae {
    static constexpr models::Baseline kind = models::Baseline::Mae;
    static constexpr std::string_view name = "mae";
};
struct SimMim {
    static constexpr models::Baseline kind = models::Baseline::SimMim;
    static constexpr std::string_view name = "simmim";
};

/// What a baseline policy must provide.
template <class T>
concept BaselinePolicy = requires {
    { T::kind } -> std::convertible_to<models::Baseline>;
    { T::name } -> std::convertible_to<std::string_view>;
};

static_assert(BaselinePolicy<Mae> && BaselinePolicy<SimMim>);

}  // namespace lcmae::baseline
