// Gradient checks (double, central differences, relative error <= 1e-6) for every nn layer.
// Every input-gradient buffer starts as the sentinel: a backward documented to WRITE dx is
// compared as is (one that added into dx, or skipped an element, keeps the sentinel and fails);
// LayerNorm, documented to ADD into dx, is compared after subtracting it.
#include <doctest/doctest.h>

#include <vector>

#include "lcmae/nn/block.hpp"
#include "lcmae/nn/mlp_head.hpp"
#include "support/gradcheck.hpp"

using namespace lcmae;
using namespace lcmae::test;
using D = double;

namespace {
backend::Cpu ctx(1);  // one thread: every layer here is far too small to split, and a check is many passes
}

TEST_CASE("gradcheck: Linear with and without bias; dx written and accumulated") {
    for (bool bias : {true, false}) {
        ParamArena<D> P;
        nn::Linear<D> lin(P, "fc", 5, 3, bias);
        P.allocate();
        randomize(P, 1);
        const long rows = 4;
        auto x = random_vector(rows * 5, 2);
        auto r = random_vector(rows * 3, 3);
        std::vector<D> y(rows * 3);
        auto loss = [&] { lin.forward(ctx, P, x.data(), y.data(), rows); return probe(y.data(), r); };
        std::vector<D> dx(rows * 5, kSentinel);
        check_param_grads(P, loss, [&] { lin.backward(ctx, P, x.data(), r.data(), dx.data(), rows); });
        check_input_grad("Linear x", x.data(), rows * 5, dx, loss);
        // accumulate_dx adds onto what is there
        std::vector<D> dx2(rows * 5, kSentinel);
        lin.backward(ctx, P, x.data(), r.data(), dx2.data(), rows, true);
        for (std::size_t i = 0; i < dx.size(); ++i) CHECK(dx2[i] == doctest::Approx(dx[i] + kSentinel).epsilon(1e-12));
    }
}

TEST_CASE("gradcheck: LayerNorm (dx accumulates)") {
    ParamArena<D> P;
    nn::LayerNorm<D> ln(P, "ln", 6);
    P.allocate();
    randomize(P, 4);
    const long rows = 3;
    auto x = random_vector(rows * 6, 5);
    auto r = random_vector(rows * 6, 6);
    std::vector<D> y(rows * 6), mean(rows), rstd(rows);
    auto loss = [&] { ln.forward(ctx, P, x.data(), y.data(), mean.data(), rstd.data(), rows); return probe(y.data(), r); };
    std::vector<D> dx(rows * 6, kSentinel);
    check_param_grads(P, loss, [&] { ln.backward(ctx, P, x.data(), mean.data(), rstd.data(), r.data(), dx.data(), rows); });
    for (auto& v : dx) v -= kSentinel;
    check_input_grad("LayerNorm x", x.data(), rows * 6, dx, loss);
}

TEST_CASE("gradcheck: Attention") {
    ParamArena<D> P;
    const long B = 2, N = 5, Dm = 8, H = 2;
    nn::Attention<D> attn(P, "attn", Dm, H);
    P.allocate();
    randomize(P, 7);
    auto x = random_vector(B * N * Dm, 8);
    auto r = random_vector(B * N * Dm, 9);
    std::vector<D> qkv(B * N * 3 * Dm), probs(B * H * N * N), att(B * N * Dm), y(B * N * Dm);
    std::vector<D> d_att(B * N * Dm), d_qkv(B * N * 3 * Dm), d_probs(B * H * N * N), dx(B * N * Dm, kSentinel);
    auto loss = [&] {
        attn.forward(ctx, P, x.data(), B, N, qkv.data(), probs.data(), att.data(), y.data());
        return probe(y.data(), r);
    };
    check_param_grads(P, loss, [&] {
        attn.backward(ctx, P, x.data(), B, N, qkv.data(), probs.data(), att.data(), r.data(), dx.data(), d_att.data(),
                      d_qkv.data(), d_probs.data());
    });
    check_input_grad("Attention x", x.data(), B * N * Dm, dx, loss);
}

TEST_CASE("gradcheck: Mlp") {
    ParamArena<D> P;
    const long rows = 4, Dm = 4, Hd = 16;
    nn::Mlp<D> mlp(P, "mlp", Dm, Hd);
    P.allocate();
    randomize(P, 10);
    auto x = random_vector(rows * Dm, 11);
    auto r = random_vector(rows * Dm, 12);
    std::vector<D> h_pre(rows * Hd), h(rows * Hd), y(rows * Dm), dx(rows * Dm, kSentinel), d_h(rows * Hd);
    auto loss = [&] { mlp.forward(ctx, P, x.data(), h_pre.data(), h.data(), y.data(), rows); return probe(y.data(), r); };
    check_param_grads(P, loss, [&] { mlp.backward(ctx, P, x.data(), h_pre.data(), h.data(), r.data(), dx.data(), d_h.data(), rows); });
    check_input_grad("Mlp x", x.data(), rows * Dm, dx, loss);
}

namespace {
/// A block of width 8 (2 heads, MLP 32) planned for max_batch x 6 tokens, its scratch, allocated.
struct BlockFixture {
    ParamArena<D> P;
    ActivationArena<D> A;
    nn::Block<D> blk;
    nn::BlockScratch<D> s;
    explicit BlockFixture(long max_batch, std::uint64_t seed) {
        const nn::BlockPlan plan{8, 2, 32, max_batch, 6};
        blk = nn::Block<D>(P, A, "blocks.0", plan);
        s.plan(A, plan);
        P.allocate();
        A.allocate();
        randomize(P, seed);
    }
    /// Gradient check of every parameter and of x for B samples of N tokens, with drop-path
    /// scales `drop` (2B values) or none.
    void check(long B, long N, std::uint64_t seed, const D* drop) {
        auto x = random_vector(B * N * 8, seed);
        auto r = random_vector(B * N * 8, seed + 1);
        auto loss = [&] { blk.forward(ctx, P, A, x.data(), B, N, drop); return probe(A.at(blk.out), r); };
        std::vector<D> d;
        check_param_grads(P, loss, [&] {
            d = r;
            blk.backward(ctx, P, A, x.data(), B, N, d.data(), s, drop);
        });
        check_input_grad(drop ? "Block x (drop path)" : "Block x", x.data(), B * N * 8, d, loss);
    }
};
}  // namespace

TEST_CASE("gradcheck: pre-norm Block") {
    BlockFixture f(2, 13);
    const long B = 2, N = 5;  // fewer tokens than planned
    f.check(B, N, 14, nullptr);
    auto x = random_vector(B * N * 8, 14);
    CHECK_THROWS_AS(f.blk.forward(ctx, f.P, f.A, x.data(), 3, N), lcmae::Error);  // batch above the plan
    CHECK_THROWS_AS(f.blk.forward(ctx, f.P, f.A, x.data(), 1, 7), lcmae::Error);  // tokens above the plan
}

TEST_CASE("gradcheck: pre-norm Block with drop path (fixed per-sample scales)") {
    BlockFixture f(3, 23);
    const long B = 3, N = 5;
    // attention branch: sample 0 dropped, 1 and 2 kept at 1 / 0.8; MLP branch: sample 1 dropped
    const std::vector<D> drop{0.0, 1.25, 1.25, 1.25, 0.0, 1.25};
    f.check(B, N, 24, drop.data());
    // a sample whose two branches are both dropped passes through unchanged
    auto x = random_vector(B * N * 8, 26);
    const std::vector<D> all_dropped(6, 0.0);
    f.blk.forward(ctx, f.P, f.A, x.data(), B, N, all_dropped.data());
    for (long i = 0; i < B * N * 8; ++i) CHECK(f.A.at(f.blk.out)[i] == x[static_cast<std::size_t>(i)]);
    // scales of 1 give exactly the block without drop path
    const std::vector<D> ones(6, 1.0);
    f.blk.forward(ctx, f.P, f.A, x.data(), B, N);
    const std::vector<D> plain(f.A.at(f.blk.out), f.A.at(f.blk.out) + B * N * 8);
    f.blk.forward(ctx, f.P, f.A, x.data(), B, N, ones.data());
    for (long i = 0; i < B * N * 8; ++i) CHECK(f.A.at(f.blk.out)[i] == plain[static_cast<std::size_t>(i)]);
}

TEST_CASE("gradcheck: BatchNorm1d (train mode) with and without affine") {
    for (bool affine : {true, false}) {
        ParamArena<D> P;
        nn::BatchNorm1d<D> bn(P, "bn", 5, affine);
        P.allocate();
        bn.init(P, 0);
        if (affine) {
            auto g = random_vector(5, 16);
            for (long c = 0; c < 5; ++c) P.value(bn.g)[c] += g[c];
        }
        const long rows = 6;
        auto x = random_vector(rows * 5, 17);
        auto r = random_vector(rows * 5, 18);
        std::vector<D> y(rows * 5), mean(5), rstd(5), dx(rows * 5, kSentinel);
        auto loss = [&] { bn.forward_train(ctx, P, x.data(), y.data(), mean.data(), rstd.data(), rows); return probe(y.data(), r); };
        check_param_grads(P, loss, [&] { bn.backward(ctx, P, x.data(), mean.data(), rstd.data(), r.data(), dx.data(), rows); });
        check_input_grad("BatchNorm1d x", x.data(), rows * 5, dx, loss);
    }
}

TEST_CASE("gradcheck: MLP head stacks of depth 0-3, two calls") {
    for (int depth : {0, 1, 2, 3}) {
        CAPTURE(depth);
        ParamArena<D> P;
        ActivationArena<D> A;
        nn::MlpHeadPlan plan{6, 7, 6, depth, 5, 2};
        nn::MlpHead<D> head(P, A, "head", plan);
        P.allocate();
        A.allocate();
        head.init(P, 3);
        randomize(P, 19);
        // BN running buffers are randomised too; keep variances positive
        for (const auto& e : P.entries())
            if (e.kind == EntryKind::Buffer && e.name.find("running_var") != std::string::npos)
                for (std::size_t i = 0; i < e.slot.count; ++i) P.value(e.slot)[i] = 1.0 + 0.5 * P.value(e.slot)[i];
        const long rows = 5;
        auto x0 = random_vector(rows * 6, 20), x1 = random_vector(rows * 6, 21);
        auto r0 = random_vector(rows * 6, 22), r1 = random_vector(rows * 6, 23);
        auto loss = [&] {
            const double a = probe(head.forward(ctx, P, A, x0.data(), rows, true, 0), r0);
            return a + probe(head.forward(ctx, P, A, x1.data(), rows, true, 1), r1);
        };
        std::vector<D> dx0(rows * 6, kSentinel), dx1(rows * 6, kSentinel);
        check_param_grads(P, loss, [&] {
            head.backward(ctx, P, A, r0.data(), dx0.data(), rows, 0);
            head.backward(ctx, P, A, r1.data(), dx1.data(), rows, 1);
        });
        check_input_grad("head x (call 0)", x0.data(), rows * 6, dx0, loss);
        check_input_grad("head x (call 1)", x1.data(), rows * 6, dx1, loss);
    }
}
