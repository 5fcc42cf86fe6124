// lcmae/policies/views.hpp - the view schedule (SPEC 3): `Recipe::Views`.
//
// Symmetric (default, as the public code): the online encoder runs on both views with disjoint
// keep sets (so the run-time mask ratio must be >= 0.5, checked when the model is built), and
// L_GG = (l(q2, t1) + l(q1, t2)) / 2. Paper (Eq. 2-3): online on masked view u, target on full view
// v. LC-SimMIM supports Paper only. With loss::None both schedules are plain MAE on view 1.
#pragma once

#include <concepts>
#include <string_view>

#include "lcmae/models/model_spec.hpp"

namespace lcmae::views {

struct Symmetric {
    static constexpr models::ViewSchedule kind = models::ViewSchedule::Symmetric;
    static constexpr std::string_view name = "symmetric";
};
struct Paper {
    static constexpr models::ViewSchedule kind = models::ViewSchedule::Paper;
    static constexpr std::string_view name = "paper";
};

/// What a view-schedule policy must provide.
template <class T>
concept ViewPolicy = requires {
    { T::kind } -> std::convertible_to<models::ViewSchedule>;
    { T::name } -> std::convertible_to<std::string_view>;
};

static_assert(ViewPolicy<Symmetric> && ViewPolicy<Paper>);

}  // namespace lcmae::views
