// lcmae/eval/mixup.hpp - mixup / CutMix with soft targets for fine-tuning (SPEC 4), as timm's
// Mixup in its default 'batch' mode (what MAE's fine-tuning uses):
//
//   with probability `prob` a batch is mixed, else lam = 1 (only label smoothing);
//   if both alphas > 0: CutMix with probability switch_prob, else mixup; one alpha > 0: that one;
//   lam ~ Beta(alpha, alpha) of the chosen kind;
//   mixup:  x[b] = lam x[b] + (1 - lam) x[B-1-b]        (the batch paired with its reverse)
//   CutMix: a box of relative side sqrt(1 - lam), centre uniform on the image and clipped to it,
//           gets x[B-1-b]'s pixels; lam is then corrected to 1 - box area / image area;
//   target[b] = lam s(y[b]) + (1 - lam) s(y[B-1-b]), s(y) the smoothed one-hot of y
//   (1 - e + e / C on y, e / C elsewhere: label smoothing folded in as timm's mixup_target).
//
// Images are the normalised CHW floats of one batch in host memory, mixed in place before the
// upload. Draws come from the counter-based Rng (core/rng.hpp): one Rng per batch, keyed by the
// caller (seed, step), so a run is reproducible whatever the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/eval/cross_entropy.hpp"

namespace lcmae::eval {

/// Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 via Gamma(shape + 1) U^(1 / shape).
inline double sample_gamma(double shape, Rng& rng) {
    LCMAE_CHECK(shape > 0, "sample_gamma needs a positive shape, got " << shape);
    if (shape < 1) {
        const double u = std::max(rng.uniform_double(), 1e-300);
        return sample_gamma(shape + 1, rng) * std::pow(u, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = rng.normal();
            v = 1.0 + c * x;
        } while (v <= 0);
        v = v * v * v;
        const double u = rng.uniform_double();
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
        if (std::log(std::max(u, 1e-300)) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
    }
}

/// Beta(a, a).
inline double sample_beta(double a, Rng& rng) {
    const double x = sample_gamma(a, rng), y = sample_gamma(a, rng);
    return x + y > 0 ? x / (x + y) : 0.5;
}

struct MixupConfig {
    double mixup_alpha = 0.8;   // 0 = no mixup
    double cutmix_alpha = 1.0;  // 0 = no CutMix
    double prob = 1.0;          // probability that a batch is mixed at all
    double switch_prob = 0.5;   // CutMix instead of mixup when both are on
    double label_smoothing = 0.1;

    bool active() const { return prob > 0 && (mixup_alpha > 0 || cutmix_alpha > 0); }
    void validate() const {
        LCMAE_CHECK(mixup_alpha >= 0 && cutmix_alpha >= 0, "mixup / cutmix alphas must be >= 0, got " << mixup_alpha << ", " << cutmix_alpha);
        LCMAE_CHECK(prob >= 0 && prob <= 1 && switch_prob >= 0 && switch_prob <= 1,
                    "mixup probabilities must lie in [0, 1], got " << prob << ", " << switch_prob);
        LCMAE_CHECK(label_smoothing >= 0 && label_smoothing < 1, "label smoothing must lie in [0, 1), got " << label_smoothing);
    }
};

/// What one call did (for tests and logs).
struct MixInfo {
    enum Kind { None, Mixup, CutMix } kind = None;
    double lam = 1;                 // the (corrected) weight of each sample's own label
    int y0 = 0, y1 = 0, x0 = 0, x1 = 0;  // the CutMix box [y0, y1) x [x0, x1)
};

/// Mixes B images (B, C, H, W) in place and writes the soft targets (B, classes).
inline MixInfo mix_batch(const MixupConfig& cfg, Rng& rng, long B, long C, long H, long W, float* images, const int* labels,
                         int classes, double* targets) {
    cfg.validate();
    LCMAE_CHECK(B >= 1 && classes >= 2, "mix_batch: needs B >= 1 and >= 2 classes");
    MixInfo info;
    if (cfg.active() && rng.uniform_double() < cfg.prob) {
        const bool cut = cfg.cutmix_alpha > 0 && (cfg.mixup_alpha <= 0 || rng.uniform_double() < cfg.switch_prob);
        info.kind = cut ? MixInfo::CutMix : MixInfo::Mixup;
        info.lam = sample_beta(cut ? cfg.cutmix_alpha : cfg.mixup_alpha, rng);
    }
    const long per = C * H * W;
    if (info.kind == MixInfo::Mixup) {  // pairs (b, B-1-b) are mixed together: work on b < B-1-b
        const float l = static_cast<float>(info.lam), m = static_cast<float>(1 - info.lam);
        for (long b = 0; b < B / 2; ++b) {
            float* p = images + b * per;
            float* q = images + (B - 1 - b) * per;
            for (long i = 0; i < per; ++i) {
                const float a = p[i], c = q[i];
                p[i] = l * a + m * c;
                q[i] = l * c + m * a;
            }
        }
    } else if (info.kind == MixInfo::CutMix) {  // timm's rand_bbox: cut ratio sqrt(1 - lam)
        const double rat = std::sqrt(1 - info.lam);
        const long ch = static_cast<long>(double(H) * rat), cw = static_cast<long>(double(W) * rat);
        const long cy = static_cast<long>(rng.below(static_cast<std::uint64_t>(H)));
        const long cx = static_cast<long>(rng.below(static_cast<std::uint64_t>(W)));
        info.y0 = static_cast<int>(std::clamp(cy - ch / 2, 0L, H));
        info.y1 = static_cast<int>(std::clamp(cy + ch / 2, 0L, H));
        info.x0 = static_cast<int>(std::clamp(cx - cw / 2, 0L, W));
        info.x1 = static_cast<int>(std::clamp(cx + cw / 2, 0L, W));
        info.lam = 1.0 - double((info.y1 - info.y0) * (info.x1 - info.x0)) / double(H * W);
        for (long b = 0; b < B / 2; ++b)  // swap the box between the pair
            for (long c = 0; c < C; ++c)
                for (long y = info.y0; y < info.y1; ++y)
                    for (long x = info.x0; x < info.x1; ++x)
                        std::swap(images[b * per + (c * H + y) * W + x], images[(B - 1 - b) * per + (c * H + y) * W + x]);
    }
    std::vector<double> own(static_cast<std::size_t>(classes)), other(static_cast<std::size_t>(classes));
    for (long b = 0; b < B; ++b) {
        smoothed_one_hot(classes, labels[b], cfg.label_smoothing, own.data());
        smoothed_one_hot(classes, labels[B - 1 - b], cfg.label_smoothing, other.data());
        for (int c = 0; c < classes; ++c)
            targets[b * classes + c] = info.lam * own[static_cast<std::size_t>(c)] + (1 - info.lam) * other[static_cast<std::size_t>(c)];
    }
    return info;
}

}  // namespace lcmae::eval
