// The typed front end (lcmae/lcmae.hpp): policy tags and their concepts, recipes overridden by
// inheritance, the ModelSpec each LCMAE type builds, and the run-time errors for invalid numbers or
// structures the engine does not implement yet. The compile-time errors (invalid combinations of
// types) are tests/compile_fail/policy_*.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lcmae/lcmae.hpp"

using namespace lcmae;
namespace M = lcmae::models;

namespace {

// ---- DESIGN.md, "What a user writes", verbatim
using Model = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized>;
using Mae = LCMAE<vit::Base16, loss::None, crop::RandomResized>;
struct TokenWise : recipe::Default { using Guidance = guidance::TokenWise; };
using Row = LCMAE<vit::Small16, loss::Cosine, crop::SimpleResized, backend::Cpu, TokenWise>;

// ---- a tiny backbone and recipe, to build real engines fast
using TinyVit = vit::Config<32, 2, 2, 4, 16, 3>;  // 16 px, patch 4: 16 tokens
struct Tiny : recipe::Default {
    static constexpr long decoder_dim = 32, decoder_depth = 1, decoder_heads = 2, head_hidden = 64;
};
constexpr RunConfig tiny_run{.max_batch = 4};

// ---- concepts: what each policy provides
static_assert(loss::LossPolicy<loss::None> && loss::LossPolicy<loss::InfoNCE>);
static_assert(!loss::LossPolicy<int> && !loss::LossPolicy<crop::SimpleResized> && !loss::LossPolicy<guidance::Global>);
static_assert(!crop::CropPolicy<loss::Cosine>);
static_assert(guidance::GuidancePolicy<guidance::Both> && !guidance::GuidancePolicy<tokens::Visible>);
static_assert(tokens::PoolPolicy<tokens::Cls> && !tokens::PoolPolicy<guided::Visible>);
static_assert(guided::GuidedPolicy<guided::VisibleAndMask> && !guided::GuidedPolicy<tokens::Visible>);
static_assert(views::ViewPolicy<views::Paper> && !views::ViewPolicy<baseline::Mae>);
static_assert(baseline::BaselinePolicy<baseline::SimMim> && !baseline::BaselinePolicy<views::Paper>);
static_assert(recipe::RecipePolicy<TokenWise> && recipe::RecipePolicy<Tiny>);
struct NotARecipe {};
static_assert(!recipe::RecipePolicy<NotARecipe>);

// ---- the recipes' values
static_assert(recipe::Default::decoder_dim == 512 && recipe::Default::decoder_depth == 8 &&
              recipe::Default::decoder_heads == 16 && recipe::Default::head_hidden == 4096 &&
              recipe::Default::projector_depth == 2 && recipe::Default::predictor_depth == 2);
static_assert(recipe::Cpu::decoder_dim == 128 && recipe::Cpu::decoder_depth == 4 && recipe::Cpu::decoder_heads == 4 &&
              recipe::Cpu::head_hidden == 4096);
static_assert(std::is_same_v<recipe::SimMim::Baseline, baseline::SimMim> &&
              std::is_same_v<recipe::SimMim::Views, views::Paper> &&
              std::is_same_v<recipe::SimMim::Guidance, guidance::Global>);

// ---- the spec each type builds, at compile time
constexpr M::ModelSpec kModel = Model::spec();
static_assert(kModel.encoder.dim == 768 && kModel.encoder.depth == 12 && kModel.encoder.tokens() == 196);
static_assert(kModel.decoder.dim == 512 && kModel.decoder.depth == 8 && kModel.decoder.heads == 16);
static_assert(kModel.head_hidden == 4096 && kModel.projector_depth == 2 && kModel.predictor_depth == 2);
static_assert(kModel.loss == M::GuidanceLoss::Cosine && kModel.guidance == M::GuidanceType::Global &&
              kModel.pool == M::PoolTokens::Visible && kModel.guided == M::GuidedTokens::Visible &&
              kModel.views == M::ViewSchedule::Symmetric && kModel.baseline == M::Baseline::Mae);
static_assert(kModel.alpha == 0.25 && kModel.mask_ratio == 0.75 && kModel.max_batch == 64);
static_assert(Mae::spec().loss == M::GuidanceLoss::None && Mae::spec(RunConfig{.alpha = 1.0}).alpha == 0.0,
              "loss::None forces alpha to 0");
static_assert(Row::spec().guidance == M::GuidanceType::TokenWise && Row::spec().encoder.dim == 384);
static_assert(std::is_same_v<Model::backbone, vit::Base16> && std::is_same_v<Model::crop, crop::SimpleResized> &&
              std::is_same_v<Mae::crop, crop::RandomResized> && std::is_same_v<Model::backend, backend::Cpu> &&
              std::is_same_v<Model::recipe, recipe::Default> && std::is_same_v<Row::guidance, guidance::TokenWise>);
static_assert(Model::guided_enabled && !Mae::guided_enabled && !Model::simmim);
using SimMim = LCMAE<vit::Base16, loss::Cosine, crop::SimpleResized, backend::Cpu, recipe::SimMim>;
static_assert(SimMim::simmim && SimMim::spec().baseline == M::Baseline::SimMim &&
              SimMim::spec().views == M::ViewSchedule::Paper && SimMim::spec().simmim_mask_ratio == 0.6);
using CpuModel = LCMAE<vit::Tiny32, loss::InfoNCE, crop::SimpleResized, backend::Cpu, recipe::Cpu>;
static_assert(CpuModel::spec().decoder.dim == 128 && CpuModel::spec().encoder.tokens() == 64);
// an override of one number by inheritance
struct NarrowHeads : recipe::Default { static constexpr long head_hidden = 1024; static constexpr int predictor_depth = 0; };
using Narrow = LCMAE<vit::Small16, loss::Cosine, crop::SimpleResized, backend::Cpu, NarrowHeads>;
static_assert(Narrow::spec().head_hidden == 1024 && Narrow::spec().predictor_depth == 0 &&
              Narrow::spec().projector_depth == 2 && Narrow::spec().decoder.dim == 512);

template <class E>
std::string error_of(E&& make) {
    try {
        make();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST_CASE("policy: run-time numbers reach the spec") {
    const RunConfig rc{.mask_ratio = 0.6, .simmim_mask_ratio = 0.5, .alpha = 0.5, .temperature = 0.1,
                       .smooth_l1_beta = 2.0, .norm_pix = false, .max_batch = 8, .seed = 3};
    const auto s = Model::spec(rc);
    CHECK(s.mask_ratio == 0.6);
    CHECK(s.simmim_mask_ratio == 0.5);
    CHECK(s.alpha == 0.5);
    CHECK(s.temperature == 0.1);
    CHECK(s.smooth_l1_beta == 2.0);
    CHECK_FALSE(s.norm_pix);
    CHECK(s.max_batch == 8);
}

TEST_CASE("policy: a tiny LCMAE builds its engine; plain MAE has no target") {
    LCMAE<TinyVit, loss::Cosine, crop::SimpleResized, backend::Cpu, Tiny> lc(tiny_run);
    CHECK(lc.has_target());
    CHECK(lc.target_params().entries().size() > 0);
    CHECK(lc.engine().spec().decoder.dim == 32);
    CHECK(lc.engine().online_views() == 2);  // symmetric
    CHECK(lc.config().max_batch == 4);
    LCMAE<TinyVit, loss::None, crop::RandomResized, backend::Cpu, Tiny> mae(tiny_run);
    CHECK_FALSE(mae.has_target());
    CHECK(mae.engine().online_views() == 1);
    CHECK(mae.params().grads().size() < lc.params().grads().size());  // no heads
    struct PaperViews : Tiny { using Views = views::Paper; };
    LCMAE<TinyVit, loss::Cosine, crop::SimpleResized, backend::Cpu, PaperViews> paper(tiny_run);
    CHECK(paper.engine().online_views() == 1);
}

TEST_CASE("policy: invalid numbers throw lcmae::Error with a sentence") {
    using Lc = LCMAE<TinyVit, loss::Cosine, crop::SimpleResized, backend::Cpu, Tiny>;
    // Symmetric views need disjoint keep sets: mask ratio >= 0.5
    const auto msg = error_of([] { Lc m(RunConfig{.mask_ratio = 0.4, .max_batch = 4}); });
    INFO(msg);
    CHECK(msg.find("the Symmetric view schedule needs disjoint keep sets, so a mask ratio >= 0.5; got 0.4") !=
          std::string::npos);
    // the same ratio is fine with the Paper schedule, and with plain MAE (one online view)
    struct PaperViews : Tiny { using Views = views::Paper; };
    using LcPaper = LCMAE<TinyVit, loss::Cosine, crop::SimpleResized, backend::Cpu, PaperViews>;
    using PlainMae = LCMAE<TinyVit, loss::None, crop::SimpleResized, backend::Cpu, Tiny>;
    CHECK(error_of([] { LcPaper m(RunConfig{.mask_ratio = 0.4, .max_batch = 4}); }) == "(no error)");
    CHECK(error_of([] { PlainMae m(RunConfig{.mask_ratio = 0.4, .max_batch = 4}); }) == "(no error)");
    CHECK(error_of([] { Lc m(RunConfig{.alpha = -1, .max_batch = 4}); }).find("alpha must be non-negative") !=
          std::string::npos);
    CHECK(error_of([] { Lc m(RunConfig{.max_batch = 0}); }).find("max_batch must be >= 1") != std::string::npos);
}

TEST_CASE("policy: guided::VisibleAndMask builds with global guidance and visible pooling, and says why otherwise") {
    struct VisMask : Tiny { using Guided = guided::VisibleAndMask; };
    using Lc = LCMAE<TinyVit, loss::Cosine, crop::SimpleResized, backend::Cpu, VisMask>;
    static_assert(Lc::spec().guided == M::GuidedTokens::VisibleAndMask);
    CHECK(error_of([] { Lc m(tiny_run); }) == "(no error)");
    struct VisMaskCls : VisMask { using Pool = tokens::Cls; };
    using LcCls = LCMAE<TinyVit, loss::Cosine, crop::SimpleResized, backend::Cpu, VisMaskCls>;
    const auto msg = error_of([] { LcCls m(tiny_run); });
    INFO(msg);
    CHECK(msg.find("guided tokens 'visible + mask' (Table 5e) pool the MAE decoder's decoded tokens") != std::string::npos);
    // with loss::None the guidance policies are ignored (plain MAE): it builds
    using PlainMae = LCMAE<TinyVit, loss::None, crop::SimpleResized, backend::Cpu, VisMask>;
    CHECK(error_of([] { PlainMae m(tiny_run); }) == "(no error)");
}

TEST_CASE("policy: forward_backward forwards to the engine") {
    LCMAE<TinyVit, loss::SmoothL1, crop::SimpleResized, backend::Cpu, Tiny> m(tiny_run);
    backend::Cpu ctx(2);
    Rng rng(7, 0);
    const long B = 2, n = B * 3 * 16 * 16;
    std::vector<float> v1(n), v2(n);
    for (auto& x : v1) x = static_cast<float>(rng.normal());
    for (auto& x : v2) x = static_cast<float>(rng.normal());
    const auto l = m.forward_backward(ctx, v1.data(), v2.data(), B, rng);
    CHECK(std::isfinite(l.total));
    CHECK(l.mim > 0);
    CHECK(l.gg > 0);
    CHECK(l.total == doctest::Approx(l.mim + 0.25 * l.gg));
}
