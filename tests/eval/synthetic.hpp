// tests/eval/synthetic.hpp - labelled feature sets the evaluation tests generate: well separated
// Gaussian clusters (one random direction per class), optionally with shuffled labels; and small
// random gray image datasets.
#pragma once

#include <algorithm>
#include <memory>
#include <cstdint>
#include <numeric>
#include <vector>

#include "lcmae/core/rng.hpp"
#include "lcmae/eval/features.hpp"

namespace lcmae::test {

/// n rows of width dim in `classes` clusters: row = center[label] + N(0, noise^2) per value, with
/// centers of norm `radius` in random directions (nearly orthogonal in 32+ dims). The centers
/// depend on `seed` only, so two calls with one seed and different `draw` share the classes.
inline eval::FeatureSet clusters(long n, long dim, int classes, std::uint64_t seed, std::uint64_t draw, double radius = 8.0,
                                 double noise = 1.0) {
    Rng rc(seed, 1);
    std::vector<double> centers(static_cast<std::size_t>(classes * dim));
    for (int c = 0; c < classes; ++c) {
        double s = 0;
        for (long j = 0; j < dim; ++j) s += std::pow(centers[static_cast<std::size_t>(c * dim + j)] = rc.normal(), 2);
        for (long j = 0; j < dim; ++j) centers[static_cast<std::size_t>(c * dim + j)] *= radius / std::sqrt(s);
    }
    Rng r(seed, 2 + draw);
    eval::FeatureSet f;
    f.n = n;
    f.dim = dim;
    f.num_classes = classes;
    f.values.resize(static_cast<std::size_t>(n * dim));
    f.labels.resize(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        const int y = static_cast<int>(r.below(static_cast<std::uint64_t>(classes)));
        f.labels[static_cast<std::size_t>(i)] = y;
        for (long j = 0; j < dim; ++j)
            f.row(i)[j] = static_cast<float>(centers[static_cast<std::size_t>(y * dim + j)] + noise * r.normal());
    }
    return f;
}

/// The same rows with their labels permuted at random (labels carry no information).
inline eval::FeatureSet shuffled_labels(eval::FeatureSet f, std::uint64_t seed) {
    Rng r(seed, 77);
    for (long i = f.n - 1; i > 0; --i)
        std::swap(f.labels[static_cast<std::size_t>(i)], f.labels[static_cast<std::size_t>(r.below(static_cast<std::uint64_t>(i + 1)))]);
    return f;
}

/// n random gray images of size s x s with labels i % 3.
inline std::shared_ptr<data::InMemoryDataset> toy_images(std::size_t n, int s, std::uint64_t seed = 1) {
    Rng r(seed, 5);
    std::vector<std::uint8_t> px(n * std::size_t(s * s));
    for (auto& p : px) p = static_cast<std::uint8_t>(r.below(256));
    std::vector<int> labels(n);
    for (std::size_t i = 0; i < n; ++i) labels[i] = int(i % 3);
    return std::make_shared<data::InMemoryDataset>("toy", std::move(px), n, s, s, 1, std::move(labels), 3);
}

}  // namespace lcmae::test
