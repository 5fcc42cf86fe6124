// lcmae/analysis/attention_map.hpp - attention maps as in the paper's Fig. 1 (SPEC 5): for a query
// patch (r, c), each head's attention row over the L = G x G patch tokens (the CLS column left out)
// reshaped to the G x G grid, plus the mean over heads, each scaled to its own maximum, upsampled
// (nearest: one block per patch) and overlaid on the image with the JET colormap.
//
// Layout of the grid: one row per query; columns: the image with the query patch outlined, head
// 0 .. H-1, the mean of the heads. Each cell is `cell` x `cell` pixels.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "lcmae/core/error.hpp"

namespace lcmae::analysis {

/// A query patch: grid row and column.
struct Query {
    long row = 0, col = 0;
};

/// Head h's attention of query q over the patches, (G, G) row-major; h == heads = the mean of the
/// heads. probs: (heads, N, N) of one image, N = 1 + G * G.
inline std::vector<float> attention_row(const float* probs, long heads, long G, Query q, long h) {
    const long N = 1 + G * G, i = 1 + q.row * G + q.col;
    std::vector<float> out(static_cast<std::size_t>(G * G), 0.0f);
    for (long k = (h == heads ? 0 : h); k < (h == heads ? heads : h + 1); ++k)
        for (long j = 0; j < G * G; ++j)
            out[static_cast<std::size_t>(j)] += probs[(k * N + i) * N + 1 + j] / float(h == heads ? heads : 1);
    return out;
}

/// The map of one row (G, G) scaled to its maximum, JET-coloured, blended 50/50 with `base`
/// (cell x cell, BGR).
inline cv::Mat overlay(const std::vector<float>& row, long G, const cv::Mat& base) {
    cv::Mat m(static_cast<int>(G), static_cast<int>(G), CV_32F, const_cast<float*>(row.data()));
    double mx = 0;
    cv::minMaxLoc(m, nullptr, &mx);
    cv::Mat u8, big, colour, out;
    m.convertTo(u8, CV_8U, mx > 0 ? 255.0 / mx : 0.0);
    cv::resize(u8, big, base.size(), 0, 0, cv::INTER_NEAREST);
    cv::applyColorMap(big, colour, cv::COLORMAP_JET);
    cv::addWeighted(base, 0.5, colour, 0.5, 0.0, out);
    return out;
}

/// The grid described above for image (8-bit gray or BGR) and its last-block probs (heads, N, N).
inline cv::Mat attention_grid(const cv::Mat& image, const float* probs, long heads, long G, const std::vector<Query>& queries,
                              int cell = 168) {
    LCMAE_CHECK(!queries.empty(), "attention_grid: no query patch given");
    LCMAE_CHECK(cell >= 8, "attention_grid: a cell of " << cell << " px is too small");
    for (const Query& q : queries)
        LCMAE_CHECK(q.row >= 0 && q.row < G && q.col >= 0 && q.col < G,
                    "query patch (" << q.row << ", " << q.col << ") is outside the " << G << " x " << G << " grid");
    cv::Mat bgr, base;
    if (image.channels() == 1) cv::cvtColor(image, bgr, cv::COLOR_GRAY2BGR);
    else bgr = image;
    cv::resize(bgr, base, {cell, cell}, 0, 0, cv::INTER_CUBIC);
    const int cols = static_cast<int>(heads) + 2;
    cv::Mat grid(cell * static_cast<int>(queries.size()), cell * cols, CV_8UC3, cv::Scalar(255, 255, 255));
    for (std::size_t r = 0; r < queries.size(); ++r) {
        const int y = static_cast<int>(r) * cell;
        cv::Mat first = base.clone();
        const double px = double(cell) / double(G);
        cv::rectangle(first, cv::Point(int(queries[r].col * px), int(queries[r].row * px)),
                      cv::Point(int((queries[r].col + 1) * px) - 1, int((queries[r].row + 1) * px) - 1), cv::Scalar(0, 0, 255), 2);
        first.copyTo(grid(cv::Rect(0, y, cell, cell)));
        for (long h = 0; h <= heads; ++h)
            overlay(attention_row(probs, heads, G, queries[r], h), G, base)
                .copyTo(grid(cv::Rect(cell * static_cast<int>(1 + h), y, cell, cell)));
    }
    return grid;
}

}  // namespace lcmae::analysis
