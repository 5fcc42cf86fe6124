// lcmae/eval/knn.hpp - DINO's weighted k-NN classifier (SPEC 4; Caron et al. 2021, eval_knn.py).
//
// Train and test features are l2-normalised (a zero vector stays zero); the similarity of a test
// and a train sample is their cosine, s = <x, y>. Each test sample takes its k most similar train
// samples (k = 20) and every neighbour votes for its class with weight exp(s / T) (T = 0.07); the
// classes ranked by their summed votes give the prediction. top-1: the best class is the label;
// top-5 (reported when there are more than 5 classes): the label is among the 5 best classes and
// got a vote (a class without votes never counts, so top-5 cannot be won by a tie among zeros).
// Ties in votes go to the smaller class index; ties in similarity to the smaller train index.
//
// This is host code over host feature matrices (evaluation data, not training tensors). The
// similarities of a block of test rows with ALL train rows are one Eigen GEMM (blocked, packed,
// vectorised), blocks run in parallel on `threads` threads (Eigen itself single-threaded inside),
// and the top-k is a scan of each similarity row with a small sorted list. 10k x 60k x 192 is a
// few seconds on 2 cores; the largest buffer is threads x block x n_train floats.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <Eigen/Core>
#include <omp.h>

#include "lcmae/core/error.hpp"
#include "lcmae/eval/features.hpp"

namespace lcmae::eval {

struct KnnConfig {
    int k = 20;
    double temperature = 0.07;
    long block = 128;  // test rows per GEMM
    int threads = 0;   // 0 = all cores
};

struct KnnResult {
    double top1 = 0, top5 = 0;  // percent
    bool has_top5 = false;      // more than 5 classes
    long n_train = 0, n_test = 0;
    int k = 0;
    std::vector<int> predictions;  // the top-1 class of every test row
};

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The rows of f, each divided by its l2 norm (computed in double; zero rows stay zero).
inline RowMatrix l2_normalized(const FeatureSet& f) {
    RowMatrix m(f.n, f.dim);
    for (long i = 0; i < f.n; ++i) {
        const float* r = f.row(i);
        double s = 0;
        for (long c = 0; c < f.dim; ++c) s += double(r[c]) * double(r[c]);
        const double inv = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
        for (long c = 0; c < f.dim; ++c) m(i, c) = static_cast<float>(r[c] * inv);
    }
    return m;
}

/// Weighted k-NN of every test row among the train rows.
inline KnnResult knn_classify(const FeatureSet& train, const FeatureSet& test, const KnnConfig& cfg = {}) {
    train.validate("k-NN train features");
    test.validate("k-NN test features");
    LCMAE_CHECK(train.dim == test.dim, "k-NN: train features have width " << train.dim << ", test features " << test.dim);
    LCMAE_CHECK(cfg.k >= 1, "k-NN: k must be >= 1, got " << cfg.k);
    LCMAE_CHECK(cfg.k <= train.n, "k-NN: k = " << cfg.k << " is larger than the " << train.n << " train samples");
    LCMAE_CHECK(cfg.temperature > 0, "k-NN: the temperature must be positive, got " << cfg.temperature);
    LCMAE_CHECK(cfg.block >= 1, "k-NN: block must be >= 1, got " << cfg.block);
    const int C = std::max(train.num_classes, test.num_classes);
    const RowMatrix tr = l2_normalized(train), te = l2_normalized(test);
    const long ntr = train.n, nte = test.n, k = cfg.k;
    const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
    KnnResult res;
    res.n_train = ntr;
    res.n_test = nte;
    res.k = cfg.k;
    res.has_top5 = C > 5;
    res.predictions.assign(static_cast<std::size_t>(nte), -1);
    std::vector<char> hit1(static_cast<std::size_t>(nte), 0), hit5(static_cast<std::size_t>(nte), 0);
    const long nblocks = (nte + cfg.block - 1) / cfg.block;
#pragma omp parallel num_threads(threads)
    {
        RowMatrix sim;  // this thread's (block, n_train) similarities
        std::vector<float> top_s(static_cast<std::size_t>(k));
        std::vector<long> top_i(static_cast<std::size_t>(k));
        std::vector<double> votes(static_cast<std::size_t>(C));
        std::vector<int> order(static_cast<std::size_t>(C));
#pragma omp for schedule(dynamic, 1)
        for (long blk = 0; blk < nblocks; ++blk) {
            const long r0 = blk * cfg.block, rows = std::min(cfg.block, nte - r0);
            sim.resize(rows, ntr);
            sim.noalias() = te.middleRows(r0, rows) * tr.transpose();  // Eigen: one thread inside a parallel region
            for (long r = 0; r < rows; ++r) {
                const float* s = sim.row(r).data();
                // top-k by a scan: top_s sorted descending, filled = how many are valid
                long filled = 0;
                for (long j = 0; j < ntr; ++j) {
                    const float v = s[j];
                    if (filled == k && !(v > top_s[static_cast<std::size_t>(k - 1)])) continue;
                    long pos = filled < k ? filled++ : k - 1;
                    while (pos > 0 && v > top_s[static_cast<std::size_t>(pos - 1)]) {
                        top_s[static_cast<std::size_t>(pos)] = top_s[static_cast<std::size_t>(pos - 1)];
                        top_i[static_cast<std::size_t>(pos)] = top_i[static_cast<std::size_t>(pos - 1)];
                        --pos;
                    }
                    top_s[static_cast<std::size_t>(pos)] = v;
                    top_i[static_cast<std::size_t>(pos)] = j;
                }
                std::fill(votes.begin(), votes.end(), 0.0);
                for (long t = 0; t < k; ++t)
                    votes[static_cast<std::size_t>(train.labels[static_cast<std::size_t>(top_i[static_cast<std::size_t>(t)])])] +=
                        std::exp(double(top_s[static_cast<std::size_t>(t)]) / cfg.temperature);
                for (int c = 0; c < C; ++c) order[static_cast<std::size_t>(c)] = c;
                std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
                    return votes[static_cast<std::size_t>(a)] > votes[static_cast<std::size_t>(b)];
                });
                const long i = r0 + r;
                const int label = test.labels[static_cast<std::size_t>(i)];
                res.predictions[static_cast<std::size_t>(i)] = order[0];
                hit1[static_cast<std::size_t>(i)] = order[0] == label;
                for (int t = 0; t < std::min(5, C); ++t)
                    if (order[static_cast<std::size_t>(t)] == label && votes[static_cast<std::size_t>(label)] > 0)
                        hit5[static_cast<std::size_t>(i)] = 1;
            }
        }
    }
    long c1 = 0, c5 = 0;
    for (long i = 0; i < nte; ++i) {
        c1 += hit1[static_cast<std::size_t>(i)];
        c5 += hit5[static_cast<std::size_t>(i)];
    }
    res.top1 = 100.0 * double(c1) / double(nte);
    res.top5 = 100.0 * double(c5) / double(nte);
    return res;
}

}  // namespace lcmae::eval
