// The paper's ablation grid as a type list (DESIGN.md: "a grid of ablations is a type list"): one
// entry per row of Table 5 (a)-(f) and Table B that the engine supports, plus Table A (LC-SimMIM).
// Each entry instantiates LCMAE on a tiny backbone and runs one training step: losses finite, the
// gradient arena non-zero.
//
// The rows live in lcmae/apps/ablation_rows.hpp (docs/ablations.md says how to write each). The
// "None" row of Table 5 (a)-(e) is plain MAE with random resized crop (the paper's numbers for it
// are Table 5f's "MAE, RRC"): one entry, Rows::MaeRrc; Table 5f's "MAE, SRC" is Rows::MaeSrc.
#include <doctest/doctest.h>

#include <cmath>
#include <string_view>
#include <tuple>
#include <vector>

#include "lcmae/apps/ablation_rows.hpp"
#include "lcmae/lcmae.hpp"

using namespace lcmae;
namespace M = lcmae::models;

namespace {

using TinyVit = vit::Config<32, 2, 2, 4, 16, 3>;  // D 32, 2 blocks, 2 heads, patch 4, 16 px, RGB: 16 tokens

// The tiny recipe: the paper's structure, small dims (decoder 32 x 1 block x 2 heads, head hidden 64).
struct Tiny : recipe::Default {
    static constexpr long decoder_dim = 32, decoder_depth = 1, decoder_heads = 2, head_hidden = 64;
};

// The rows, defined once in the library (the ablation executables use the same list on the main
// job's backbone), here on the tiny backbone and recipe.
using Rows = apps::AblationRows<TinyVit, Tiny>;
using Grid = Rows::All;
using T5_None = Rows::MaeRrc;
using T5_Default = Rows::LcmaeDefault;
using T5a_InfoNCE = Rows::InfoNce;
using T5a_SmoothL1 = Rows::SmoothL1;
using T5b_TokenWise = Rows::TokenWise;
using T5b_Both = Rows::TokenWiseAndGlobal;
using T5c_Target050 = Rows::TargetMask050;
using T5d_Cls = Rows::ClsToken;
using T5e_VisibleAndMask = Rows::VisibleAndMask;
using T5f_MaeSRC = Rows::MaeSrc;
using T5f_LcmaeRRC = Rows::LcmaeRrc;
using TB_Alpha100 = Rows::Alpha100;
using TA_SimMim = Rows::SimMim;
using TA_LcSimMim = Rows::LcSimMim;

// The spec of each row says what the row says (checked at compile time).
static_assert(T5a_InfoNCE::Model::spec().loss == M::GuidanceLoss::InfoNCE);
static_assert(T5a_SmoothL1::Model::spec().loss == M::GuidanceLoss::SmoothL1);
static_assert(T5b_TokenWise::Model::spec().guidance == M::GuidanceType::TokenWise);
static_assert(T5b_Both::Model::spec().guidance == M::GuidanceType::Both);
static_assert(T5d_Cls::Model::spec().pool == M::PoolTokens::Cls);
static_assert(T5e_VisibleAndMask::Model::spec().guided == M::GuidedTokens::VisibleAndMask);
static_assert(std::is_same_v<T5f_LcmaeRRC::Model::crop, crop::RandomResized>);
static_assert(T5_Default::Model::spec().guidance == M::GuidanceType::Global &&
              T5_Default::Model::spec().pool == M::PoolTokens::Visible &&
              T5_Default::Model::spec().guided == M::GuidedTokens::Visible);
static_assert(TA_LcSimMim::Model::spec().baseline == M::Baseline::SimMim);
static_assert(TA_SimMim::Model::spec().baseline == M::Baseline::SimMim && !TA_SimMim::Model::guided_enabled);
static_assert(!T5_None::Model::guided_enabled && std::is_same_v<T5_None::Model::crop, crop::RandomResized>);
static_assert(!T5f_MaeSRC::Model::guided_enabled && std::is_same_v<T5f_MaeSRC::Model::crop, crop::SimpleResized>);
static_assert(T5c_Target050::target_mask_ratio == 0.5 && Rows::TargetMask075::target_mask_ratio == 0.75);
static_assert(T5_Default::alpha == 0.25 && T5_Default::target_mask_ratio == 0.0);
static_assert(Rows::Alpha010::alpha == 0.1 && Rows::Alpha050::alpha == 0.5 && TB_Alpha100::alpha == 1.0);

// Every row has its own id (the ablation executables name each row's result file after it).
template <class... R>
constexpr bool ids_distinct(std::tuple<R...>*) {
    constexpr std::string_view ids[] = {R::id...};
    for (std::size_t i = 0; i < sizeof...(R); ++i)
        for (std::size_t j = i + 1; j < sizeof...(R); ++j)
            if (ids[i] == ids[j]) return false;
    return true;
}
static_assert(ids_distinct(static_cast<Grid*>(nullptr)), "two ablation rows share an id");

struct Outcome {
    M::StepLosses losses;
    double grad_sq = 0, target_sq = 0;
    bool finite_grads = true, has_target = false;
};

template <class R>
Outcome train_one_step() {
    const long B = 4;
    using Model = typename R::Model;
    Model m(RunConfig{.target_mask_ratio = R::target_mask_ratio, .alpha = R::alpha, .max_batch = B, .seed = 11});
    CHECK(m.engine().spec().target_mask_ratio == R::target_mask_ratio);
    CHECK(m.engine().spec().alpha == doctest::Approx(Model::guided_enabled ? R::alpha : 0.0));
    backend::Cpu ctx(2);
    Rng rng(2024, 1);
    const long n = B * TinyVit::channels * TinyVit::image * TinyVit::image;
    std::vector<float> v1(n), v2(n);
    for (auto& x : v1) x = static_cast<float>(rng.normal());
    for (auto& x : v2) x = static_cast<float>(rng.normal());
    m.params().zero_grad();
    Outcome o;
    o.losses = m.forward_backward(ctx, v1.data(), v2.data(), B, rng);
    const auto& g = m.params().grads();
    for (std::size_t i = 0; i < g.size(); ++i) {
        o.finite_grads = o.finite_grads && std::isfinite(g.data()[i]);
        o.grad_sq += double(g.data()[i]) * g.data()[i];
    }
    o.has_target = m.has_target();
    if (o.has_target) {
        const auto& tv = m.target_params().values();
        for (std::size_t i = 0; i < tv.size(); ++i) o.target_sq += double(tv.data()[i]) * tv.data()[i];
    }
    return o;
}

template <class R>
void check_row() {
    using Model = typename R::Model;
    INFO(R::name);
    const Outcome o = train_one_step<R>();
    CHECK(std::isfinite(o.losses.mim));
    CHECK(std::isfinite(o.losses.gg));
    CHECK(std::isfinite(o.losses.total));
    CHECK(o.losses.mim > 0);
    CHECK(o.finite_grads);
    CHECK(o.grad_sq > 0);
    CHECK(o.has_target == Model::guided_enabled);
    if constexpr (Model::guided_enabled) {
        CHECK(o.losses.gg > 0);
        CHECK(o.target_sq > 0);
        CHECK(o.losses.total == doctest::Approx(o.losses.mim + R::alpha * o.losses.gg));
    } else {
        CHECK(o.losses.gg == 0);
        CHECK(o.losses.total == doctest::Approx(o.losses.mim));
    }
}

}  // namespace

TEST_CASE("ablation grid: every supported row of Table 5 (a)-(f), Table B and Table A trains one step") {
    static_assert(std::tuple_size_v<Grid> == 17);
    std::apply([](auto... rows) { (check_row<decltype(rows)>(), ...); }, Grid{});
}
