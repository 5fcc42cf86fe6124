// Each transform against its definition (SPEC 3 and 6).
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <map>
#include <set>

#include <opencv2/core.hpp>

#include "lcmae/data/transforms.hpp"
#include "lcmae/data/views.hpp"

using namespace lcmae;
using namespace lcmae::data;

namespace {
cv::Mat ramp(int h, int w, int channels = 1) {
    cv::Mat m(h, w, CV_8UC(channels));
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < channels; ++c) m.ptr<std::uint8_t>(y)[x * channels + c] = static_cast<std::uint8_t>((y * 10 + x + 50 * c) % 256);
    return m;
}
cv::Mat random_image(int h, int w, int channels, std::uint64_t seed) {
    cv::Mat m(h, w, CV_8UC(channels));
    Rng rng(seed, 0);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w * channels; ++x) m.ptr<std::uint8_t>(y)[x] = static_cast<std::uint8_t>(rng.below(256));
    return m;
}
bool same(const cv::Mat& a, const cv::Mat& b) {
    return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}
}  // namespace

TEST_CASE("reflect padding mirrors without repeating the edge") {
    const cv::Mat img = ramp(6, 7);
    const cv::Mat p = reflect_pad(img, 4);
    REQUIRE(p.rows == 14);
    REQUIRE(p.cols == 15);
    for (int y = -4; y < 10; ++y)
        for (int x = -4; x < 11; ++x) {
            const int sy = y < 0 ? -y : (y >= 6 ? 2 * 5 - y : y);
            const int sx = x < 0 ? -x : (x >= 7 ? 2 * 6 - x : x);
            CHECK(p.at<std::uint8_t>(y + 4, x + 4) == img.at<std::uint8_t>(sy, sx));
        }
    // the pixel just outside the edge is the second one inside, not the edge itself
    CHECK(p.at<std::uint8_t>(4, 3) == img.at<std::uint8_t>(0, 1));
    CHECK_THROWS_AS(reflect_pad(ramp(3, 3), 4), lcmae::Error);
}

TEST_CASE("simple resized crop at the native size is pad + crop + flip, all offsets and both flips") {
    const cv::Mat img = random_image(28, 28, 1, 7);
    const cv::Mat padded = reflect_pad(img, 4);
    SimpleResizedCrop t{28, 4, 0.5};
    std::set<std::pair<int, int>> offsets;
    int flips = 0;
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
        Rng rng(1, stream_id(i));
        const cv::Mat out = t(img, rng);
        REQUIRE(out.rows == 28);
        REQUIRE(out.cols == 28);
        bool found = false;
        for (int y = 0; y <= 8 && !found; ++y)
            for (int x = 0; x <= 8 && !found; ++x) {
                const cv::Mat win = padded(cv::Rect(x, y, 28, 28));
                if (same(out, win)) found = true, offsets.insert({y, x});
                else if (same(out, hflip(win))) found = true, offsets.insert({y, x}), ++flips;
            }
        REQUIRE(found);
    }
    CHECK(offsets.size() == 81);
    CHECK(std::abs(flips / double(n) - 0.5) < 0.05);
}

TEST_CASE("simple resized crop resizes the shorter side bicubically") {
    const cv::Mat img = random_image(40, 60, 3, 3);
    const cv::Mat r = resize_shorter(img, 20);
    CHECK(r.rows == 20);
    CHECK(r.cols == 30);
    cv::Mat expect;
    cv::resize(img, expect, cv::Size(30, 20), 0, 0, cv::INTER_CUBIC);
    CHECK(same(r, expect));
    Rng rng(0, 0);
    const cv::Mat out = SimpleResizedCrop{20, 4, 0.5}(img, rng);
    CHECK(out.rows == 20);
    CHECK(out.cols == 20);
    CHECK(out.channels() == 3);
}

TEST_CASE("flip mirrors left-right") {
    const cv::Mat img = ramp(3, 5, 3);
    const cv::Mat f = hflip(img);
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 5; ++x) CHECK(f.at<cv::Vec3b>(y, x) == img.at<cv::Vec3b>(y, 4 - x));
}

TEST_CASE("random resized crop boxes stay within the scale and ratio bounds") {
    RandomResizedCrop t{32};
    const int h = 300, w = 400;
    double area_sum = 0;
    const int n = 5000;
    double min_frac = 1, max_frac = 0, min_ratio = 10, max_ratio = 0;
    for (int i = 0; i < n; ++i) {
        Rng rng(3, stream_id(i));
        const Box b = t.box(h, w, rng);
        REQUIRE(b.x >= 0);
        REQUIRE(b.y >= 0);
        REQUIRE(b.x + b.w <= w);
        REQUIRE(b.y + b.h <= h);
        const double frac = double(b.w) * b.h / (double(h) * w);
        const double ratio = double(b.w) / b.h;
        area_sum += frac;
        min_frac = std::min(min_frac, frac), max_frac = std::max(max_frac, frac);
        min_ratio = std::min(min_ratio, ratio), max_ratio = std::max(max_ratio, ratio);
    }
    // rounding the sides to whole pixels moves area and ratio by about one pixel's worth
    CHECK(min_frac >= 0.2 * 0.98);
    CHECK(max_frac <= 1.0);
    CHECK(min_ratio >= 0.75 * 0.98);
    CHECK(max_ratio <= 4.0 / 3.0 * 1.02);
    CHECK(min_frac < 0.22);  // the whole range is used
    CHECK(max_ratio > 1.3);
    CHECK(min_ratio < 0.77);
    // boxes that fit are uniform in area on [0.2, 1]; large ones fail more often on a 3:4 image
    CHECK(area_sum / n > 0.45);
    CHECK(area_sum / n < 0.6);

    Rng rng(0, 0);
    const cv::Mat out = t(random_image(50, 70, 3, 1), rng);
    CHECK(out.rows == 32);
    CHECK(out.cols == 32);
}

TEST_CASE("random resized crop falls back to a centred crop with the ratio clamped") {
    RandomResizedCrop t{32};
    Rng rng(0, 0);
    const Box wide = t.box(10, 1000, rng);  // no box of area >= 2000 fits 10 rows
    CHECK(wide.h == 10);
    CHECK(wide.w == 13);
    CHECK(wide.x == (1000 - 13) / 2);
    CHECK(wide.y == 0);
    const Box tall = t.box(1000, 10, rng);
    CHECK(tall.w == 10);
    CHECK(tall.h == 13);
    CHECK(tall.y == (1000 - 13) / 2);
}

TEST_CASE("grayscale uses 0.299 R + 0.587 G + 0.114 B on every channel") {
    cv::Mat img(1, 4, CV_8UC3);
    img.at<cv::Vec3b>(0, 0) = {255, 0, 0};
    img.at<cv::Vec3b>(0, 1) = {0, 255, 0};
    img.at<cv::Vec3b>(0, 2) = {0, 0, 255};
    img.at<cv::Vec3b>(0, 3) = {10, 200, 90};
    const cv::Mat g = Grayscale{}(img);
    REQUIRE(g.channels() == 3);
    const int expect[4] = {76, 150, 29, static_cast<int>(std::lround(0.299 * 10 + 0.587 * 200 + 0.114 * 90))};
    for (int x = 0; x < 4; ++x)
        for (int c = 0; c < 3; ++c) CHECK(int(g.at<cv::Vec3b>(0, x)[c]) == expect[x]);
    const cv::Mat big = random_image(16, 16, 3, 5);
    const cv::Mat gb = to_gray(big);
    for (int y = 0; y < 16; ++y)
        for (int x = 0; x < 16; ++x) {
            const auto p = big.at<cv::Vec3b>(y, x);
            CHECK(std::abs(gb.at<std::uint8_t>(y, x) - (0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])) <= 0.5 + 1e-3);
        }
}

TEST_CASE("solarize inverts values at or above 128") {
    cv::Mat img(1, 256, CV_8UC1);
    for (int v = 0; v < 256; ++v) img.at<std::uint8_t>(0, v) = static_cast<std::uint8_t>(v);
    const cv::Mat s = Solarize{}(img);
    for (int v = 0; v < 256; ++v) CHECK(int(s.at<std::uint8_t>(0, v)) == (v >= 128 ? 255 - v : v));
    CHECK(int(s.at<std::uint8_t>(0, 127)) == 127);
    CHECK(int(s.at<std::uint8_t>(0, 128)) == 127);
}

TEST_CASE("colour jitter factors lie in range, the order is random, p = 0.8") {
    ColorJitter j;
    std::set<std::array<int, 4>> orders;
    int applied = 0;
    const int n = 4000;
    double bmin = 9, bmax = -9, cmin = 9, cmax = -9, smin = 9, smax = -9, hmin = 9, hmax = -9;
    for (int i = 0; i < n; ++i) {
        Rng rng(11, stream_id(i));
        const JitterDraw d = j.draw(rng);
        applied += d.apply;
        orders.insert(d.order);
        std::array<int, 4> sorted = d.order;
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted == std::array<int, 4>{0, 1, 2, 3});
        bmin = std::min(bmin, d.brightness), bmax = std::max(bmax, d.brightness);
        cmin = std::min(cmin, d.contrast), cmax = std::max(cmax, d.contrast);
        smin = std::min(smin, d.saturation), smax = std::max(smax, d.saturation);
        hmin = std::min(hmin, d.hue), hmax = std::max(hmax, d.hue);
    }
    CHECK(orders.size() == 24);
    CHECK(std::abs(applied / double(n) - 0.8) < 0.03);
    CHECK(bmin >= 0.6);
    CHECK(bmax <= 1.4);
    CHECK(bmin < 0.62);
    CHECK(bmax > 1.38);
    CHECK(cmin >= 0.6);
    CHECK(cmax <= 1.4);
    CHECK(smin >= 0.8);
    CHECK(smax <= 1.2);
    CHECK(smin < 0.81);
    CHECK(hmin >= -0.1);
    CHECK(hmax <= 0.1);
    CHECK(hmin < -0.098);
    CHECK(hmax > 0.098);
}

TEST_CASE("colour jitter adjustments follow their definitions") {
    cv::Mat px(1, 1, CV_8UC3, cv::Scalar(100, 150, 200));
    // brightness blends with black, clipped
    CHECK(adjust_brightness(px, 1.2).at<cv::Vec3b>(0, 0) == cv::Vec3b(120, 180, 240));
    CHECK(adjust_brightness(px, 1.4).at<cv::Vec3b>(0, 0) == cv::Vec3b(140, 210, 255));
    // contrast blends with the mean gray level of the image
    cv::Mat two(1, 2, CV_8UC1);
    two.at<std::uint8_t>(0, 0) = 100;
    two.at<std::uint8_t>(0, 1) = 200;
    const cv::Mat c = adjust_contrast(two, 0.5);  // mean 150: 150 + 0.5 (p - 150)
    CHECK(int(c.at<std::uint8_t>(0, 0)) == 125);
    CHECK(int(c.at<std::uint8_t>(0, 1)) == 175);
    // saturation blends with the grayscale image: 0 gives gray, 1 the input
    const cv::Mat img = random_image(8, 8, 3, 2);
    CHECK(same(adjust_saturation(img, 0.0), Grayscale{}(img)));
    CHECK(same(adjust_saturation(img, 1.0), img));
    // hue rotates in HSV: red + 1/3 turn = green, + 1/2 turn = cyan
    cv::Mat red(1, 1, CV_8UC3, cv::Scalar(255, 0, 0));
    CHECK(adjust_hue(red, 1.0 / 3.0).at<cv::Vec3b>(0, 0) == cv::Vec3b(0, 255, 0));
    CHECK(adjust_hue(red, 0.5).at<cv::Vec3b>(0, 0) == cv::Vec3b(0, 255, 255));
    CHECK(adjust_hue(red, -1.0 / 3.0).at<cv::Vec3b>(0, 0) == cv::Vec3b(0, 0, 255));
    // gray images have no hue or saturation
    const cv::Mat g = random_image(4, 4, 1, 9);
    CHECK(same(adjust_hue(g, 0.1), g));
    CHECK(same(adjust_saturation(g, 0.5), g));
    // applied in the drawn order: brightness then contrast differs from contrast then brightness
    JitterDraw d;
    d.apply = true;
    d.brightness = 1.4;
    d.contrast = 0.6;
    d.order = {0, 1, 2, 3};
    const cv::Mat a = ColorJitter::apply(img, d);
    d.order = {1, 0, 2, 3};
    const cv::Mat b = ColorJitter::apply(img, d);
    CHECK_FALSE(same(a, b));
    d.apply = false;
    CHECK(same(ColorJitter::apply(img, d), img));
}

TEST_CASE("gaussian blur sigma is drawn in [0.1, 2] and blurs with that sigma") {
    GaussianBlur b;
    double lo = 9, hi = 0;
    for (int i = 0; i < 2000; ++i) {
        Rng rng(5, stream_id(i));
        const double s = b.draw(rng);
        lo = std::min(lo, s), hi = std::max(hi, s);
    }
    CHECK(lo >= 0.1);
    CHECK(hi <= 2.0);
    CHECK(lo < 0.11);
    CHECK(hi > 1.99);
    for (double sigma : {0.8, 1.5, 2.0}) {
        // a bright line blurs into a Gaussian profile whose variance is sigma^2
        cv::Mat img(41, 41, CV_8UC1, cv::Scalar(0));
        img.col(20).setTo(250);
        const cv::Mat out = GaussianBlur::blur(img, sigma);
        double sum = 0, var = 0;
        for (int x = 0; x < 41; ++x) sum += out.at<std::uint8_t>(20, x);
        for (int x = 0; x < 41; ++x) var += out.at<std::uint8_t>(20, x) * double(x - 20) * (x - 20);
        CHECK(std::sqrt(var / sum) == doctest::Approx(sigma).epsilon(0.06));
    }
}

TEST_CASE("one of three picks each choice a third of the time") {
    OneOf<Grayscale, Solarize, GaussianBlur> one{{Grayscale{}, Solarize{}, GaussianBlur{}}};
    cv::Mat img(4, 4, CV_8UC3, cv::Scalar(200, 40, 90));
    std::map<int, int> counts;
    const int n = 3000;
    for (int i = 0; i < n; ++i) {
        Rng rng(8, stream_id(i));
        const cv::Vec3b p = one(img, rng).at<cv::Vec3b>(1, 1);
        if (p == cv::Vec3b(200, 40, 90)) counts[2]++;        // blur of a flat image is itself
        else if (p == cv::Vec3b(55, 40, 90)) counts[1]++;    // solarize
        else if (p[0] == p[1] && p[1] == p[2]) counts[0]++;  // grayscale
    }
    for (int k = 0; k < 3; ++k) CHECK(std::abs(counts[k] / double(n) - 1.0 / 3.0) < 0.03);
}

TEST_CASE("resize + centre crop for evaluation") {
    const cv::Mat img = random_image(64, 80, 3, 4);
    const cv::Mat out = ResizeCenterCrop{36, 32}(img);
    CHECK(out.rows == 32);
    CHECK(out.cols == 32);
    const cv::Mat r = resize_shorter(img, 36);  // 36 x 45
    CHECK(same(out, r(cv::Rect((45 - 32) / 2, 2, 32, 32))));
    CHECK_THROWS_AS(ResizeCenterCrop({32, 36})(img), lcmae::Error);
}

TEST_CASE("an image smaller than the crop is an error that says so") {
    Rng rng(0, 0);
    try {
        random_crop_box(20, 30, 32, rng);
        FAIL("no error");
    } catch (const lcmae::Error& e) {
        CHECK(std::string(e.what()).find("smaller than the crop") != std::string::npos);
    }
}

TEST_CASE("conversion to normalised CHW float") {
    cv::Mat img(2, 3, CV_8UC3);
    for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 3; ++x) img.at<cv::Vec3b>(y, x) = cv::Vec3b(10 * x, 100 + y, 255 - x);
    const Normalization n = Normalization::imagenet();
    std::vector<float> out(3 * 6);
    to_chw(img, 3, n, out.data());
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 2; ++y)
            for (int x = 0; x < 3; ++x)
                CHECK(out[c * 6 + y * 3 + x] ==
                      doctest::Approx((img.at<cv::Vec3b>(y, x)[c] / 255.0 - n.mean[c]) / n.std[c]).epsilon(1e-5));
    // RGB to a 1-channel model: unrounded luma, luma-weighted statistics
    std::vector<float> one(6);
    to_chw(img, 1, Normalization::identity(), one.data());
    const auto p = img.at<cv::Vec3b>(1, 2);
    CHECK(one[5] == doctest::Approx((0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]) / 255.0).epsilon(1e-5));
    // gray to a 3-channel model: replicated
    const cv::Mat g = random_image(2, 3, 1, 1);
    std::vector<float> rep(18);
    to_chw(g, 3, Normalization::fashion_mnist(), rep.data());
    for (int i = 0; i < 6; ++i) {
        CHECK(rep[i] == rep[6 + i]);
        CHECK(rep[i] == rep[12 + i]);
        CHECK(rep[i] == doctest::Approx((g.data[i] / 255.0 - 0.2860) / 0.3530).epsilon(1e-5));
    }
}

TEST_CASE("the LC-MAE pair: u is crop + flip only, v adds jitter and one of three, crops independent") {
    ViewConfig cfg;
    cfg.size = 28;
    PairView<crop::SimpleResized> pair(cfg);
    const cv::Mat img = random_image(28, 28, 3, 12);
    const cv::Mat padded = reflect_pad(img, 4);
    int differ = 0;
    for (int i = 0; i < 50; ++i) {
        Rng r1(0, stream_id(0, i, 0)), r2(0, stream_id(0, i, 1));
        const cv::Mat u = pair.u(img, r1);
        // u must be an exact window (or mirrored window) of the padded image
        bool found = false;
        for (int y = 0; y <= 8 && !found; ++y)
            for (int x = 0; x <= 8 && !found; ++x) {
                const cv::Mat w = padded(cv::Rect(x, y, 28, 28));
                found = same(u, w) || same(u, hflip(w));
            }
        CHECK(found);
        const cv::Mat v = pair.v(img, r2);
        CHECK(v.rows == 28);
        differ += !same(u, v);
    }
    CHECK(differ == 50);
    SingleView<crop::RandomResized> single(cfg);
    Rng r(0, 0);
    CHECK(single(img, r).rows == 28);
}
