// lcmae/data/randaugment.hpp - the two optional augmentations of MAE's fine-tuning recipe (timm's
// create_transform with auto_augment 'rand-m9-mstd0.5-inc1' and re_prob 0.25), for small images:
//
// RandAugment (Cubuk et al. 2020; timm's rand_augment_transform): `n` ops drawn uniformly with
// replacement, each applied with probability 0.5 at magnitude m in [0, 10] (fixed: timm's
// mstd 0.5 jitter is left out), on 8-bit HWC images. The op set is timm's minus the three that do
// nothing useful on the gray 28 px images this project fine-tunes on (Color: no colour;
// Invert and SolarizeAdd: not in the 'inc' set's spirit for dark-background images):
//   AutoContrast, Equalize, Rotate (+-30 m/10 degrees), Posterize (8 - 4 m/10 bits, 'inc'),
//   Solarize (threshold 256 - 256 m/10), Contrast / Brightness / Sharpness (factor 1 +- 0.9 m/10),
//   ShearX / ShearY (+-0.3 m/10), TranslateX / TranslateY (+-0.45 m/10 of the side).
// Signed magnitudes take a random sign; geometric ops fill with 0 (Fashion-MNIST's black
// background; timm fills with the ImageNet mean colour).
//
// RandomErasing (Zhong et al. 2020; timm's RandomErasing, mode 'pixel', one box): with probability
// p, a box of area U(0.02, 1/3) of the image and aspect ratio log-uniform in (0.3, 3.3) (10 tries)
// is filled with N(0, 1) values per pixel and channel, on the NORMALISED CHW floats.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <opencv2/imgproc.hpp>

#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"

namespace lcmae::data {

struct RandAugment {
    int n = 2;     // ops per image (0 = off)
    double m = 9;  // magnitude in [0, 10]

    static constexpr int kOps = 12;
    static constexpr const char* op_name(int op) {
        constexpr const char* names[kOps] = {"AutoContrast", "Equalize", "Rotate",  "Posterize", "Solarize", "Contrast",
                                             "Brightness",   "Sharpness", "ShearX", "ShearY",    "TranslateX", "TranslateY"};
        return names[op];
    }

    cv::Mat operator()(const cv::Mat& img, Rng& rng) const {
        LCMAE_CHECK(m >= 0 && m <= 10, "RandAugment magnitude must lie in [0, 10], got " << m);
        cv::Mat out = img;
        for (int i = 0; i < n; ++i) {
            const int op = static_cast<int>(rng.below(kOps));
            if (!rng.bernoulli(0.5)) continue;
            const double sign = rng.bernoulli(0.5) ? 1.0 : -1.0;
            out = apply(out, op, sign);
        }
        return out;
    }

    /// One op at this magnitude; sign (+-1) for the signed ones.
    cv::Mat apply(const cv::Mat& img, int op, double sign) const {
        const double f = m / 10.0;
        cv::Mat out;
        switch (op) {
            case 0: {  // AutoContrast: stretch [min, max] to [0, 255] per channel
                cv::normalize(img.reshape(1), out, 0, 255, cv::NORM_MINMAX);
                return out.reshape(img.channels());
            }
            case 1: return per_channel(img, [](const cv::Mat& c, cv::Mat& o) { cv::equalizeHist(c, o); });
            case 2: return affine(img, cv::getRotationMatrix2D(center(img), sign * 30.0 * f, 1.0));
            case 3: {  // keep the top 8 - 4f bits
                const int bits = std::max(1, 8 - static_cast<int>(4 * f));
                const uchar mask = static_cast<uchar>(0xFF << (8 - bits));
                cv::bitwise_and(img, cv::Scalar::all(mask), out);
                return out;
            }
            case 4: {  // invert pixels at or above the threshold
                const double th = 256.0 - 256.0 * f;
                out = img.clone();
                out.forEach<uchar>([th](uchar& v, const int*) { if (v >= th) v = static_cast<uchar>(255 - v); });
                return out;
            }
            case 5: {  // blend with the mean gray level
                const double mean = cv::mean(img)[0];
                img.convertTo(out, -1, 1 + sign * 0.9 * f, (1 - (1 + sign * 0.9 * f)) * mean);
                return out;
            }
            case 6: img.convertTo(out, -1, 1 + sign * 0.9 * f, 0); return out;  // blend with black
            case 7: {  // blend with PIL's SMOOTH-filtered image (3x3 kernel 1,1,1 / 1,5,1 / 1,1,1)
                cv::Mat k = (cv::Mat_<float>(3, 3) << 1, 1, 1, 1, 5, 1, 1, 1, 1) / 13.0f;
                cv::Mat smooth;
                cv::filter2D(img, smooth, -1, k, cv::Point(-1, -1), 0, cv::BORDER_REPLICATE);
                const double a = 1 + sign * 0.9 * f;
                cv::addWeighted(img, a, smooth, 1 - a, 0, out);
                return out;
            }
            case 8: return affine(img, (cv::Mat_<double>(2, 3) << 1, sign * 0.3 * f, 0, 0, 1, 0));
            case 9: return affine(img, (cv::Mat_<double>(2, 3) << 1, 0, 0, sign * 0.3 * f, 1, 0));
            case 10: return affine(img, (cv::Mat_<double>(2, 3) << 1, 0, sign * 0.45 * f * img.cols, 0, 1, 0));
            case 11: return affine(img, (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, sign * 0.45 * f * img.rows));
            default: LCMAE_FAIL("RandAugment: no op " << op);
        }
    }

private:
    static cv::Point2f center(const cv::Mat& img) { return {0.5f * (img.cols - 1), 0.5f * (img.rows - 1)}; }
    static cv::Mat affine(const cv::Mat& img, const cv::Mat& M) {
        cv::Mat out;
        cv::warpAffine(img, out, M, img.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
        return out;
    }
    template <class F>
    static cv::Mat per_channel(const cv::Mat& img, F f) {
        if (img.channels() == 1) {
            cv::Mat o;
            f(img, o);
            return o;
        }
        std::vector<cv::Mat> ch;
        cv::split(img, ch);
        for (auto& c : ch) {
            cv::Mat o;
            f(c, o);
            c = o;
        }
        cv::Mat out;
        cv::merge(ch, out);
        return out;
    }
};

struct RandomErasing {
    double p = 0.25;
    double area_lo = 0.02, area_hi = 1.0 / 3.0;
    double ratio_lo = 0.3, ratio_hi = 3.3;

    /// x: normalised CHW floats of one image (C, H, W), erased in place. Returns whether it erased.
    bool operator()(float* x, int C, int H, int W, Rng& rng) const {
        if (!(p > 0) || !rng.bernoulli(p)) return false;
        const double area = double(H) * W;
        for (int attempt = 0; attempt < 10; ++attempt) {
            const double target = area * rng.uniform(area_lo, area_hi);
            const double aspect = std::exp(rng.uniform(std::log(ratio_lo), std::log(ratio_hi)));
            const int h = static_cast<int>(std::lround(std::sqrt(target * aspect)));
            const int w = static_cast<int>(std::lround(std::sqrt(target / aspect)));
            if (w < W && h < H && w > 0 && h > 0) {
                const int top = static_cast<int>(rng.below(static_cast<std::uint64_t>(H - h + 1)));
                const int left = static_cast<int>(rng.below(static_cast<std::uint64_t>(W - w + 1)));
                for (int c = 0; c < C; ++c)
                    for (int y = top; y < top + h; ++y)
                        for (int xx = left; xx < left + w; ++xx) x[(c * H + y) * W + xx] = static_cast<float>(rng.normal());
                return true;
            }
        }
        return false;
    }
};

}  // namespace lcmae::data
