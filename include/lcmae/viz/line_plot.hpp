// lcmae/viz/line_plot.hpp - line charts drawn with OpenCV (training curves, accuracy tables as
// curves): axes with "nice" ticks (1, 2, 5 x 10^k), tick labels, axis labels, a title and a legend,
// antialiased lines, optional log-scaled y axis. Part of the OpenCV side of the library
// (lcmae::data links OpenCV); the model code never sees it.
//
//   viz::Series a{"MAE", steps, losses}, b{"LC-MAE", steps2, losses2};
//   cv::Mat img = viz::draw_line_plot({a, b}, {.title = "loss", .xlabel = "step", .ylabel = "loss"});
//   viz::write_png("curves.png", img);
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "lcmae/core/error.hpp"

namespace lcmae::viz {

/// One curve: points (x[i], y[i]); non-finite points are skipped (the line breaks there).
struct Series {
    std::string label;
    std::vector<double> x, y;
    cv::Scalar color{-1, -1, -1};  // BGR; negative = the next colour of the palette
    int thickness = 2;
};

struct PlotOptions {
    std::string title, xlabel, ylabel;
    int width = 960, height = 600;
    bool log_y = false;       // y on a log10 scale (every y must then be > 0)
    double y_min = NAN, y_max = NAN;  // fixed y range; NaN = from the data
};

/// Tick positions covering [lo, hi] with about `target` steps of 1, 2 or 5 x 10^k.
inline std::vector<double> nice_ticks(double lo, double hi, int target = 6) {
    LCMAE_CHECK(std::isfinite(lo) && std::isfinite(hi) && hi > lo, "nice_ticks: need a finite range lo < hi, got [" << lo << ", " << hi << "]");
    const double raw = (hi - lo) / std::max(1, target);
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 5.0, 10.0})
        if (m * mag >= raw) { step = m * mag; break; }
    std::vector<double> t;
    for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
    return t;
}

/// "%g"-style tick label with no more digits than the step needs.
inline std::string tick_label(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

namespace detail {
inline cv::Scalar palette(int i) {
    static const cv::Scalar c[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44}, {40, 39, 214}, {189, 103, 148}, {75, 86, 140}};
    return c[i % 6];
}
}  // namespace detail

/// The data range of all series (finite points; y > 0 when log_y) as {xmin, xmax, ymin, ymax}.
inline cv::Vec4d data_range(const std::vector<Series>& series, bool log_y) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (const auto& s : series) {
        LCMAE_CHECK(s.x.size() == s.y.size(), "draw_line_plot: series '" << s.label << "' has " << s.x.size() << " x and " << s.y.size() << " y values");
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (log_y && !(s.y[i] > 0))) continue;
            x0 = std::min(x0, s.x[i]); x1 = std::max(x1, s.x[i]);
            y0 = std::min(y0, s.y[i]); y1 = std::max(y1, s.y[i]);
        }
    }
    LCMAE_CHECK(std::isfinite(x0), "draw_line_plot: no finite point to draw" << (log_y ? " (log y needs y > 0)" : ""));
    return {x0, x1, y0, y1};
}

/// Draws the series into a white BGR image of opts.width x opts.height.
inline cv::Mat draw_line_plot(const std::vector<Series>& series, const PlotOptions& opts) {
    LCMAE_CHECK(opts.width >= 200 && opts.height >= 150, "draw_line_plot: image " << opts.width << " x " << opts.height << " is too small (need >= 200 x 150)");
    const cv::Vec4d r = data_range(series, opts.log_y);
    double x0 = r[0], x1 = r[1];
    double y0 = std::isfinite(opts.y_min) ? opts.y_min : r[2], y1 = std::isfinite(opts.y_max) ? opts.y_max : r[3];
    auto fy = [&](double y) { return opts.log_y ? std::log10(y) : y; };
    y0 = fy(y0); y1 = fy(y1);
    if (x1 <= x0) { x0 -= 0.5; x1 += 0.5; }
    if (y1 <= y0) { const double d = std::max(1e-12, std::abs(y0) * 0.05); y0 -= d; y1 += d; }
    const double pad = (y1 - y0) * 0.05;  // data ranges get 5% room; a fixed end is kept exactly
    if (!std::isfinite(opts.y_min)) y0 -= pad;
    if (!std::isfinite(opts.y_max)) y1 += pad;

    const int font = cv::FONT_HERSHEY_SIMPLEX;
    const double fs = 0.5;
    const int left = 90, right = 30, top = opts.title.empty() ? 25 : 55, bottom = 70;
    const int W = opts.width, H = opts.height, pw = W - left - right, ph = H - top - bottom;
    LCMAE_CHECK(pw > 50 && ph > 50, "draw_line_plot: plot area too small");
    cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
    auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
    auto py = [&](double y) { return top + (1.0 - (fy(y) - y0) / (y1 - y0)) * ph; };
    const cv::Scalar black(0, 0, 0), grid(225, 225, 225), gray(90, 90, 90);

    // grid and ticks
    for (double t : nice_ticks(x0, x1)) {
        const int X = int(std::lround(px(t)));
        cv::line(img, {X, top}, {X, top + ph}, grid, 1, cv::LINE_AA);
        cv::line(img, {X, top + ph}, {X, top + ph + 5}, black, 1, cv::LINE_AA);
        const std::string s = tick_label(t);
        int base = 0;
        const cv::Size sz = cv::getTextSize(s, font, fs, 1, &base);
        cv::putText(img, s, {X - sz.width / 2, top + ph + 8 + sz.height}, font, fs, gray, 1, cv::LINE_AA);
    }
    std::vector<double> yt;
    if (opts.log_y) {
        for (double e = std::floor(y0); e <= std::ceil(y1); e += 1.0)
            for (double m : {1.0, 2.0, 5.0})
                if (const double v = std::log10(m) + e; v >= y0 && v <= y1) yt.push_back(std::pow(10.0, v));
    } else {
        yt = nice_ticks(y0, y1);
    }
    for (double t : yt) {
        const int Y = int(std::lround(py(t)));
        cv::line(img, {left, Y}, {left + pw, Y}, grid, 1, cv::LINE_AA);
        cv::line(img, {left - 5, Y}, {left, Y}, black, 1, cv::LINE_AA);
        const std::string s = tick_label(t);
        int base = 0;
        const cv::Size sz = cv::getTextSize(s, font, fs, 1, &base);
        cv::putText(img, s, {left - 8 - sz.width, Y + sz.height / 2}, font, fs, gray, 1, cv::LINE_AA);
    }
    cv::rectangle(img, {left, top}, {left + pw, top + ph}, black, 1, cv::LINE_AA);

    // curves, clipped to the plot area
    cv::Mat area = img(cv::Rect(left, top, pw + 1, ph + 1));
    int next_colour = 0;
    std::vector<cv::Scalar> colours;
    for (const auto& s : series) {
        const cv::Scalar c = s.color[0] >= 0 ? s.color : detail::palette(next_colour++);
        colours.push_back(c);
        bool have_prev = false;
        cv::Point2d prev;
        for (std::size_t i = 0; i < s.x.size(); ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (opts.log_y && !(s.y[i] > 0))) { have_prev = false; continue; }
            const cv::Point2d p(px(s.x[i]) - left, py(s.y[i]) - top);
            // fixed-point coordinates (shift 4) keep sub-pixel positions for LINE_AA
            auto fp = [](cv::Point2d q) { return cv::Point(int(std::lround(q.x * 16)), int(std::lround(q.y * 16))); };
            if (have_prev) cv::line(area, fp(prev), fp(p), c, s.thickness, cv::LINE_AA, 4);
            else if (s.x.size() == 1) cv::circle(area, fp(p), 3 * 16, c, cv::FILLED, cv::LINE_AA, 4);
            prev = p;
            have_prev = true;
        }
    }

    // labels and title
    auto centred = [&](const std::string& s, int cx, int y, double scale, int thick) {
        int base = 0;
        cv::Size sz = cv::getTextSize(s, font, scale, thick, &base);
        while (sz.width > W - 20 && scale > 0.3) {  // a long title shrinks to fit the image
            scale *= 0.9;
            sz = cv::getTextSize(s, font, scale, thick, &base);
        }
        cv::putText(img, s, {cx - sz.width / 2, y}, font, scale, black, thick, cv::LINE_AA);
    };
    if (!opts.title.empty()) centred(opts.title, left + pw / 2, 35, 0.7, 2);
    if (!opts.xlabel.empty()) centred(opts.xlabel, left + pw / 2, H - 22, 0.6, 1);
    if (!opts.ylabel.empty()) {
        // drawn horizontally into a strip, then rotated to read bottom-up
        int base = 0;
        const cv::Size sz = cv::getTextSize(opts.ylabel, font, 0.6, 1, &base);
        cv::Mat strip(sz.height + base + 6, sz.width + 6, CV_8UC3, cv::Scalar(255, 255, 255));
        cv::putText(strip, opts.ylabel, {3, sz.height + 3}, font, 0.6, black, 1, cv::LINE_AA);
        cv::Mat rot;
        cv::rotate(strip, rot, cv::ROTATE_90_COUNTERCLOCKWISE);
        const int y = std::max(0, top + ph / 2 - rot.rows / 2);
        if (y + rot.rows <= H && 8 + rot.cols <= W) rot.copyTo(img(cv::Rect(8, y, rot.cols, rot.rows)));
    }

    // legend (top right, inside the plot)
    if (series.size() > 1 || (!series.empty() && !series[0].label.empty())) {
        int wmax = 0, base = 0;
        for (const auto& s : series) wmax = std::max(wmax, cv::getTextSize(s.label, font, fs, 1, &base).width);
        const int rowh = 22, bw = wmax + 50, bh = rowh * int(series.size()) + 10;
        const int bx = left + pw - bw - 10, by = top + 10;
        cv::rectangle(img, {bx, by}, {bx + bw, by + bh}, cv::Scalar(255, 255, 255), cv::FILLED);
        cv::rectangle(img, {bx, by}, {bx + bw, by + bh}, gray, 1, cv::LINE_AA);
        for (std::size_t i = 0; i < series.size(); ++i) {
            const int y = by + 5 + rowh * int(i) + rowh / 2;
            cv::line(img, {bx + 8, y}, {bx + 36, y}, colours[i], 3, cv::LINE_AA);
            cv::putText(img, series[i].label, {bx + 42, y + 5}, font, fs, black, 1, cv::LINE_AA);
        }
    }
    return img;
}

/// Writes `img` as PNG; an lcmae::Error names the file when OpenCV cannot.
inline void write_png(const std::string& path, const cv::Mat& img) {
    bool ok = false;
    try {
        ok = cv::imwrite(path, img);
    } catch (const cv::Exception& e) {
        LCMAE_FAIL("cannot write PNG '" << path << "': " << e.what());
    }
    LCMAE_CHECK(ok, "cannot write PNG '" << path << "' (does the folder exist and is it writable?)");
}

}  // namespace lcmae::viz
