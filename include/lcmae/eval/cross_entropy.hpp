// lcmae/eval/cross_entropy.hpp - softmax cross-entropy with label smoothing, on the host.
//
// For logits z (B, C) and labels y, with p = softmax(z) and smoothing e (PyTorch's
// CrossEntropyLoss(label_smoothing = e)):
//   loss = (1 / B) sum_b [ (1 - e) (-log p[b, y_b]) + (e / C) sum_c (-log p[b, c]) ]
//   d loss / d z[b, c] = (p[b, c] - (1 - e) [c == y_b] - e / C) / B
// Computed in double with the log-sum-exp shift, whatever T is.
//
// Why on the host: the linear probe (eval/linear_probe.hpp) and fine-tuning (eval/finetune.hpp)
// have logits of (batch, classes), e.g. 256 x 10: one download of the logits and one upload of
// their gradient per step cost little next to a step (fine-tuning's encoder step is ~10^4 times
// more work). It is NOT an op of the catalogue (backend/ops.hpp); on a GPU it costs one
// synchronisation per step, which a device op (soft targets uploaded, loss in backend memory)
// would remove.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "lcmae/core/error.hpp"

namespace lcmae::eval {

/// Soft-target cross-entropy (timm's SoftTargetCrossEntropy; mixup / CutMix targets,
/// eval/mixup.hpp): targets t (B, C), rows of non-negative weights (normally summing to 1),
///   loss = (1 / B) sum_b sum_c t[b, c] (-log p[b, c])
///   d loss / d z[b, c] = (p[b, c] sum_c' t[b, c'] - t[b, c]) / B
/// Returns the mean loss; writes scale * d(loss)/d(logits) into dlogits (B, C) when not null.
template <class T>
double soft_cross_entropy(long B, long C, const T* logits, const double* targets, T* dlogits = nullptr, double scale = 1.0) {
    LCMAE_CHECK(B >= 1 && C >= 2, "cross_entropy: needs B >= 1 rows and C >= 2 classes, got " << B << " x " << C);
    double total = 0;
    std::vector<double> p(static_cast<std::size_t>(C));
    for (long b = 0; b < B; ++b) {
        const T* z = logits + b * C;
        const double* t = targets + b * C;
        double mx = double(z[0]);
        for (long c = 1; c < C; ++c) mx = std::max(mx, double(z[c]));
        double se = 0;
        for (long c = 0; c < C; ++c) se += (p[static_cast<std::size_t>(c)] = std::exp(double(z[c]) - mx));
        const double lse = mx + std::log(se);  // log sum exp z
        double tsum = 0;
        for (long c = 0; c < C; ++c) {
            total += t[c] * (lse - double(z[c]));
            tsum += t[c];
        }
        if (dlogits) {
            T* d = dlogits + b * C;
            for (long c = 0; c < C; ++c)
                d[c] = static_cast<T>(scale * (p[static_cast<std::size_t>(c)] / se * tsum - t[c]) / double(B));
        }
    }
    return total / double(B);
}

/// The smoothed one-hot target of label y: 1 - e + e / C on y, e / C elsewhere (C values).
inline void smoothed_one_hot(long C, int y, double smoothing, double* t) {
    for (long c = 0; c < C; ++c) t[c] = (c == y ? 1 - smoothing : 0.0) + smoothing / double(C);
}

/// Returns the mean loss over the B rows; writes scale * d(loss)/d(logits) into dlogits (B, C)
/// when dlogits is not null (soft_cross_entropy with smoothed one-hot targets).
template <class T>
double cross_entropy(long B, long C, const T* logits, const int* labels, double smoothing = 0.0, T* dlogits = nullptr,
                     double scale = 1.0) {
    LCMAE_CHECK(B >= 1 && C >= 2, "cross_entropy: needs B >= 1 rows and C >= 2 classes, got " << B << " x " << C);
    LCMAE_CHECK(smoothing >= 0 && smoothing < 1, "cross_entropy: label smoothing must lie in [0, 1), got " << smoothing);
    std::vector<double> t(static_cast<std::size_t>(B * C));
    for (long b = 0; b < B; ++b) {
        const int y = labels[b];
        LCMAE_CHECK(y >= 0 && y < C, "cross_entropy: label " << y << " of row " << b << " is outside [0, " << C << ")");
        smoothed_one_hot(C, y, smoothing, t.data() + b * C);
    }
    return soft_cross_entropy(B, C, logits, t.data(), dlogits, scale);
}

/// Top-1 and top-5 hits of one row of scores (top-5 counts when the label is among the 5 largest;
/// ties go to the smaller class index).
template <class T>
void topk_hits(long C, const T* scores, int label, long& top1, long& top5) {
    long better = 0;  // classes ranked before the label
    for (long c = 0; c < C; ++c)
        if (scores[c] > scores[label] || (scores[c] == scores[label] && c < label)) ++better;
    top1 += better == 0;
    top5 += better < 5;
}

}  // namespace lcmae::eval
