// Weighted k-NN (eval/knn.hpp): separable clusters are classified (>= 95% top-1), shuffled labels
// give chance, and the voting rule is DINO's (checked on a hand-made example).
#include <doctest/doctest.h>

#include <cmath>

#include "eval/synthetic.hpp"
#include "lcmae/eval/knn.hpp"

using namespace lcmae;

TEST_CASE("knn: separable clusters reach >= 95% top-1 and top-5; shuffled labels stay near chance") {
    const auto train = test::clusters(3000, 32, 10, 1, 0);
    const auto test = test::clusters(1000, 32, 10, 1, 1);
    eval::KnnConfig cfg;  // k 20, T 0.07
    cfg.threads = 2;
    const auto r = eval::knn_classify(train, test, cfg);
    MESSAGE("separable: top-1 " << r.top1 << "%, top-5 " << r.top5 << "%");
    CHECK(r.top1 >= 95.0);
    CHECK(r.has_top5);
    CHECK(r.top5 >= r.top1);
    CHECK(r.n_test == 1000);
    CHECK(r.predictions.size() == 1000);

    const auto rs = eval::knn_classify(test::shuffled_labels(train, 3), test::shuffled_labels(test, 4), cfg);
    MESSAGE("shuffled: top-1 " << rs.top1 << "% (chance 10%), top-5 " << rs.top5 << "% (chance 50%)");
    CHECK(rs.top1 < 20.0);
    CHECK(rs.top1 > 2.0);
    CHECK(rs.top5 < 65.0);
}

TEST_CASE("knn: results do not depend on the block size or the thread count") {
    const auto train = test::clusters(500, 16, 7, 5, 0, 2.0, 1.0);  // overlapping: some errors
    const auto test = test::clusters(300, 16, 7, 5, 1, 2.0, 1.0);
    eval::KnnConfig a;
    a.threads = 1;
    a.block = 300;
    eval::KnnConfig b;
    b.threads = 2;
    b.block = 7;
    const auto ra = eval::knn_classify(train, test, a), rb = eval::knn_classify(train, test, b);
    CHECK(ra.predictions == rb.predictions);
    CHECK(ra.top1 == rb.top1);
    CHECK(ra.top1 < 100.0);
}

TEST_CASE("knn: DINO's vote weights exp(s / T) over the k nearest, cosine similarity") {
    // 2-D train points; the test point is (1, 0). Scale does not matter (l2-normalised).
    eval::FeatureSet train;
    train.n = 4;
    train.dim = 2;
    train.num_classes = 2;
    const double a1 = 0.1, a2 = 0.5, a3 = 0.6;  // angles from the test point
    train.values = {float(5 * std::cos(a1)), float(5 * std::sin(a1)),    // class 0, nearest
                    float(std::cos(a2)), float(std::sin(a2)),            // class 1
                    float(3 * std::cos(a3)), float(-3 * std::sin(a3)),   // class 1
                    -1.f, 0.f};                                          // class 0, farthest
    train.labels = {0, 1, 1, 0};
    eval::FeatureSet test;
    test.n = 1;
    test.dim = 2;
    test.num_classes = 2;
    test.values = {2.f, 0.f};
    test.labels = {1};
    eval::KnnConfig cfg;
    cfg.k = 3;
    cfg.temperature = 0.07;
    // votes: class 0 exp(cos a1 / T); class 1 exp(cos a2 / T) + exp(cos a3 / T)
    const double v0 = std::exp(std::cos(a1) / 0.07), v1 = std::exp(std::cos(a2) / 0.07) + std::exp(std::cos(a3) / 0.07);
    REQUIRE(v0 > v1);  // one close neighbour outweighs two far ones at T 0.07
    auto r = eval::knn_classify(train, test, cfg);
    CHECK(r.predictions[0] == 0);
    CHECK(r.top1 == 0.0);
    CHECK_FALSE(r.has_top5);
    // a high temperature flattens the weights: two votes beat one
    cfg.temperature = 100;
    r = eval::knn_classify(train, test, cfg);
    CHECK(r.predictions[0] == 1);
    CHECK(r.top1 == 100.0);
    // k = 1: only the nearest
    cfg.k = 1;
    r = eval::knn_classify(train, test, cfg);
    CHECK(r.predictions[0] == 0);
}

TEST_CASE("knn: bad inputs are errors that say what is wrong") {
    const auto train = test::clusters(10, 4, 3, 1, 0);
    auto test = test::clusters(5, 4, 3, 1, 1);
    eval::KnnConfig cfg;
    cfg.k = 11;
    CHECK_THROWS_WITH_AS(eval::knn_classify(train, test, cfg), doctest::Contains("larger than the 10 train samples"), Error);
    cfg.k = 2;
    auto wide = test::clusters(5, 6, 3, 1, 1);
    CHECK_THROWS_WITH_AS(eval::knn_classify(train, wide, cfg), doctest::Contains("width"), Error);
    test.labels[2] = 7;
    CHECK_THROWS_WITH_AS(eval::knn_classify(train, test, cfg), doctest::Contains("label 7 of row 2"), Error);
}
