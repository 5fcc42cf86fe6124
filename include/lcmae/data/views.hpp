// lcmae/data/views.hpp - the training views: MAE's single view and LC-MAE's pair (u, v).
//
// SPEC 3: view u (online) = crop + flip; view v (target) = crop + flip + colour jitter (p 0.8)
// + exactly one of {grayscale, solarize, blur}. Which crop is used follows the model's Crop policy
// type, so the data pipeline and the model cannot disagree. Each view gets its own Rng, so crop
// offsets and flips are drawn independently per view.
#pragma once

#include <opencv2/core.hpp>

#include "lcmae/core/rng.hpp"
#include "lcmae/data/transforms.hpp"
#include "lcmae/policies/crop.hpp"

namespace lcmae::data {

/// The numbers of the views (defaults are the paper's).
struct ViewConfig {
    int size = 224;
    int pad = 4;              ///< simple resized crop padding
    double flip_p = 0.5;
    double scale_lo = 0.2, scale_hi = 1.0;                ///< random resized crop area
    double ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;    ///< random resized crop aspect
    ColorJitter jitter{};
    GaussianBlur blur{};
    int solarize_threshold = 128;
    int eval_resize = 0;      ///< Views::Eval: shorter side before the centre crop (0 = size; 256 for 224 on ImageNet)
};

/// The crop transform implementing a crop policy.
template <crop::CropPolicy Crop>
auto make_crop(const ViewConfig& c) {
    if constexpr (Crop::kind == crop::Kind::SimpleResized) {
        return SimpleResizedCrop{c.size, c.pad, c.flip_p};
    } else {
        static_assert(Crop::kind == crop::Kind::RandomResized, "make_crop: unknown crop policy kind");
        return RandomResizedCrop{c.size, c.scale_lo, c.scale_hi, c.ratio_lo, c.ratio_hi, c.flip_p};
    }
}

/// MAE's single view: crop + flip.
template <crop::CropPolicy Crop>
class SingleView {
public:
    explicit SingleView(const ViewConfig& c = {}) : crop_(make_crop<Crop>(c)) {}
    cv::Mat operator()(const cv::Mat& img, Rng& rng) const { return crop_(img, rng); }

private:
    decltype(make_crop<Crop>(ViewConfig{})) crop_;
};

/// LC-MAE's pair: u (crop + flip) for the online encoder, v (crop + flip + jitter + one of three)
/// for the target encoder.
template <crop::CropPolicy Crop>
class PairView {
public:
    explicit PairView(const ViewConfig& c = {})
        : crop_(make_crop<Crop>(c)), jitter_(c.jitter), one_of_{{Grayscale{}, Solarize{c.solarize_threshold}, c.blur}} {}

    cv::Mat u(const cv::Mat& img, Rng& rng) const { return crop_(img, rng); }
    cv::Mat v(const cv::Mat& img, Rng& rng) const { return one_of_(jitter_(crop_(img, rng), rng), rng); }

private:
    decltype(make_crop<Crop>(ViewConfig{})) crop_;
    ColorJitter jitter_;
    OneOf<Grayscale, Solarize, GaussianBlur> one_of_;
};

}  // namespace lcmae::data
