// lcmae/backend/cpu/losses.hpp - the reconstruction losses (SPEC 2, SPEC 3 LC-SimMIM) and the
// guidance losses L_GG (SPEC 3) on the CPU (contracts in ops.hpp): each writes its value into
// *loss and d loss / d prediction. Sums run in double so the loss does not depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/ops.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::ops {

/// MAE's norm-pix MSE (SPEC 2). pred, target: (B, L, P); mask (B, L) 1 = removed. With norm_pix,
/// each target patch is standardised with its mean and UNBIASED variance (divisor P - 1), eps 1e-6.
/// Loss = sum_n mask_n mean_p (pred - target)^2 / sum_n mask_n. Writes d_pred (scaled by `scale`).
template <class T>
inline void norm_pix_mse(const backend::Cpu&, long B, long L, long P, const T* pred, const T* target, const T* mask,
                         bool norm_pix, double scale, T* d_pred, double* loss) {
    double mask_sum = 0;
    for (long i = 0; i < B * L; ++i) mask_sum += mask[i];
    LCMAE_CHECK(mask_sum > 0, "the MIM loss needs at least one masked patch (mask sums to 0)");
    double total = 0;
    const double coef = 2.0 / (double(P) * mask_sum) * scale;
    for (long i = 0; i < B * L; ++i) {
        const T* t = target + i * P;
        const T* p = pred + i * P;
        double mean = 0, inv_std = 1;
        if (norm_pix) {
            for (long j = 0; j < P; ++j) mean += t[j];
            mean /= P;
            double var = 0;
            for (long j = 0; j < P; ++j) var += (t[j] - mean) * (t[j] - mean);
            var /= double(P - 1);
            inv_std = 1.0 / std::sqrt(var + 1e-6);
        }
        double se = 0;
        for (long j = 0; j < P; ++j) {
            const double diff = double(p[j]) - (double(t[j]) - mean) * inv_std;
            se += diff * diff;
            if (d_pred) d_pred[i * P + j] = T(coef * mask[i] * diff);
        }
        total += mask[i] * se / P;
    }
    *loss = total / mask_sum;
}

/// LC-SimMIM's L1 (SPEC 3): sum_{masked tokens} sum_p |pred - target| / (n_masked * p*p + 1e-5) / C.
/// `pixels_per_token` = p*p, `channels` = C, P = p*p*C.
template <class T>
inline void simmim_l1(const backend::Cpu&, long B, long L, long P, long pixels_per_token, long channels, const T* pred,
                      const T* target, const T* mask, double scale, T* d_pred, double* loss) {
    double masked = 0;
    for (long i = 0; i < B * L; ++i) masked += mask[i];
    const double denom = (masked * double(pixels_per_token) + 1e-5) * double(channels);
    double total = 0;
    for (long i = 0; i < B * L; ++i)
        for (long j = 0; j < P; ++j) {
            const double diff = double(pred[i * P + j]) - double(target[i * P + j]);
            total += mask[i] * std::abs(diff);
            if (d_pred) d_pred[i * P + j] = T(scale * mask[i] * (diff > 0 ? 1.0 : (diff < 0 ? -1.0 : 0.0)) / denom);
        }
    *loss = total / denom;
}

namespace detail {
inline double clamp_norm(double n) { return std::max(n, 1e-12); }
}  // namespace detail

/// Cosine (normalised L2): mean_b (2 - 2 <q/|q|, t/|t|>), norms clamped at 1e-12; t is constant.
template <class T>
inline void guidance_cosine(const backend::Cpu&, long B, long D, const T* q, const T* t, double scale, T* dq, double* loss) {
    double total = 0;
    for (long b = 0; b < B; ++b) {
        const T* qb = q + b * D;
        const T* tb = t + b * D;
        double qq = 0, tt = 0, qt = 0;
        for (long c = 0; c < D; ++c) { qq += double(qb[c]) * qb[c]; tt += double(tb[c]) * tb[c]; qt += double(qb[c]) * tb[c]; }
        const double nq = std::sqrt(qq), nt = std::sqrt(tt);
        const double cq = detail::clamp_norm(nq), ct = detail::clamp_norm(nt);
        const double cos = qt / (cq * ct);
        total += 2.0 - 2.0 * cos;
        if (dq) {
            // d(-2 cos)/dq = -2/B [t/(cq ct) - (qt/(cq^2 ct)) dcq/dq], dcq/dq = q/nq when nq > 1e-12
            const double g = -2.0 * scale / double(B);
            const double proj = nq > 1e-12 ? qt / (cq * cq * ct) / nq : 0.0;
            for (long c = 0; c < D; ++c) dq[b * D + c] += T(g * (tb[c] / (cq * ct) - proj * qb[c]));
        }
    }
    *loss = total / double(B);
}

/// InfoNCE (SPEC 3): both l2-normalised, logits = q k^T / T (B x B), cross-entropy with labels on
/// the diagonal, times 2T.
/// `scratch` holds infonce_scratch_size(B, D) doubles (ops.hpp).
template <class T>
inline void guidance_infonce(const backend::Cpu&, long B, long D, double temperature, const T* q, const T* t,
                             double scale, T* dq, double* scratch, double* loss) {
    LCMAE_CHECK(temperature > 0, "InfoNCE temperature must be positive, got " << temperature);
    double* qn = scratch;
    double* tn = qn + B * D;
    double* dqn = tn + B * D;
    double* nq = dqn + B * D;
    double* logits = nq + B;
    double* prob = logits + B;
    std::fill(dqn, dqn + B * D, 0.0);
    for (long b = 0; b < B; ++b) {
        double qq = 0, tt = 0;
        for (long c = 0; c < D; ++c) { qq += double(q[b * D + c]) * q[b * D + c]; tt += double(t[b * D + c]) * t[b * D + c]; }
        nq[b] = std::sqrt(qq);
        const double cq = detail::clamp_norm(nq[b]), ct = detail::clamp_norm(std::sqrt(tt));
        for (long c = 0; c < D; ++c) { qn[b * D + c] = q[b * D + c] / cq; tn[b * D + c] = t[b * D + c] / ct; }
    }
    double total = 0;
    for (long i = 0; i < B; ++i) {
        double mx = -1e300;
        for (long j = 0; j < B; ++j) {
            double s = 0;
            for (long c = 0; c < D; ++c) s += qn[i * D + c] * tn[j * D + c];
            logits[j] = s / temperature;
            mx = std::max(mx, logits[j]);
        }
        double z = 0;
        for (long j = 0; j < B; ++j) { prob[j] = std::exp(logits[j] - mx); z += prob[j]; }
        total += -(logits[i] - mx - std::log(z));
        // d CE / d logit_j = prob_j - [j == i]; d logit / d qn_i = t_j / T
        for (long j = 0; j < B; ++j) {
            const double g = (prob[j] / z - (j == i ? 1.0 : 0.0)) / temperature;
            for (long c = 0; c < D; ++c) dqn[i * D + c] += g * tn[j * D + c];
        }
    }
    const double factor = 2.0 * temperature / double(B);
    if (dq) {
        for (long b = 0; b < B; ++b) {
            const double cq = detail::clamp_norm(nq[b]);
            double dot = 0;
            for (long c = 0; c < D; ++c) dot += dqn[b * D + c] * qn[b * D + c];
            for (long c = 0; c < D; ++c) {
                const double g = nq[b] > 1e-12 ? (dqn[b * D + c] - dot * qn[b * D + c]) / cq : dqn[b * D + c] / cq;
                dq[b * D + c] += T(scale * factor * g);
            }
        }
    }
    *loss = total * factor;
}

/// Smooth L1 (beta): elementwise 0.5 x^2 / beta if |x| < beta else |x| - 0.5 beta, mean over B*D.
template <class T>
inline void guidance_smooth_l1(const backend::Cpu&, long B, long D, double beta, const T* q, const T* t, double scale,
                               T* dq, double* loss) {
    LCMAE_CHECK(beta > 0, "Smooth L1 beta must be positive, got " << beta);
    double total = 0;
    const double n = double(B * D);
    for (long i = 0; i < B * D; ++i) {
        const double x = double(q[i]) - double(t[i]);
        const double ax = std::abs(x);
        total += ax < beta ? 0.5 * x * x / beta : ax - 0.5 * beta;
        if (dq) dq[i] += T(scale * (ax < beta ? x / beta : (x > 0 ? 1.0 : -1.0)) / n);
    }
    *loss = total / n;
}

}  // namespace lcmae::ops
