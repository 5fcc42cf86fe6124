// The paper's ablation grid as a type list (DESIGN.md: "a grid of ablations is a type list"): one
// entry per row of Table 5 (a)-(f) and Table B that the engine supports, plus Table A (LC-SimMIM).
// Each entry instantiates LCMAE on a tiny backbone and runs one training step: losses finite, the
// gradient arena non-zero.
//
// Every row of Table 5 (a)-(f) and Table B is here (docs/ablations.md says how to write each).
// The "None" rows of every table are the same model (plain MAE, SRC): one entry, T5_None.
#include <doctest/doctest.h>

#include <cmath>
#include <string_view>
#include <tuple>
#include <vector>

#include "lcmae/lcmae.hpp"

using namespace lcmae;
namespace M = lcmae::models;

namespace {

using TinyVit = vit::Config<32, 2, 2, 4, 16, 3>;  // D 32, 2 blocks, 2 heads, patch 4, 16 px, RGB: 16 tokens

// The tiny recipe: the paper's structure, small dims (decoder 32 x 1 block x 2 heads, head hidden 64).
struct Tiny : recipe::Default {
    static constexpr long decoder_dim = 32, decoder_depth = 1, decoder_heads = 2, head_hidden = 64;
};
struct TinyTokenWise : Tiny { using Guidance = guidance::TokenWise; };
struct TinyBoth : Tiny { using Guidance = guidance::Both; };
struct TinyCls : Tiny { using Pool = tokens::Cls; };
struct TinyVisMask : Tiny { using Guided = guided::VisibleAndMask; };
struct TinySimMim : Tiny { using Baseline = baseline::SimMim; using Views = views::Paper; };

/// One row: the types of the model plus the run-time numbers that the row changes.
template <class L, class C, class R, int AlphaPercent = 25, int TargetMaskPercent = 0>
struct Row {
    using Loss = L;
    using Crop = C;
    using Recipe = R;
    static constexpr double alpha = AlphaPercent / 100.0;
    static constexpr double target_mask_ratio = TargetMaskPercent / 100.0;
    using Model = LCMAE<TinyVit, Loss, Crop, backend::Cpu, Recipe>;
};

// ---- Table 5 (all rows: "None" is plain MAE; the gray default is LC-MAE, Cosine, global, visible, SRC)
struct T5_None : Row<loss::None, crop::SimpleResized, Tiny> {  // every table's "None" row; 5f "MAE, SRC"
    static constexpr std::string_view name = "Table 5a-f: None (plain MAE, SRC)";
};
struct T5_Default : Row<loss::Cosine, crop::SimpleResized, Tiny> {  // the gray row of every table
    static constexpr std::string_view name =
        "Table 5a Cosine / 5b Global / 5c target ratio 0 / 5d visual tokens / 5e visible only / 5f LC-MAE SRC / "
        "Table B alpha 0.25";
};
// (a) loss function
struct T5a_InfoNCE : Row<loss::InfoNCE, crop::SimpleResized, Tiny> {
    static constexpr std::string_view name = "Table 5a: InfoNCE";
};
struct T5a_SmoothL1 : Row<loss::SmoothL1, crop::SimpleResized, Tiny> {
    static constexpr std::string_view name = "Table 5a: Smoothed l1";
};
// (b) type of guidance
struct T5b_TokenWise : Row<loss::Cosine, crop::SimpleResized, TinyTokenWise> {
    static constexpr std::string_view name = "Table 5b: Token-wise guidance";
};
struct T5b_Both : Row<loss::Cosine, crop::SimpleResized, TinyBoth> {
    static constexpr std::string_view name = "Table 5b: Token-wise + Global";
};
// (c) target's masking ratio (0 = T5_Default): a run-time number
struct T5c_Target050 : Row<loss::Cosine, crop::SimpleResized, Tiny, 25, 50> {
    static constexpr std::string_view name = "Table 5c: Global guidance, target mask ratio 0.5";
};
struct T5c_Target075 : Row<loss::Cosine, crop::SimpleResized, Tiny, 25, 75> {
    static constexpr std::string_view name = "Table 5c: Global guidance, target mask ratio 0.75";
};
// (d) tokens for guidance
struct T5d_Cls : Row<loss::Cosine, crop::SimpleResized, TinyCls> {
    static constexpr std::string_view name = "Table 5d: w/ CLS token";
};
// (e) guided tokens ("visible tokens only" = T5_Default)
struct T5e_VisibleAndMask : Row<loss::Cosine, crop::SimpleResized, TinyVisMask> {
    static constexpr std::string_view name = "Table 5e: w/ visible and mask tokens";
};
// (f) view discrepancy (crop)
struct T5f_MaeRRC : Row<loss::None, crop::RandomResized, Tiny> {
    static constexpr std::string_view name = "Table 5f: MAE, RRC";
};
struct T5f_LcmaeRRC : Row<loss::Cosine, crop::RandomResized, Tiny> {
    static constexpr std::string_view name = "Table 5f: LC-MAE, RRC";
};
// ---- Table B: loss balancing alpha (0.25 = T5_Default)
struct TB_Alpha010 : Row<loss::Cosine, crop::SimpleResized, Tiny, 10> {
    static constexpr std::string_view name = "Table B: alpha 0.1";
};
struct TB_Alpha050 : Row<loss::Cosine, crop::SimpleResized, Tiny, 50> {
    static constexpr std::string_view name = "Table B: alpha 0.5";
};
struct TB_Alpha100 : Row<loss::Cosine, crop::SimpleResized, Tiny, 100> {
    static constexpr std::string_view name = "Table B: alpha 1.0";
};
// ---- Table A (appendix B.1): SimMIM and LC-SimMIM
struct TA_SimMim : Row<loss::None, crop::SimpleResized, TinySimMim> {
    static constexpr std::string_view name = "Table A: SimMIM";
};
struct TA_LcSimMim : Row<loss::Cosine, crop::SimpleResized, TinySimMim> {
    static constexpr std::string_view name = "Table A: LC-SimMIM";
};

using Grid = std::tuple<T5_None, T5_Default, T5a_InfoNCE, T5a_SmoothL1, T5b_TokenWise, T5b_Both, T5c_Target050,
                        T5c_Target075, T5d_Cls, T5e_VisibleAndMask, T5f_MaeRRC, T5f_LcmaeRRC, TB_Alpha010, TB_Alpha050, TB_Alpha100,
                        TA_SimMim, TA_LcSimMim>;

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
