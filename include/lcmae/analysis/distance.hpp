// lcmae/analysis/distance.hpp - mean attention distance (SPEC 5; the paper's motivation, after
// Dosovitskiy et al.): for one head's softmax attention A (N x N, token 0 = CLS), drop the CLS row
// and column WITHOUT renormalising, and average over the L = G x G patch queries i the expected
// distance sum_j A[i, j] d(i, j), where d(i, j) = patch * euclidean distance of the grid cells.
// Host code on plain arrays: the attention comes from the backend's arena (analysis/layers.hpp).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "lcmae/core/error.hpp"

namespace lcmae::analysis {

/// d(i, j) for the L = G * G patches in row-major grid order: (L, L), in pixels (patch * cells).
inline std::vector<double> grid_distances(long G, double patch) {
    LCMAE_CHECK(G >= 1 && patch > 0, "grid_distances: needs G >= 1 and patch > 0, got G " << G << ", patch " << patch);
    const long L = G * G;
    std::vector<double> d(static_cast<std::size_t>(L * L));
    for (long i = 0; i < L; ++i)
        for (long j = 0; j < L; ++j) {
            const double dr = double(i / G - j / G), dc = double(i % G - j % G);
            d[static_cast<std::size_t>(i * L + j)] = patch * std::sqrt(dr * dr + dc * dc);
        }
    return d;
}

/// One head's mean attention distance: a (N, N) row-major with N = 1 + L (token 0 = CLS), dist
/// from grid_distances (L, L). Returns (1 / L) sum_i sum_j a[1 + i, 1 + j] d(i, j).
template <class T>
double mean_attention_distance(const T* a, long N, const std::vector<double>& dist) {
    const long L = N - 1;
    LCMAE_CHECK(L >= 1 && dist.size() == static_cast<std::size_t>(L * L),
                "mean_attention_distance: " << N << " tokens need a (" << L << " x " << L << ") distance table, got "
                                            << dist.size() << " values");
    double total = 0;
    for (long i = 0; i < L; ++i) {
        const T* row = a + (1 + i) * N + 1;
        const double* d = dist.data() + i * L;
        double s = 0;
        for (long j = 0; j < L; ++j) s += double(row[j]) * d[j];
        total += s;
    }
    return total / double(L);
}

/// Mean attention distance per (layer, head), accumulated over images.
struct DistanceTable {
    long layers = 0, heads = 0;
    std::vector<double> sum;  // (layers, heads): sum over images
    long images = 0;

    DistanceTable() = default;
    DistanceTable(long l, long h) : layers(l), heads(h), sum(static_cast<std::size_t>(l * h), 0.0) {}
    /// Adds one layer's attention for B images: probs (B, heads, N, N).
    template <class T>
    void add(long layer, const T* probs, long B, long N, const std::vector<double>& dist) {
        for (long b = 0; b < B; ++b)
            for (long h = 0; h < heads; ++h)
                sum[static_cast<std::size_t>(layer * heads + h)] += mean_attention_distance(probs + (b * heads + h) * N * N, N, dist);
    }
    /// The average over images of (layer, head); `images` must count the images added per layer.
    double at(long layer, long head) const { return sum[static_cast<std::size_t>(layer * heads + head)] / double(images); }
    /// The average over heads and images of one layer.
    double layer_mean(long layer) const {
        double s = 0;
        for (long h = 0; h < heads; ++h) s += at(layer, h);
        return s / double(heads);
    }
};

}  // namespace lcmae::analysis
