// lcmae/policies/crop.hpp - which crop makes a training view: a compile-time policy of the model.
//
// Why tag types: the model template (LCMAE<Backbone, Loss, Crop, ...>) names the crop as a type so a
// recipe is fully described by its type, while the core library stays free of OpenCV. The data
// target (lcmae/data/views.hpp) maps each tag onto the transform that implements it.
#pragma once

#include <concepts>
#include <string_view>

namespace lcmae::crop {

enum class Kind { SimpleResized, RandomResized };

/// DeiT III's simple resized crop (SPEC 6): shorter side resized to the target (bicubic), reflect
/// padding of 4 px, random crop of the target size, flip p 0.5. LC-MAE's default.
struct SimpleResized {
    static constexpr Kind kind = Kind::SimpleResized;
    static constexpr std::string_view name = "simple_resized";
};

/// The MAE crop (SPEC 6): random resized crop, scale (0.2, 1), ratio (3/4, 4/3), bicubic, flip p 0.5.
struct RandomResized {
    static constexpr Kind kind = Kind::RandomResized;
    static constexpr std::string_view name = "random_resized";
};

/// What a crop policy must provide: its kind (which transform implements it) and a name for logs.
template <class T>
concept CropPolicy = requires {
    { T::kind } -> std::convertible_to<Kind>;
    { T::name } -> std::convertible_to<std::string_view>;
};

static_assert(CropPolicy<SimpleResized> && CropPolicy<RandomResized>);

}  // namespace lcmae::crop
