// The linear probe (eval/linear_probe.hpp) and its host cross-entropy (eval/cross_entropy.hpp):
// gradient checks in double (with and without label smoothing), known values, and the probe
// learning separable clusters (>= 95% top-1) but not shuffled labels (near chance).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "eval/synthetic.hpp"
#include "lcmae/eval/linear_probe.hpp"
#include "support/gradcheck.hpp"

using namespace lcmae;

TEST_CASE("cross_entropy: gradient check in double, with and without label smoothing") {
    const long B = 4, C = 5;
    const std::vector<int> labels{0, 3, 4, 3};
    for (double smoothing : {0.0, 0.1, 0.35}) {
        for (double scale : {1.0, 2.5}) {
            auto z = test::random_vector(B * C, 11, 3.0);
            std::vector<double> dz(static_cast<std::size_t>(B * C), test::kSentinel);
            eval::cross_entropy(B, C, z.data(), labels.data(), smoothing, dz.data(), scale);
            for (auto& v : dz) v /= scale;  // written, not accumulated: the sentinel is gone
            INFO("smoothing " << smoothing << " scale " << scale);
            test::check_input_grad("cross_entropy logits", z.data(), B * C, dz,
                                   [&] { return eval::cross_entropy(B, C, z.data(), labels.data(), smoothing); });
        }
    }
}

TEST_CASE("cross_entropy: known values (PyTorch's definition) and a stable log-sum-exp") {
    const long C = 4;
    std::vector<double> z(C, 0.0);
    const int y = 2;
    // uniform logits: -log(1/C) whatever the smoothing
    CHECK(eval::cross_entropy(1, C, z.data(), &y, 0.0) == doctest::Approx(std::log(4.0)).epsilon(1e-14));
    CHECK(eval::cross_entropy(1, C, z.data(), &y, 0.2) == doctest::Approx(std::log(4.0)).epsilon(1e-14));
    // z = (1, 2, 3, 4), label 2, smoothing 0.1, computed by hand
    z = {1, 2, 3, 4};
    const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(4.0));
    const double expect = 0.9 * (lse - 3) + 0.1 * ((lse - 1) + (lse - 2) + (lse - 3) + (lse - 4)) / 4;
    CHECK(eval::cross_entropy(1, C, z.data(), &y, 0.1) == doctest::Approx(expect).epsilon(1e-14));
    // huge logits do not overflow
    std::vector<float> big{1000.f, 0.f, -1000.f};
    const int y0 = 0, y1 = 1;
    CHECK(eval::cross_entropy(1, 3, big.data(), &y0, 0.0) == doctest::Approx(0.0));
    CHECK(eval::cross_entropy(1, 3, big.data(), &y1, 0.0) == doctest::Approx(1000.0));
    const int bad = 3;
    CHECK_THROWS_WITH_AS(eval::cross_entropy(1, 3, big.data(), &bad, 0.0), doctest::Contains("label 3 of row 0"), Error);
}

TEST_CASE("topk_hits: ranks with ties to the smaller class") {
    long t1 = 0, t5 = 0;
    const std::vector<float> s{0.1f, 0.5f, 0.5f, 0.2f, 0.0f, 0.3f, 0.4f};
    eval::topk_hits(7, s.data(), 1, t1, t5);  // 0.5 at 1 and 2: 1 wins the tie
    eval::topk_hits(7, s.data(), 2, t1, t5);  // second
    eval::topk_hits(7, s.data(), 3, t1, t5);  // 0.5, 0.5, 0.4, 0.3 before it: 5th
    eval::topk_hits(7, s.data(), 0, t1, t5);  // 6th
    CHECK(t1 == 1);
    CHECK(t5 == 3);
}

namespace {
eval::LinearProbeConfig quick_probe() {
    // A short run on a small set: 2000 rows at batch 100 are 20 steps per epoch. SPEC 4's blr 0.1
    // moves LARS's weights by lr * trust = 2.5e-5 of their norm per step here, far too little for 400
    // steps, so the test raises blr (the protocol is the same; ImageNet runs ~28k steps at lr 6.4).
    eval::LinearProbeConfig c;
    c.epochs = 20;
    c.warmup_epochs = 2;
    c.batch = 100;
    c.blr = 10;
    c.seed = 3;
    return c;
}
}  // namespace

TEST_CASE("linear probe: separable clusters reach >= 95% top-1; shuffled labels stay near chance") {
    const backend::Cpu ctx(2);
    const auto train = test::clusters(2000, 32, 10, 7, 0, 6.0, 1.0);
    const auto test = test::clusters(1000, 32, 10, 7, 1, 6.0, 1.0);
    std::vector<double> losses;
    const auto r = eval::linear_probe(ctx, train, test, quick_probe(), [&](long, double loss, double) { losses.push_back(loss); });
    MESSAGE("separable: top-1 " << r.top1 << "%, top-5 " << r.top5 << "%, loss " << losses.front() << " -> " << losses.back());
    CHECK(r.top1 >= 95.0);
    CHECK(r.top5 >= r.top1);
    CHECK(r.has_top5);
    CHECK(r.steps == 20 * 20);
    CHECK(losses.size() == 20);
    CHECK(losses.back() < 0.5 * losses.front());

    const auto rs = eval::linear_probe(ctx, test::shuffled_labels(train, 1), test::shuffled_labels(test, 2), quick_probe());
    MESSAGE("shuffled: top-1 " << rs.top1 << "% (chance 10%)");
    CHECK(rs.top1 < 20.0);
}

TEST_CASE("linear probe: SPEC 4's head and LARS (no trust ratio on the bias, BN without affine, N(0, 0.01))") {
    const backend::Cpu ctx(1);
    eval::LinearProbeConfig c;
    c.seed = 5;
    eval::LinearProbe<double> probe(ctx, 64, 10, 8, c);
    auto& P = probe.params();
    CHECK_FALSE(P.contains("bn.weight"));
    CHECK(P.entry("bn.running_var").kind == EntryKind::Buffer);
    const auto& w = P.entry("head.weight");
    double s = 0, m = 0;
    for (std::size_t i = 0; i < w.slot.count; ++i) {
        m += P.value(w.slot)[i];
        s += P.value(w.slot)[i] * P.value(w.slot)[i];
    }
    CHECK(std::sqrt(s / 640) == doctest::Approx(0.01).epsilon(0.1));
    CHECK(std::abs(m / 640) < 0.002);
    for (long i = 0; i < 10; ++i) CHECK(P.value(P.entry("head.bias").slot)[i] == 0.0);
    // one step at lr 0 changes nothing but the BN running statistics
    const auto f = test::clusters(8, 64, 10, 1, 0);
    const std::vector<double> before(P.values().begin(), P.values().end());
    probe.train_step(ctx, f.values.data(), f.labels.data(), 8, 0.0);
    CHECK(P.value(w.slot)[3] == before[w.slot.offset + 3]);
    CHECK(P.value(P.entry("bn.running_mean").slot)[0] != 0.0);
}

TEST_CASE("linear probe: bad settings are errors that say what is wrong") {
    const backend::Cpu ctx(1);
    const auto f = test::clusters(50, 8, 3, 1, 0);
    eval::LinearProbeConfig c;
    c.epochs = 0;
    CHECK_THROWS_WITH_AS(eval::linear_probe(ctx, f, f, c), doctest::Contains("epochs must be >= 1"), Error);
    c.epochs = 2;
    c.warmup_epochs = 3;
    CHECK_THROWS_WITH_AS(eval::linear_probe(ctx, f, f, c), doctest::Contains("warm-up epochs 3"), Error);
    c.warmup_epochs = 0;
    c.batch = 1;
    CHECK_THROWS_WITH_AS(eval::linear_probe(ctx, f, f, c), doctest::Contains("batch must be >= 2"), Error);
}
