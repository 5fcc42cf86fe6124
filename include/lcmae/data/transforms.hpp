// lcmae/data/transforms.hpp - the paper's augmentations as small function objects.
//
// Each transform takes an 8-bit HWC image (1 channel gray or 3 channels RGB) and the Rng of the
// sample, and returns a new image; the input is never written (dataset images may be shared
// memory). All randomness comes from the Rng passed in, so a sample's pixels depend only on
// (seed, epoch, index), never on the thread that made it. Pixel ops round and clip to [0, 255]
// after each step, like torchvision on uint8 images. Parameters and definitions: SPEC 3 and 6.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <tuple>
#include <utility>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"

namespace lcmae::data {

// ---- geometry --------------------------------------------------------------------------------

/// A crop rectangle in pixels: top-left (x, y), width w, height h.
struct Box {
    int x = 0, y = 0, w = 0, h = 0;
};

inline void check_image(const cv::Mat& img, const char* who) {
    LCMAE_CHECK(!img.empty(), who << ": empty image");
    LCMAE_CHECK(img.depth() == CV_8U && (img.channels() == 1 || img.channels() == 3),
                who << ": expected an 8-bit image with 1 or 3 channels, got depth " << img.depth() << " and "
                    << img.channels() << " channels");
}

/// Resizes so the shorter side is `size`, keeping the aspect ratio (the longer side is rounded
/// like torchvision: int(size * long / short)). Returns the input unchanged when it already fits.
inline cv::Mat resize_shorter(const cv::Mat& img, int size, int interpolation = cv::INTER_CUBIC) {
    check_image(img, "resize_shorter");
    LCMAE_CHECK(size > 0, "resize_shorter: target size must be positive, got " << size);
    const int h = img.rows, w = img.cols;
    if (std::min(h, w) == size) return img;
    const int nh = h <= w ? size : static_cast<int>(static_cast<long long>(size) * h / w);
    const int nw = h <= w ? static_cast<int>(static_cast<long long>(size) * w / h) : size;
    cv::Mat out;
    cv::resize(img, out, cv::Size(nw, nh), 0, 0, interpolation);
    return out;
}

/// Mirror padding that does not repeat the edge pixel (PyTorch's "reflect", OpenCV's
/// BORDER_REFLECT_101): a row [a b c d] padded by 2 becomes [c b | a b c d | c b].
inline cv::Mat reflect_pad(const cv::Mat& img, int pad) {
    check_image(img, "reflect_pad");
    LCMAE_CHECK(pad >= 0, "reflect_pad: padding must be non-negative, got " << pad);
    LCMAE_CHECK(pad < img.rows && pad < img.cols, "reflect_pad: padding " << pad << " needs an image larger than "
                                                                          << pad << " px, got " << img.cols << "x"
                                                                          << img.rows);
    if (pad == 0) return img;
    cv::Mat out;
    cv::copyMakeBorder(img, out, pad, pad, pad, pad, cv::BORDER_REFLECT_101);
    return out;
}

/// A uniformly placed size x size box inside an h x w image.
inline Box random_crop_box(int h, int w, int size, Rng& rng) {
    LCMAE_CHECK(h >= size && w >= size, "image of " << w << "x" << h << " px is smaller than the crop of " << size
                                                    << "x" << size << " px");
    Box b;
    b.y = static_cast<int>(rng.below(static_cast<std::uint64_t>(h - size + 1)));
    b.x = static_cast<int>(rng.below(static_cast<std::uint64_t>(w - size + 1)));
    b.w = b.h = size;
    return b;
}

/// A view of the box (no copy).
inline cv::Mat crop(const cv::Mat& img, const Box& b) {
    LCMAE_CHECK(b.x >= 0 && b.y >= 0 && b.w > 0 && b.h > 0 && b.x + b.w <= img.cols && b.y + b.h <= img.rows,
                "crop box (" << b.x << ", " << b.y << ", " << b.w << "x" << b.h << ") does not fit in an image of "
                             << img.cols << "x" << img.rows);
    return img(cv::Rect(b.x, b.y, b.w, b.h));
}

/// Mirror left-right.
inline cv::Mat hflip(const cv::Mat& img) {
    cv::Mat out;
    cv::flip(img, out, 1);
    return out;
}

/// DeiT III's simple resized crop (SPEC 6): shorter side to `size` (bicubic), reflect pad `pad` px,
/// random size x size crop, flip with probability flip_p. Draws: crop y, crop x, flip.
struct SimpleResizedCrop {
    int size = 224;
    int pad = 4;
    double flip_p = 0.5;

    cv::Mat operator()(const cv::Mat& img, Rng& rng) const {
        cv::Mat padded = reflect_pad(resize_shorter(img, size), pad);
        cv::Mat out = crop(padded, random_crop_box(padded.rows, padded.cols, size, rng));
        return rng.bernoulli(flip_p) ? hflip(out) : out;
    }
};

/// MAE's random resized crop (torchvision's RandomResizedCrop + flip): a box of area fraction
/// U(scale) and log-uniform aspect ratio in `ratio`; after 10 failed tries, a centre crop with the
/// ratio clamped into range. The box is resized to size x size (bicubic). Draws: per try (area,
/// log ratio, and on success y, x), then flip.
struct RandomResizedCrop {
    int size = 224;
    double scale_lo = 0.2, scale_hi = 1.0;
    double ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;
    double flip_p = 0.5;

    Box box(int h, int w, Rng& rng) const {
        const double area = static_cast<double>(h) * w;
        const double log_lo = std::log(ratio_lo), log_hi = std::log(ratio_hi);
        for (int attempt = 0; attempt < 10; ++attempt) {
            const double target = area * rng.uniform(scale_lo, scale_hi);
            const double aspect = std::exp(rng.uniform(log_lo, log_hi));
            const int bw = static_cast<int>(std::lround(std::sqrt(target * aspect)));
            const int bh = static_cast<int>(std::lround(std::sqrt(target / aspect)));
            if (bw > 0 && bw <= w && bh > 0 && bh <= h) {
                Box b{0, 0, bw, bh};
                b.y = static_cast<int>(rng.below(static_cast<std::uint64_t>(h - bh + 1)));
                b.x = static_cast<int>(rng.below(static_cast<std::uint64_t>(w - bw + 1)));
                return b;
            }
        }
        // Fallback: the whole image, trimmed to the nearest allowed aspect ratio, centred.
        const double in_ratio = static_cast<double>(w) / h;
        int bw = w, bh = h;
        if (in_ratio < ratio_lo) bh = static_cast<int>(std::lround(w / ratio_lo));
        else if (in_ratio > ratio_hi) bw = static_cast<int>(std::lround(h * ratio_hi));
        bw = std::clamp(bw, 1, w);
        bh = std::clamp(bh, 1, h);
        return Box{(w - bw) / 2, (h - bh) / 2, bw, bh};
    }

    cv::Mat operator()(const cv::Mat& img, Rng& rng) const {
        check_image(img, "RandomResizedCrop");
        cv::Mat out;
        cv::resize(crop(img, box(img.rows, img.cols, rng)), out, cv::Size(size, size), 0, 0, cv::INTER_CUBIC);
        return rng.bernoulli(flip_p) ? hflip(out) : out;
    }
};

/// Evaluation: shorter side to `resize` (bicubic), then the centred crop x crop square.
struct ResizeCenterCrop {
    int resize = 256;
    int crop_size = 224;

    cv::Mat operator()(const cv::Mat& img) const {
        LCMAE_CHECK(crop_size <= resize, "ResizeCenterCrop: crop " << crop_size << " is larger than the resize "
                                                                   << resize);
        cv::Mat r = resize_shorter(img, resize);
        return crop(r, Box{(r.cols - crop_size) / 2, (r.rows - crop_size) / 2, crop_size, crop_size}).clone();
    }
    cv::Mat operator()(const cv::Mat& img, Rng&) const { return (*this)(img); }
};

// ---- colour --------------------------------------------------------------------------------

inline constexpr double kGrayR = 0.299, kGrayG = 0.587, kGrayB = 0.114;

/// L = 0.299 R + 0.587 G + 0.114 B, rounded; one channel. A gray input is returned as is.
inline cv::Mat to_gray(const cv::Mat& img) {
    check_image(img, "to_gray");
    if (img.channels() == 1) return img;
    cv::Mat out;
    const cv::Matx13f weights(static_cast<float>(kGrayR), static_cast<float>(kGrayG), static_cast<float>(kGrayB));
    cv::transform(img, out, weights);
    return out;
}

/// SPEC 6 grayscale: the luma copied to every channel (3 in, 3 out; 1 in, 1 out).
struct Grayscale {
    cv::Mat operator()(const cv::Mat& img) const {
        if (img.channels() == 1) return img;
        cv::Mat out;
        cv::cvtColor(to_gray(img), out, cv::COLOR_GRAY2RGB);
        return out;
    }
    cv::Mat operator()(const cv::Mat& img, Rng&) const { return (*this)(img); }
};

/// Inverts every value at or above the threshold: p >= 128 -> 255 - p.
struct Solarize {
    int threshold = 128;
    cv::Mat operator()(const cv::Mat& img) const {
        check_image(img, "Solarize");
        cv::Mat lut(1, 256, CV_8U);
        for (int v = 0; v < 256; ++v) lut.at<std::uint8_t>(v) = static_cast<std::uint8_t>(v >= threshold ? 255 - v : v);
        cv::Mat out;
        cv::LUT(img, lut, out);
        return out;
    }
    cv::Mat operator()(const cv::Mat& img, Rng&) const { return (*this)(img); }
};

/// Gaussian blur with sigma ~ U[sigma_lo, sigma_hi]; kernel 2 ceil(3 sigma) + 1 wide (99.7% of the
/// mass), mirrored borders.
struct GaussianBlur {
    double sigma_lo = 0.1, sigma_hi = 2.0;

    static cv::Mat blur(const cv::Mat& img, double sigma) {
        check_image(img, "GaussianBlur");
        const int k = 2 * static_cast<int>(std::ceil(3.0 * sigma)) + 1;
        cv::Mat out;
        cv::GaussianBlur(img, out, cv::Size(k, k), sigma, sigma, cv::BORDER_REFLECT_101);
        return out;
    }
    double draw(Rng& rng) const { return rng.uniform(sigma_lo, sigma_hi); }
    cv::Mat operator()(const cv::Mat& img, Rng& rng) const { return blur(img, draw(rng)); }
};

/// What one colour-jitter call drew: whether to apply, the order of the four adjustments
/// (0 brightness, 1 contrast, 2 saturation, 3 hue) and their factors.
struct JitterDraw {
    bool apply = false;
    std::array<int, 4> order{0, 1, 2, 3};
    double brightness = 1, contrast = 1, saturation = 1, hue = 0;
};

inline cv::Mat adjust_brightness(const cv::Mat& img, double f) {  // blend with black
    cv::Mat out;
    img.convertTo(out, -1, f, 0.0);
    return out;
}
inline cv::Mat adjust_contrast(const cv::Mat& img, double f) {  // blend with the mean gray level
    const cv::Scalar m = cv::mean(img);
    const double gray_mean = img.channels() == 1 ? m[0] : kGrayR * m[0] + kGrayG * m[1] + kGrayB * m[2];
    cv::Mat out;
    img.convertTo(out, -1, f, (1.0 - f) * gray_mean);
    return out;
}
inline cv::Mat adjust_saturation(const cv::Mat& img, double f) {  // blend with the grayscale image
    if (img.channels() == 1) return img;  // gray has no saturation
    cv::Mat out;
    cv::addWeighted(img, f, Grayscale{}(img), 1.0 - f, 0.0, out);
    return out;
}
inline cv::Mat adjust_hue(const cv::Mat& img, double shift_turns) {  // rotate the hue in HSV
    if (img.channels() == 1 || shift_turns == 0) return img;
    cv::Mat f, hsv;
    img.convertTo(f, CV_32F, 1.0 / 255.0);
    cv::cvtColor(f, hsv, cv::COLOR_RGB2HSV);  // float: H in [0, 360)
    const float shift = static_cast<float>(shift_turns * 360.0);
    for (int y = 0; y < hsv.rows; ++y) {
        auto* p = hsv.ptr<cv::Vec3f>(y);
        for (int x = 0; x < hsv.cols; ++x) {
            float h = p[x][0] + shift;
            h -= 360.0f * std::floor(h / 360.0f);
            p[x][0] = h;
        }
    }
    cv::cvtColor(hsv, f, cv::COLOR_HSV2RGB);
    cv::Mat out;
    f.convertTo(out, CV_8U, 255.0);
    return out;
}

/// SPEC 3/6 colour jitter: brightness and contrast factors U[1-b, 1+b], saturation U[1-s, 1+s],
/// hue shift U[-h, h] turns, the four applied in a random order, the whole with probability p.
struct ColorJitter {
    double brightness = 0.4, contrast = 0.4, saturation = 0.2, hue = 0.1;
    double p = 0.8;

    /// Always consumes the same number of draws, whether or not it applies.
    JitterDraw draw(Rng& rng) const {
        JitterDraw d;
        d.apply = rng.bernoulli(p);
        for (int i = 3; i > 0; --i)  // Fisher-Yates
            std::swap(d.order[static_cast<std::size_t>(i)], d.order[rng.below(static_cast<std::uint64_t>(i + 1))]);
        d.brightness = rng.uniform(1.0 - brightness, 1.0 + brightness);
        d.contrast = rng.uniform(1.0 - contrast, 1.0 + contrast);
        d.saturation = rng.uniform(1.0 - saturation, 1.0 + saturation);
        d.hue = rng.uniform(-hue, hue);
        return d;
    }
    static cv::Mat apply(const cv::Mat& img, const JitterDraw& d) {
        check_image(img, "ColorJitter");
        if (!d.apply) return img;
        cv::Mat out = img;
        for (int op : d.order) {
            switch (op) {
                case 0: out = adjust_brightness(out, d.brightness); break;
                case 1: out = adjust_contrast(out, d.contrast); break;
                case 2: out = adjust_saturation(out, d.saturation); break;
                default: out = adjust_hue(out, d.hue); break;
            }
        }
        return out;
    }
    cv::Mat operator()(const cv::Mat& img, Rng& rng) const { return apply(img, draw(rng)); }
};

/// Exactly one of the transforms, chosen uniformly (SPEC 3: one of grayscale, solarize, blur).
template <class... T>
struct OneOf {
    std::tuple<T...> choices;

    cv::Mat operator()(const cv::Mat& img, Rng& rng) const {
        const std::size_t k = static_cast<std::size_t>(rng.below(sizeof...(T)));
        return apply_at(img, rng, k, std::index_sequence_for<T...>{});
    }

private:
    template <std::size_t... I>
    cv::Mat apply_at(const cv::Mat& img, Rng& rng, std::size_t k, std::index_sequence<I...>) const {
        cv::Mat out;
        ((k == I ? (void)(out = std::get<I>(choices)(img, rng)) : (void)0), ...);
        return out;
    }
};

// ---- to the model's layout -------------------------------------------------------------------

/// Per-channel mean and std on the [0, 1] scale (RGB order).
struct Normalization {
    std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
    std::array<float, 3> std{0.229f, 0.224f, 0.225f};

    static Normalization imagenet() { return {}; }
    /// Fashion-MNIST training-set statistics (gray, so the three channels agree).
    static Normalization fashion_mnist() { return {{0.2860f, 0.2860f, 0.2860f}, {0.3530f, 0.3530f, 0.3530f}}; }
    static Normalization mnist() { return {{0.1307f, 0.1307f, 0.1307f}, {0.3081f, 0.3081f, 0.3081f}}; }
    static Normalization cifar10() { return {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}}; }
    static Normalization identity() { return {{0.f, 0.f, 0.f}, {1.f, 1.f, 1.f}}; }

    /// The values a 1-channel model uses: the luma-weighted mean and std.
    float gray_mean() const { return static_cast<float>(kGrayR * mean[0] + kGrayG * mean[1] + kGrayB * mean[2]); }
    float gray_std() const { return static_cast<float>(kGrayR * std[0] + kGrayG * std[1] + kGrayB * std[2]); }
};

/// Writes `img` (8-bit HWC, 1 or 3 channels) as normalised CHW float with `channels` channels into
/// out[channels * rows * cols]: gray is replicated for a 3-channel model; RGB becomes luma (unrounded)
/// for a 1-channel model. value = (pixel / 255 - mean) / std.
inline void to_chw(const cv::Mat& img, int channels, const Normalization& norm, float* out) {
    check_image(img, "to_chw");
    LCMAE_CHECK(channels == 1 || channels == 3, "to_chw: the model takes 1 or 3 channels, got " << channels);
    const int h = img.rows, w = img.cols, cin = img.channels();
    const std::size_t plane = static_cast<std::size_t>(h) * w;
    if (channels == 1 && cin == 3) {
        const float scale = 1.0f / (255.0f * norm.gray_std()), bias = -norm.gray_mean() / norm.gray_std();
        for (int y = 0; y < h; ++y) {
            const auto* p = img.ptr<std::uint8_t>(y);
            float* o = out + static_cast<std::size_t>(y) * w;
            for (int x = 0; x < w; ++x)
                o[x] = static_cast<float>(kGrayR * p[3 * x] + kGrayG * p[3 * x + 1] + kGrayB * p[3 * x + 2]) * scale + bias;
        }
        return;
    }
    // One lookup table per output channel: 256 floats, exact, and faster than arithmetic per pixel.
    std::array<std::array<float, 256>, 3> lut;
    for (int c = 0; c < channels; ++c) {
        const float m = channels == 1 ? norm.gray_mean() : norm.mean[static_cast<std::size_t>(c)];
        const float s = channels == 1 ? norm.gray_std() : norm.std[static_cast<std::size_t>(c)];
        for (int v = 0; v < 256; ++v) lut[static_cast<std::size_t>(c)][static_cast<std::size_t>(v)] = (static_cast<float>(v) / 255.0f - m) / s;
    }
    for (int c = 0; c < channels; ++c) {
        const auto& t = lut[static_cast<std::size_t>(c)];
        const int src = cin == 1 ? 0 : c;
        float* o = out + static_cast<std::size_t>(c) * plane;
        for (int y = 0; y < h; ++y) {
            const auto* p = img.ptr<std::uint8_t>(y);
            for (int x = 0; x < w; ++x) o[static_cast<std::size_t>(y) * w + x] = t[p[x * cin + src]];
        }
    }
}

}  // namespace lcmae::data
