// Training-level tests: whole-model gradient checks in double for every policy, the overfit test,
// and the trainer's schedules. Exact resume is test_resume.cpp; accumulation with guidance is
// test_accumulation.cpp.
#include <doctest/doctest.h>

#include <functional>
#include <vector>

#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/optim/ema.hpp"
#include "lcmae/train/trainer.hpp"
#include "support/gradcheck.hpp"
#include "support/tiny_model.hpp"

using namespace lcmae;
using namespace lcmae::models;

namespace {
backend::Cpu ctx(2);
// Gradient checks run thousands of whole-model passes on a model whose largest matrix is 32 x 8:
// far too small to split, so one thread (measured 0.23 ms per pass against 2.8 ms with two
// threads on a loaded 2-core machine). The threaded paths are tested on large problems in
// tests/backend.
backend::Cpu ctx1(1);

using test::tiny_spec;  // support/tiny_model.hpp

std::vector<double> images(long n, std::uint64_t seed) { return test::random_vector(n, seed); }

// Whole-model gradient check: `run` does one forward_backward and returns the loss. Gradients are
// pre-filled with the sentinel; EVERY element of every trainable tensor is compared with a
// five-point stencil (truncation error O(h^4): the BatchNorm heads on a batch of 4 are strongly
// curved, and the plain central difference's O(h^2) error alone reaches ~1e-6 there). Each element
// costs 4 whole-model passes: about 10,000 passes of ~0.2 ms per policy.
void check_model_grads(ParamArena<double>& P, const std::function<double()>& run) {
    P.grads().fill(test::kSentinel);
    run();
    const std::vector<double> analytic(P.grads().begin(), P.grads().end());
    for (const auto& e : P.entries()) {
        if (e.kind != EntryKind::Parameter) continue;
        std::vector<double> a, n;
        for (std::size_t i = 0; i < e.slot.count; ++i) {
            a.push_back(analytic[e.slot.offset + i] - test::kSentinel);
            double& x = P.value(e.slot)[i];
            const double saved = x, h = 1e-5;
            auto at = [&](double d) { x = saved + d; return run(); };
            n.push_back((8.0 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12.0 * h));
            x = saved;
        }
        const double err = test::rel_error(a, n);
        INFO(e.name << " (" << e.slot.count << " elements) relative error " << err);
        CHECK(err <= 1e-6);
    }
}
}  // namespace

TEST_CASE("whole-model gradient check in double for every policy") {
    struct Variant {
        const char* name;
        GuidanceLoss loss;
        GuidanceType guidance;
        PoolTokens pool;
        ViewSchedule views;
        Baseline baseline;
        GuidedTokens guided = GuidedTokens::Visible;
        int head_depth = 2;
    };
    const Variant variants[] = {
        {"MAE", GuidanceLoss::None, GuidanceType::Global, PoolTokens::Visible, ViewSchedule::Symmetric, Baseline::Mae},
        {"cosine", GuidanceLoss::Cosine, GuidanceType::Global, PoolTokens::Visible, ViewSchedule::Symmetric, Baseline::Mae},
        {"infonce", GuidanceLoss::InfoNCE, GuidanceType::Global, PoolTokens::Visible, ViewSchedule::Symmetric, Baseline::Mae},
        {"smoothl1", GuidanceLoss::SmoothL1, GuidanceType::Global, PoolTokens::Visible, ViewSchedule::Symmetric, Baseline::Mae},
        {"cosine cls pooling", GuidanceLoss::Cosine, GuidanceType::Global, PoolTokens::Cls, ViewSchedule::Symmetric, Baseline::Mae},
        {"cosine token-wise", GuidanceLoss::Cosine, GuidanceType::TokenWise, PoolTokens::Visible, ViewSchedule::Symmetric, Baseline::Mae},
        {"cosine both", GuidanceLoss::Cosine, GuidanceType::Both, PoolTokens::Visible, ViewSchedule::Symmetric, Baseline::Mae},
        {"cosine paper views", GuidanceLoss::Cosine, GuidanceType::Global, PoolTokens::Visible, ViewSchedule::Paper, Baseline::Mae},
        {"LC-SimMIM", GuidanceLoss::Cosine, GuidanceType::Global, PoolTokens::Visible, ViewSchedule::Paper, Baseline::SimMim},
        {"visible + mask tokens", GuidanceLoss::Cosine, GuidanceType::Global, PoolTokens::Visible, ViewSchedule::Symmetric,
         Baseline::Mae, GuidedTokens::VisibleAndMask},
        {"visible + mask tokens, paper views", GuidanceLoss::Cosine, GuidanceType::Global, PoolTokens::Visible,
         ViewSchedule::Paper, Baseline::Mae, GuidedTokens::VisibleAndMask},
        // without BatchNorm in the heads, so the guidance's (batch-constant) mask-token gradient is not
        // removed by the batch statistics and is checked too
        {"visible + mask tokens, identity heads", GuidanceLoss::Cosine, GuidanceType::Global, PoolTokens::Visible,
         ViewSchedule::Symmetric, Baseline::Mae, GuidedTokens::VisibleAndMask, 0},
    };
    for (const auto& v : variants) {
        const std::string variant = v.name;
        CAPTURE(variant);
        ModelSpec s = tiny_spec(v.loss);
        s.guidance = v.guidance;
        s.pool = v.pool;
        s.views = v.views;
        s.baseline = v.baseline;
        s.guided = v.guided;
        s.projector_depth = s.predictor_depth = v.head_depth;
        // a decoder wider than D, so the widths must be kept apart (identity heads need equal widths)
        if (v.guided == GuidedTokens::VisibleAndMask && v.head_depth > 0) s.decoder.dim = 12;
        s.alpha = 0.7;  // a weight that is not 0.25, so a wrongly scaled guidance gradient shows
        LcmaeModel<double> model(s, 3);
        auto& P = model.params();
        test::randomize(P, 9, 0.4);
        if (model.has_target()) {
            model.copy_online_to_target();
            test::randomize(model.target_params(), 10, 0.4);  // a target that differs from the online model
            for (const auto& e : model.target_params().entries())
                if (e.name.find("running_var") != std::string::npos)
                    for (std::size_t i = 0; i < e.slot.count; ++i) model.target_params().value(e.slot)[i] += 1.0;
        }
        const long B = 4, L = 16;
        auto v1 = images(B * 64, 11), v2 = images(B * 64, 12);
        Rng r(5, 5);
        const auto ids = random_shuffle(B, L, r);
        std::vector<double> w(B * L, 0.0);
        for (long i = 0; i < B * L; ++i) w[i] = (i % 5 < 3) ? 1.0 : 0.0;
        auto run = [&] {
            return s.baseline == Baseline::Mae ? model.forward_backward_mae(ctx1, v1.data(), v2.data(), B, ids.data()).total
                                               : model.forward_backward_simmim(ctx1, v1.data(), v2.data(), B, w.data()).total;
        };
        check_model_grads(P, run);
    }
}

namespace {
// Deterministic synthetic views for micro-batch m.
void make_views(long m, long B, std::vector<float>& v1, std::vector<float>& v2) {
    Rng r(77, std::uint64_t(m));
    v1.resize(B * 64);
    v2.resize(B * 64);
    for (auto& x : v1) x = float(r.normal());
    for (auto& x : v2) x = float(r.normal());
}

}  // namespace

TEST_CASE("overfit: the tiny model drives its MIM loss on one fixed batch down by at least 90%") {
    ModelSpec s = tiny_spec(GuidanceLoss::None, 8);
    s.encoder = vit::VitDims{32, 2, 2, 2, 8, 1, 4};
    s.decoder = DecoderDims{32, 1, 2};
    LcmaeModel<float> model(s, 2);
    optim::AdamW<float> adamw(model.params(), optim::AdamWConfig{0.9, 0.95, 1e-8, 0.0, 0.0});
    std::vector<float> v1, v2;
    make_views(0, 8, v1, v2);
    Rng r(3, 3);
    const auto ids = random_shuffle(8, 16, r);
    double first = 0, last = 0;
    for (int step = 0; step < 400; ++step) {
        model.params().zero_grad();
        last = model.forward_backward_mae(ctx, v1.data(), v2.data(), 8, ids.data()).mim;
        if (step == 0) first = last;
        adamw.step(2e-3);
    }
    MESSAGE("overfit: MIM loss " << first << " -> " << last);
    CHECK(last <= 0.1 * first);
}

TEST_CASE("trainer: lr warm-up then cosine per iteration; EMA momentum from the base to 1; bad config") {
    ModelSpec s = tiny_spec(GuidanceLoss::Cosine);
    LcmaeModel<float> model(s, 1);
    train::TrainConfig cfg;
    cfg.batch = 4;
    cfg.epochs = 10;
    cfg.warmup_epochs = 2;
    cfg.blr = 1.5e-4;
    train::Trainer<float> t(model, cfg, 5);
    CHECK(t.lr_max() == doctest::Approx(1.5e-4 * 4 / 256));
    CHECK(t.lr_at(0, 0) == 0.0);
    CHECK(t.lr_at(1, 0) == doctest::Approx(t.lr_max() / 2));
    CHECK(t.lr_at(2, 0) == doctest::Approx(t.lr_max()));
    CHECK(t.lr_at(6, 0) == doctest::Approx(t.lr_max() / 2));
    CHECK(t.total_steps() == 50);
    cfg.warmup_epochs = 11;
    CHECK_THROWS_AS(train::Trainer<float>(model, cfg, 5), lcmae::Error);
    cfg.warmup_epochs = 1;
    cfg.accumulation = 0;
    CHECK_THROWS_AS(train::Trainer<float>(model, cfg, 5), lcmae::Error);
}

TEST_CASE("model-level bad input: Symmetric views with mask ratio below 0.5, batch above plan, non-permutation") {
    ModelSpec s = tiny_spec(GuidanceLoss::Cosine);
    s.mask_ratio = 0.4;
    try {
        LcmaeModel<float> m(s);
        FAIL("expected an error");
    } catch (const lcmae::Error& e) {
        CHECK(std::string(e.what()).find("mask ratio >= 0.5") != std::string::npos);
    }
    s.mask_ratio = 0.75;
    LcmaeModel<float> m(s);
    std::vector<float> v(5 * 64, 0.f);
    std::vector<std::int64_t> ids(5 * 16);
    for (long i = 0; i < 5 * 16; ++i) ids[i] = i % 16;
    CHECK_THROWS_AS(m.forward_backward_mae(ctx, v.data(), v.data(), 5, ids.data()), lcmae::Error);
    ids[3] = 0;  // row 0 is no longer a permutation
    CHECK_THROWS_AS(m.forward_backward_mae(ctx, v.data(), v.data(), 4, ids.data()), lcmae::Error);
    CHECK_THROWS_AS(m.forward_backward_mae(ctx, v.data(), nullptr, 4, ids.data()), lcmae::Error);
}

TEST_CASE("gradient accumulation: two half batches with loss scale 1/2 equal one full batch (MAE)") {
    // Plain MAE has no batch statistics and every sample masks the same number of patches, so the
    // full-batch loss is exactly the mean of the two half-batch losses.
    ModelSpec s = tiny_spec(GuidanceLoss::None, 8);
    LcmaeModel<double> model(s, 4);
    auto& P = model.params();
    const auto v = images(8 * 64, 21);
    Rng r(8, 8);
    const auto ids = random_shuffle(8, 16, r);
    P.zero_grad();
    const double full = model.forward_backward_mae(ctx, v.data(), nullptr, 8, ids.data()).total;
    std::vector<double> g_full(P.grads().begin(), P.grads().end());
    P.zero_grad();
    const double a = model.forward_backward_mae(ctx, v.data(), nullptr, 4, ids.data(), 0.5).total;
    const double b = model.forward_backward_mae(ctx, v.data() + 4 * 64, nullptr, 4, ids.data() + 4 * 16, 0.5).total;
    CHECK((a + b) / 2 == doctest::Approx(full).epsilon(1e-13));
    std::vector<double> g_acc(P.grads().begin(), P.grads().end());
    CHECK(test::rel_error(g_acc, g_full) <= 1e-12);
}

TEST_CASE("Table 5c: a masked target (ratio 0.5) pools its visible tokens; gradients check; bad combinations") {
    ModelSpec s = tiny_spec(GuidanceLoss::Cosine);
    s.target_mask_ratio = 0.5;
    s.alpha = 0.7;
    LcmaeModel<double> model(s, 3);
    auto& P = model.params();
    test::randomize(P, 9, 0.4);
    model.copy_online_to_target();
    const long B = 4, L = 16;
    auto v1 = images(B * 64, 11), v2 = images(B * 64, 12);
    Rng r(5, 5);
    const auto ids = random_shuffle(B, L, r);
    const auto tids = random_shuffle(2 * B, L, r);
    auto run = [&] { return model.forward_backward_mae(ctx1, v1.data(), v2.data(), B, ids.data(), 1.0, tids.data()).total; };
    // the masked target changes L_GG (it pools 8 of 16 tokens)
    ModelSpec full = s;
    full.target_mask_ratio = 0.0;
    LcmaeModel<double> unmasked(full, 3);
    std::copy(P.values().begin(), P.values().end(), unmasked.params().values().begin());
    unmasked.copy_online_to_target();
    const double gg_masked = model.forward_backward_mae(ctx, v1.data(), v2.data(), B, ids.data(), 1.0, tids.data()).gg;
    const double gg_full = unmasked.forward_backward_mae(ctx, v1.data(), v2.data(), B, ids.data()).gg;
    CHECK(gg_masked != doctest::Approx(gg_full));
    check_model_grads(P, run);
    CHECK_THROWS_AS(model.forward_backward_mae(ctx, v1.data(), v2.data(), B, ids.data()), lcmae::Error);  // no target ids
    s.guidance = GuidanceType::TokenWise;
    CHECK_THROWS_AS(LcmaeModel<double>(s, 0), lcmae::Error);
    s.guidance = GuidanceType::Global;
    s.target_mask_ratio = 1.0;
    CHECK_THROWS_AS(LcmaeModel<double>(s, 0), lcmae::Error);
    // the rng-driven path draws the target's masks itself
    s.target_mask_ratio = 0.75;
    LcmaeModel<float> fm(s, 1);
    std::vector<float> f1(B * 64, 0.5f), f2(B * 64, -0.25f);
    for (std::size_t i = 0; i < f1.size(); ++i) { f1[i] = std::sin(float(i)); f2[i] = std::cos(float(i)); }
    Rng rr(1, 1);
    const auto l = fm.forward_backward(ctx, f1.data(), f2.data(), B, rr);
    CHECK(std::isfinite(l.total));
}

namespace {
// ||a - b|| / ||b|| over one tensor's gradient.
double rel_diff(const ParamArena<double>& A, const ParamArena<double>& B, const std::string& name) {
    const auto& ea = A.entry(name);
    const auto& eb = B.entry(name);
    std::vector<double> a(A.grad(ea.slot), A.grad(ea.slot) + ea.slot.count), b(B.grad(eb.slot), B.grad(eb.slot) + eb.slot.count);
    return test::rel_error(a, b);
}
}  // namespace

TEST_CASE("Table 5e: the guidance reaches the mask token, the decoder blocks and the encoder through the decoded tokens") {
    // The same model and step twice, with alpha 0.7 and alpha 0: the difference of the gradients is
    // the guidance's. Pooling the decoder-side sequence right after decoder_embed (an earlier
    // reading) gave mask_token no guidance gradient at all - every mask token is the same vector
    // there and the heads' BatchNorm removes a per-batch constant - and the decoder blocks none
    // either; pooling the decoded tokens must give both one. BatchNorm heads (depth 2) on purpose.
    ModelSpec s = tiny_spec(GuidanceLoss::Cosine);
    s.guided = GuidedTokens::VisibleAndMask;
    s.decoder = DecoderDims{12, 1, 2};  // wider than D = 8
    s.alpha = 0.7;
    ModelSpec s0 = s;
    s0.alpha = 0.0;
    LcmaeModel<double> guided(s, 3), mim_only(s0, 3);
    for (auto* m : {&guided, &mim_only}) {
        test::randomize(m->params(), 9, 0.4);
        m->copy_online_to_target();
        test::randomize(m->target_params(), 10, 0.4);  // a target that differs from the online model
        for (const auto& e : m->target_params().entries())
            if (e.name.find("running_var") != std::string::npos)
                for (std::size_t i = 0; i < e.slot.count; ++i) m->target_params().value(e.slot)[i] += 1.0;
    }
    const long B = 4, L = 16;
    auto v1 = images(B * 64, 11), v2 = images(B * 64, 12);
    Rng r(5, 5);
    const auto ids = random_shuffle(B, L, r);
    guided.params().zero_grad();
    mim_only.params().zero_grad();
    const auto lg = guided.forward_backward_mae(ctx1, v1.data(), v2.data(), B, ids.data());
    const auto lm = mim_only.forward_backward_mae(ctx1, v1.data(), v2.data(), B, ids.data());
    REQUIRE(lg.mim == lm.mim);
    REQUIRE(lg.gg > 0.01);
    const auto& G = guided.params();
    const auto& M = mim_only.params();
    // ||with - without guidance|| / max(||with||, ||without||) per tensor: O(0.1-1) where the
    // guidance reaches, rounding noise (~1e-16) where it does not
    for (const std::string name : {"mask_token", "decoder_embed.weight", "decoder_embed.bias", "decoder_blocks.0.attn.qkv.weight",
                                   "decoder_blocks.0.mlp.fc2.weight", "decoder_norm.weight", "blocks.0.attn.qkv.weight",
                                   "patch_embed.proj.weight", "cls_token", "norm.weight"}) {
        const double d = rel_diff(G, M, name);
        INFO(name << ": relative difference the guidance makes to the gradient " << d);
        CHECK(d > 1e-3);
    }
    // decoder_pred lies after the decoded tokens: the guidance does not reach it
    CHECK(rel_diff(G, M, "decoder_pred.weight") == 0.0);
    CHECK(rel_diff(G, M, "decoder_pred.bias") == 0.0);
}

TEST_CASE("Table 5e: the target holds an EMA copy of decoder_embed, the decoder blocks and decoder_norm") {
    ModelSpec s = tiny_spec(GuidanceLoss::Cosine);
    s.guided = GuidedTokens::VisibleAndMask;
    s.decoder = DecoderDims{12, 2, 2};
    LcmaeModel<double> model(s, 3);
    auto& Pt = model.target_params();
    auto& P = model.params();
    for (const char* name : {"decoder_embed.weight", "decoder_embed.bias", "decoder_blocks.0.attn.qkv.weight",
                             "decoder_blocks.1.mlp.fc1.bias", "decoder_norm.weight", "decoder_norm.bias"})
        CHECK(Pt.contains(name));
    CHECK_FALSE(Pt.contains("decoder_pred.weight"));  // not needed: the guidance pools before it
    CHECK_FALSE(Pt.contains("mask_token"));           // the target sees every token
    CHECK_FALSE(Pt.contains("predictor.0.weight"));
    // every target tensor starts as the online one and follows it by EMA
    test::randomize(P, 21, 0.4);
    optim::EmaUpdater<double> ema(Pt, P);
    ema.copy_from_online();
    std::vector<double> before(Pt.values().begin(), Pt.values().end());
    test::randomize(P, 22, 0.4);
    ema.update(0.75);
    long decoder_values = 0;
    for (const auto& te : Pt.entries()) {
        const auto& oe = P.entry(te.name);
        for (std::size_t i = 0; i < te.slot.count; ++i)
            CHECK(Pt.value(te.slot)[i] == doctest::Approx(0.75 * before[te.slot.offset + i] + 0.25 * P.value(oe.slot)[i]).epsilon(1e-15));
        if (te.name.rfind("decoder", 0) == 0) decoder_values += long(te.slot.count);
    }
    CHECK(decoder_values == 8 * 12 + 12 + 2 * (12 * 36 + 36 + 12 * 12 + 12 + 12 * 48 + 48 + 48 * 12 + 12 + 4 * 12) + 2 * 12);
    // a masked target has no decoded sequence of all tokens: refused with a sentence
    s.target_mask_ratio = 0.5;
    try {
        LcmaeModel<double> bad(s, 0);
        FAIL("expected an error");
    } catch (const lcmae::Error& e) {
        CHECK(std::string(e.what()).find("target mask ratio must be 0") != std::string::npos);
    }
}
