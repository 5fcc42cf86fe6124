// lcmae/models/model_spec.hpp - the run-time description of one pre-training model. The typed
// front end (lcmae/lcmae.hpp: LCMAE<Backbone, Loss, Crop, Backend, Recipe>) turns its policy types
// into this struct at compile time; the engine (LcmaeModel) executes it.
#pragma once

#include <cstdint>

#include "lcmae/models/mae_decoder.hpp"
#include "lcmae/vit/config.hpp"

namespace lcmae::models {

enum class GuidanceLoss { None, Cosine, InfoNCE, SmoothL1 };
enum class GuidanceType { Global, TokenWise, Both };
enum class PoolTokens { Visible, Cls };
enum class GuidedTokens { Visible, VisibleAndMask };
enum class ViewSchedule { Symmetric, Paper };
enum class Baseline { Mae, SimMim };

struct ModelSpec {
    vit::VitDims encoder;
    DecoderDims decoder{};            // MAE decoder (SimMIM uses a linear decoder instead)
    long head_hidden = 4096;          // SPEC 3
    int projector_depth = 2;          // online `head` and target `head`
    int predictor_depth = 2;          // online `predictor`
    GuidanceLoss loss = GuidanceLoss::Cosine;
    GuidanceType guidance = GuidanceType::Global;
    PoolTokens pool = PoolTokens::Visible;
    GuidedTokens guided = GuidedTokens::Visible;
    ViewSchedule views = ViewSchedule::Symmetric;
    Baseline baseline = Baseline::Mae;
    double mask_ratio = 0.75;         // MAE random masking
    double target_mask_ratio = 0.0;   // Table 5c: the target sees all tokens (0) or a random subset
    double simmim_mask_ratio = 0.6;   // SimMIM block masking
    long simmim_block = 2;            // patches per mask-block side (32 px at patch 16)
    double alpha = 0.25;              // L = L_MIM + alpha L_GG
    double temperature = 0.2;         // InfoNCE
    double smooth_l1_beta = 1.0;
    bool norm_pix = true;
    long max_batch = 64;              // per view

    bool guided_enabled() const { return loss != GuidanceLoss::None; }
    bool symmetric() const { return views == ViewSchedule::Symmetric && baseline == Baseline::Mae; }
};

/// Losses of one micro-batch.
struct StepLosses {
    double mim = 0, gg = 0, total = 0;
};

}  // namespace lcmae::models
