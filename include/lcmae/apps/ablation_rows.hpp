// lcmae/apps/ablation_rows.hpp - every row of the paper's ablation tables (Table 5 (a)-(f), Table B,
// Table A) as a type, defined once (DESIGN.md: "a grid of ablations is a type list").
//
// AblationRows<Backbone, Base> holds the rows for one backbone and one base recipe:
//   - tests/models/test_ablation_grid.cpp instantiates it on a tiny ViT and trains one step per row;
//   - examples/ablations/ (one executable per table) instantiate it on the main job's backbone and
//     recipe (lcmae/apps/main_job_models.hpp) and pre-train + evaluate each row of their table.
//
// A row is the model's structure (Loss, Crop, Recipe: types) plus the two run-time numbers that the
// tables vary (alpha: Table B, target mask ratio: Table 5c); everything else is the base recipe.
// Each row has an `id` (file names: OUT/<id>.json) and a `name` (what it is, in words). A row that
// appears in several tables (the LC-MAE default is the gray row of all of them) is ONE type, so a
// grid that shares an output folder trains it once.
//
// The paper's "None" row of Table 5 (a)-(e) is plain MAE with MAE's random resized crop: its numbers
// (ft 82.8, lin 61.5) are those of Table 5f's "MAE, RRC" row. So MaeRrc is "None" of (a)-(e), and
// MaeSrc is only Table 5f's "MAE, SRC".
#pragma once

#include <string_view>
#include <tuple>

#include "lcmae/lcmae.hpp"

namespace lcmae::apps {

/// One ablation row: the structure (Loss, Crop, Recipe) and the run-time numbers it changes.
/// AlphaPercent and TargetMaskPercent are integers so that a row stays a plain type (alpha 0.25 =
/// 25); with loss::None both are ignored (plain MAE / SimMIM has no guidance branch).
template <class Backbone, class L, class C, class R, int AlphaPercent = 25, int TargetMaskPercent = 0,
          class Backend = backend::Cpu>
struct AblationRow {
    using Loss = L;
    using Crop = C;
    using Recipe = R;
    static constexpr double alpha = AlphaPercent / 100.0;
    static constexpr double target_mask_ratio = TargetMaskPercent / 100.0;
    using Model = LCMAE<Backbone, Loss, Crop, Backend, Recipe>;
};

/// Every row of Table 5 (a)-(f), Table B and Table A for a backbone and a base recipe (the decoder
/// and head dims; the rows override only the policy they ablate).
template <class Backbone, class Base, class Backend = backend::Cpu>
struct AblationRows {
    // ---- the recipes the rows override (one policy each)
    struct TokenWiseRecipe : Base { using Guidance = guidance::TokenWise; };      // 5b
    struct BothRecipe : Base { using Guidance = guidance::Both; };                // 5b
    struct ClsRecipe : Base { using Pool = tokens::Cls; };                         // 5d
    struct VisibleAndMaskRecipe : Base { using Guided = guided::VisibleAndMask; }; // 5e
    struct SimMimRecipe : Base {                                                   // A: SimMIM needs the Paper views
        using Baseline = baseline::SimMim;
        using Views = views::Paper;
    };

    template <class L, class C, class R, int AlphaPercent = 25, int TargetMaskPercent = 0>
    using Row = AblationRow<Backbone, L, C, R, AlphaPercent, TargetMaskPercent, Backend>;

    // ---- plain MAE (no guidance branch)
    struct MaeRrc : Row<loss::None, crop::RandomResized, Base> {  // "None" of 5a-e; 5f "MAE, RRC"
        static constexpr std::string_view id = "mae-rrc", name = "MAE, random resized crop";
    };
    struct MaeSrc : Row<loss::None, crop::SimpleResized, Base> {  // 5f "MAE, SRC"
        static constexpr std::string_view id = "mae-src", name = "MAE, simple resized crop";
    };
    // ---- LC-MAE's default: cosine, global guidance, visible tokens pooled and guided, SRC, alpha 0.25,
    // target mask ratio 0 (the gray row of every table)
    struct LcmaeDefault : Row<loss::Cosine, crop::SimpleResized, Base> {
        static constexpr std::string_view id = "lcmae-default",
                                          name = "LC-MAE default (cosine, global, visible, SRC, alpha 0.25)";
    };
    // ---- (a) loss function
    struct InfoNce : Row<loss::InfoNCE, crop::SimpleResized, Base> {
        static constexpr std::string_view id = "lcmae-infonce", name = "LC-MAE, InfoNCE guidance loss";
    };
    struct SmoothL1 : Row<loss::SmoothL1, crop::SimpleResized, Base> {
        static constexpr std::string_view id = "lcmae-smoothl1", name = "LC-MAE, smoothed l1 guidance loss";
    };
    // ---- (b) type of guidance
    struct TokenWise : Row<loss::Cosine, crop::SimpleResized, TokenWiseRecipe> {
        static constexpr std::string_view id = "lcmae-tokenwise", name = "LC-MAE, token-wise guidance";
    };
    struct TokenWiseAndGlobal : Row<loss::Cosine, crop::SimpleResized, BothRecipe> {
        static constexpr std::string_view id = "lcmae-tokenwise-global", name = "LC-MAE, token-wise + global guidance";
    };
    // ---- (c) target's masking ratio (a run-time number)
    struct TargetMask050 : Row<loss::Cosine, crop::SimpleResized, Base, 25, 50> {
        static constexpr std::string_view id = "lcmae-target-mask-050", name = "LC-MAE, target mask ratio 0.5";
    };
    struct TargetMask075 : Row<loss::Cosine, crop::SimpleResized, Base, 25, 75> {
        static constexpr std::string_view id = "lcmae-target-mask-075", name = "LC-MAE, target mask ratio 0.75";
    };
    // ---- (d) tokens for guidance
    struct ClsToken : Row<loss::Cosine, crop::SimpleResized, ClsRecipe> {
        static constexpr std::string_view id = "lcmae-cls", name = "LC-MAE, CLS token pooled for guidance";
    };
    // ---- (e) guided tokens
    struct VisibleAndMask : Row<loss::Cosine, crop::SimpleResized, VisibleAndMaskRecipe> {
        static constexpr std::string_view id = "lcmae-visible-and-mask", name = "LC-MAE, visible and mask tokens guided";
    };
    // ---- (f) view discrepancy: LC-MAE with RRC (SRC is the default)
    struct LcmaeRrc : Row<loss::Cosine, crop::RandomResized, Base> {
        static constexpr std::string_view id = "lcmae-rrc", name = "LC-MAE, random resized crop";
    };
    // ---- Table B: alpha (0.25 is the default)
    struct Alpha010 : Row<loss::Cosine, crop::SimpleResized, Base, 10> {
        static constexpr std::string_view id = "lcmae-alpha-010", name = "LC-MAE, alpha 0.1";
    };
    struct Alpha050 : Row<loss::Cosine, crop::SimpleResized, Base, 50> {
        static constexpr std::string_view id = "lcmae-alpha-050", name = "LC-MAE, alpha 0.5";
    };
    struct Alpha100 : Row<loss::Cosine, crop::SimpleResized, Base, 100> {
        static constexpr std::string_view id = "lcmae-alpha-100", name = "LC-MAE, alpha 1.0";
    };
    // ---- Table A (appendix B.1): SimMIM and LC-SimMIM
    struct SimMim : Row<loss::None, crop::SimpleResized, SimMimRecipe> {
        static constexpr std::string_view id = "simmim", name = "SimMIM";
    };
    struct LcSimMim : Row<loss::Cosine, crop::SimpleResized, SimMimRecipe> {
        static constexpr std::string_view id = "lc-simmim", name = "LC-SimMIM (cosine, global, alpha 0.25)";
    };

    /// Every distinct row once (17): what the grid test trains.
    using All = std::tuple<MaeRrc, MaeSrc, LcmaeDefault, InfoNce, SmoothL1, TokenWise, TokenWiseAndGlobal, TargetMask050,
                           TargetMask075, ClsToken, VisibleAndMask, LcmaeRrc, Alpha010, Alpha050, Alpha100, SimMim, LcSimMim>;
};

}  // namespace lcmae::apps
