// lcmae/backend/cuda/losses.cuh - the reconstruction losses (norm_pix_mse, simmim_l1) and the
// guidance losses (guidance_cosine, guidance_infonce, guidance_smooth_l1) on the GPU (contracts in
// backend/ops.hpp; same names and parameters as backend/cpu/losses.hpp; every pointer, `loss` and
// the InfoNCE `scratch` included, is device memory).
//
// Each loss writes its value into the device double *loss (no host sync) and its gradient (d_pred
// written, dq ACCUMULATED, as on the CPU). All sums are in double, as on the CPU, and deterministic:
//   * row losses: at most kOpMaxBlocks blocks (a number that depends only on the sizes), block j
//     takes rows j, j + grid, ... in order; per row the block sums with block_sum (fixed order), and
//     adds the row's term to its own running total; thread 0 writes the block's total into the
//     context's op_partials(); then one warp adds the partials in a fixed order and writes *loss.
//   * mask sums (norm_pix_mse's denominator, simmim_l1's) come first, from one block, into
//     ctx.op_extra(), which the row kernels read: no host round trip.
// The double arithmetic matches the CPU's expression by expression, but the order of the sums does
// not (the CPU sums sequentially), so values agree to double rounding (~1e-15 relative) and the
// float gradients to float rounding. InfoNCE uses an online softmax (running max and sum), equal to
// the CPU's two-pass form up to double rounding.
// A mask that sums to 0 in norm_pix_mse (the CPU throws) is recorded as kErrLossMask for
// ctx.check_errors(); the value and gradient are then inf/NaN. Host-side scalar checks (InfoNCE
// temperature, Smooth L1 beta) throw at once, as on the CPU.
#pragma once

#include <algorithm>

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"

namespace lcmae::backend::cuda_detail {

inline constexpr int kLossThreads = 256;

/// Blocks for `rows` independent rows (block j takes rows j, j + grid, ...).
inline int loss_blocks(long long rows) {
    return static_cast<int>(std::min<long long>(std::max<long long>(rows, 1), kOpMaxBlocks));
}

__device__ inline double clamp_norm_dev(double n) { return n > 1e-12 ? n : 1e-12; }

/// out[0] = sum of mask[0..n) (mode 0: norm_pix_mse; records kErrLossMask unless > 0), or
/// (sum * pixels + 1e-5) * channels (mode 1: simmim_l1's denominator). One block.
template <class T>
__global__ void mask_sum_kernel(long long n, const T* __restrict__ mask, int mode, double pixels, double channels,
                                double* __restrict__ out, DeviceErrors* errors) {
    __shared__ double sh[32];
    double s = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += double(mask[i]);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        if (mode == 0) {
            if (!(s > 0)) record_error(errors, kErrLossMask, 0, 0);
            out[0] = s;
        } else {
            out[0] = (s * pixels + 1e-5) * channels;
        }
    }
}

/// *out = ((sum of partials[0..count)) / (*dev_div if given) / host_div) * host_mul; one warp.
template <class Unused = void>
__global__ void loss_final_kernel(int count, const double* __restrict__ partials, const double* __restrict__ dev_div,
                                  double host_div, double host_mul, double* __restrict__ out) {
    double s = 0;
    for (int i = threadIdx.x; i < count; i += 32) s += partials[i];
    s = warp_sum(s);
    if (threadIdx.x == 0) {
        double v = s;
        if (dev_div) v = v / dev_div[0];
        v = v / host_div;
        v = v * host_mul;
        out[0] = v;
    }
}

/// norm_pix_mse rows: per row the (optionally standardised) target, d_pred and mask * se / P.
template <class T>
__global__ void norm_pix_mse_kernel(long long rows, long long P, const T* __restrict__ pred, const T* __restrict__ target,
                                    const T* __restrict__ mask, bool norm_pix, double scale,
                                    const double* __restrict__ mask_sum, T* __restrict__ d_pred,
                                    double* __restrict__ partials) {
    __shared__ double sh[32];
    const double coef = 2.0 / (double(P) * mask_sum[0]) * scale;
    double part = 0;
    for (long long i = blockIdx.x; i < rows; i += gridDim.x) {
        const T* t = target + i * P;
        const T* p = pred + i * P;
        double mean = 0, inv_std = 1;
        if (norm_pix) {
            double s = 0;
            for (long long j = threadIdx.x; j < P; j += blockDim.x) s += double(t[j]);
            mean = block_sum(s, sh) / double(P);
            double v = 0;
            for (long long j = threadIdx.x; j < P; j += blockDim.x) {
                const double d = double(t[j]) - mean;
                v += d * d;
            }
            const double var = block_sum(v, sh) / double(P - 1);
            inv_std = 1.0 / sqrt(var + 1e-6);
        }
        const double mi = double(mask[i]);
        double se = 0;
        for (long long j = threadIdx.x; j < P; j += blockDim.x) {
            const double diff = double(p[j]) - (double(t[j]) - mean) * inv_std;
            se += diff * diff;
            if (d_pred) d_pred[i * P + j] = T(coef * mi * diff);
        }
        se = block_sum(se, sh);
        part += mi * se / double(P);
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = part;
}

/// simmim_l1 rows: mask * sum |pred - target|, and d_pred = scale mask sign(diff) / denom.
template <class T>
__global__ void simmim_l1_kernel(long long rows, long long P, const T* __restrict__ pred, const T* __restrict__ target,
                                 const T* __restrict__ mask, double scale, const double* __restrict__ denom_p,
                                 T* __restrict__ d_pred, double* __restrict__ partials) {
    __shared__ double sh[32];
    const double denom = denom_p[0];
    double part = 0;
    for (long long i = blockIdx.x; i < rows; i += gridDim.x) {
        const double mi = double(mask[i]);
        double s = 0;
        for (long long j = threadIdx.x; j < P; j += blockDim.x) {
            const double diff = double(pred[i * P + j]) - double(target[i * P + j]);
            s += mi * fabs(diff);
            if (d_pred) d_pred[i * P + j] = T(scale * mi * (diff > 0 ? 1.0 : (diff < 0 ? -1.0 : 0.0)) / denom);
        }
        part += block_sum(s, sh);
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = part;
}

/// guidance_cosine rows: 2 - 2 cos(q_b, t_b); dq += g (t / (cq ct) - proj q).
template <class T>
__global__ void guidance_cosine_kernel(long long R, long long D, const T* __restrict__ q, const T* __restrict__ t,
                                       double scale, T* __restrict__ dq, double* __restrict__ partials) {
    __shared__ double sh[32];
    double part = 0;
    for (long long b = blockIdx.x; b < R; b += gridDim.x) {
        const T* qb = q + b * D;
        const T* tb = t + b * D;
        double qq = 0, tt = 0, qt = 0;
        for (long long c = threadIdx.x; c < D; c += blockDim.x) {
            const double x = double(qb[c]), y = double(tb[c]);
            qq += x * x;
            tt += y * y;
            qt += x * y;
        }
        qq = block_sum(qq, sh);
        tt = block_sum(tt, sh);
        qt = block_sum(qt, sh);
        const double nq = sqrt(qq), nt = sqrt(tt);
        const double cq = clamp_norm_dev(nq), ct = clamp_norm_dev(nt);
        const double cosv = qt / (cq * ct);
        part += 2.0 - 2.0 * cosv;
        if (dq) {
            const double g = -2.0 * scale / double(R);
            const double proj = nq > 1e-12 ? qt / (cq * cq * ct) / nq : 0.0;
            for (long long c = threadIdx.x; c < D; c += blockDim.x)
                dq[b * D + c] += T(g * (double(tb[c]) / (cq * ct) - proj * double(qb[c])));
        }
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = part;
}

/// guidance_smooth_l1: elementwise over n = R*D values, grid-stride; dq += scale * grad / n.
template <class T>
__global__ void guidance_smooth_l1_kernel(long long n, double beta, const T* __restrict__ q, const T* __restrict__ t,
                                          double scale, T* __restrict__ dq, double* __restrict__ partials) {
    __shared__ double sh[32];
    const double nd = double(n);
    double part = 0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const double x = double(q[i]) - double(t[i]);
        const double ax = fabs(x);
        part += ax < beta ? 0.5 * x * x / beta : ax - 0.5 * beta;
        if (dq) dq[i] += T(scale * (ax < beta ? x / beta : (x > 0 ? 1.0 : -1.0)) / nd);
    }
    part = block_sum(part, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = part;
}

/// InfoNCE step 1, one block per row: nq[b] = |q_b|, qn = q / cq, tn = t / ct (double), dqn = 0.
template <class T>
__global__ void infonce_normalize_kernel(long long R, long long D, const T* __restrict__ q, const T* __restrict__ t,
                                         double* __restrict__ qn, double* __restrict__ tn, double* __restrict__ dqn,
                                         double* __restrict__ nq) {
    __shared__ double sh[32];
    for (long long b = blockIdx.x; b < R; b += gridDim.x) {
        double qq = 0, tt = 0;
        for (long long c = threadIdx.x; c < D; c += blockDim.x) {
            const double x = double(q[b * D + c]), y = double(t[b * D + c]);
            qq += x * x;
            tt += y * y;
        }
        qq = block_sum(qq, sh);
        tt = block_sum(tt, sh);
        const double n = sqrt(qq);
        const double cq = clamp_norm_dev(n), ct = clamp_norm_dev(sqrt(tt));
        for (long long c = threadIdx.x; c < D; c += blockDim.x) {
            qn[b * D + c] = double(q[b * D + c]) / cq;
            tn[b * D + c] = double(t[b * D + c]) / ct;
            dqn[b * D + c] = 0.0;
        }
        if (threadIdx.x == 0) nq[b] = n;
    }
}

/// InfoNCE step 2, one block per row i: logits l_j = <qn_i, tn_j> / T (each a block sum, computed
/// twice, identically); online max/sum for the log-sum-exp; the row's cross-entropy; dqn_i =
/// sum_j (p_j - [j == i]) / T tn_j (each thread owns its columns, j in order); then dq_i +=
/// scale * factor * (dqn_i - <dqn_i, qn_i> qn_i) / cq (or dqn_i / cq for a zero row).
template <class T>
__global__ void infonce_rows_kernel(long long R, long long D, double temperature, const double* __restrict__ qn,
                                    const double* __restrict__ tn, double* __restrict__ dqn,
                                    const double* __restrict__ nq, double scale, double factor, T* __restrict__ dq,
                                    double* __restrict__ partials) {
    __shared__ double sh[32];
    double part = 0;
    for (long long i = blockIdx.x; i < R; i += gridDim.x) {
        const double* qi = qn + i * D;
        double mx = 0, z = 0, li = 0;
        for (long long j = 0; j < R; ++j) {
            double s = 0;
            for (long long c = threadIdx.x; c < D; c += blockDim.x) s += qi[c] * tn[j * D + c];
            const double l = block_sum(s, sh) / temperature;
            if (j == 0) {
                mx = l;
                z = 1.0;
            } else if (l > mx) {
                z = z * exp(mx - l) + 1.0;
                mx = l;
            } else {
                z += exp(l - mx);
            }
            if (j == i) li = l;
        }
        part += -(li - mx - log(z));
        double* di = dqn + i * D;
        for (long long j = 0; j < R; ++j) {
            double s = 0;
            for (long long c = threadIdx.x; c < D; c += blockDim.x) s += qi[c] * tn[j * D + c];
            const double l = block_sum(s, sh) / temperature;
            const double g = (exp(l - mx) / z - (j == i ? 1.0 : 0.0)) / temperature;
            for (long long c = threadIdx.x; c < D; c += blockDim.x) di[c] += g * tn[j * D + c];
        }
        if (dq) {
            double s = 0;
            for (long long c = threadIdx.x; c < D; c += blockDim.x) s += di[c] * qi[c];
            const double dotv = block_sum(s, sh);
            const double cq = clamp_norm_dev(nq[i]);
            const bool nonzero = nq[i] > 1e-12;
            for (long long c = threadIdx.x; c < D; c += blockDim.x) {
                const double g = nonzero ? (di[c] - dotv * qi[c]) / cq : di[c] / cq;
                dq[i * D + c] += T(scale * factor * g);
            }
        }
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = part;
}

inline void launch_loss_final(const Cuda& ctx, int count, const double* dev_div, double host_div, double host_mul,
                              double* out) {
    loss_final_kernel<><<<1, 32, 0, ctx.stream()>>>(count, ctx.op_partials(), dev_div, host_div, host_mul, out);
    LCMAE_CUDA_CHECK_LAUNCH("loss_final_kernel");
}

}  // namespace lcmae::backend::cuda_detail

namespace lcmae::ops {

/// MAE's norm-pix MSE: pred, target (B, L, P); mask (B, L), 1 = removed. d_pred written (may be null).
template <class T>
inline void norm_pix_mse(const backend::Cuda& ctx, long B, long L, long P, const T* pred, const T* target, const T* mask,
                         bool norm_pix, double scale, T* d_pred, double* loss) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 1 && L >= 1 && P >= 1, "norm_pix_mse needs B, L, P >= 1, got " << B << ", " << L << ", " << P);
    const long long rows = (long long)B * L;
    double* ms = ctx.op_extra();
    mask_sum_kernel<T><<<1, kLossThreads, 0, ctx.stream()>>>(rows, mask, 0, 0.0, 0.0, ms, ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("mask_sum_kernel (norm_pix_mse)");
    const int blocks = loss_blocks(rows);
    norm_pix_mse_kernel<T><<<blocks, kLossThreads, 0, ctx.stream()>>>(rows, P, pred, target, mask, norm_pix, scale, ms,
                                                                       d_pred, ctx.op_partials());
    LCMAE_CUDA_CHECK_LAUNCH("norm_pix_mse_kernel");
    launch_loss_final(ctx, blocks, ms, 1.0, 1.0, loss);
}

/// LC-SimMIM's L1: sum_{masked} sum_p |pred - target| / (n_masked * pixels_per_token + 1e-5) / channels.
template <class T>
inline void simmim_l1(const backend::Cuda& ctx, long B, long L, long P, long pixels_per_token, long channels,
                      const T* pred, const T* target, const T* mask, double scale, T* d_pred, double* loss) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(B >= 1 && L >= 1 && P >= 1, "simmim_l1 needs B, L, P >= 1, got " << B << ", " << L << ", " << P);
    const long long rows = (long long)B * L;
    double* denom = ctx.op_extra();
    mask_sum_kernel<T><<<1, kLossThreads, 0, ctx.stream()>>>(rows, mask, 1, double(pixels_per_token), double(channels),
                                                             denom, ctx.error_record());
    LCMAE_CUDA_CHECK_LAUNCH("mask_sum_kernel (simmim_l1)");
    const int blocks = loss_blocks(rows);
    simmim_l1_kernel<T><<<blocks, kLossThreads, 0, ctx.stream()>>>(rows, P, pred, target, mask, scale, denom, d_pred,
                                                                    ctx.op_partials());
    LCMAE_CUDA_CHECK_LAUNCH("simmim_l1_kernel");
    launch_loss_final(ctx, blocks, denom, 1.0, 1.0, loss);
}

/// Cosine (normalised L2): mean_b (2 - 2 <q/|q|, t/|t|>); dq ACCUMULATES (may be null).
template <class T>
inline void guidance_cosine(const backend::Cuda& ctx, long R, long D, const T* q, const T* t, double scale, T* dq,
                            double* loss) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(R >= 1 && D >= 1, "guidance_cosine needs R, D >= 1, got " << R << ", " << D);
    const int blocks = loss_blocks(R);
    guidance_cosine_kernel<T><<<blocks, kLossThreads, 0, ctx.stream()>>>(R, D, q, t, scale, dq, ctx.op_partials());
    LCMAE_CUDA_CHECK_LAUNCH("guidance_cosine_kernel");
    launch_loss_final(ctx, blocks, nullptr, double(R), 1.0, loss);
}

/// InfoNCE, times 2T; dq ACCUMULATES (may be null). scratch: infonce_scratch_size(R, D) device doubles.
template <class T>
inline void guidance_infonce(const backend::Cuda& ctx, long R, long D, double temperature, const T* q, const T* t,
                             double scale, T* dq, double* scratch, double* loss) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(temperature > 0, "InfoNCE temperature must be positive, got " << temperature);
    LCMAE_CHECK(R >= 1 && D >= 1, "guidance_infonce needs R, D >= 1, got " << R << ", " << D);
    double* qn = scratch;
    double* tn = qn + (long long)R * D;
    double* dqn = tn + (long long)R * D;
    double* nq = dqn + (long long)R * D;
    const int blocks = loss_blocks(R);
    infonce_normalize_kernel<T><<<blocks, kLossThreads, 0, ctx.stream()>>>(R, D, q, t, qn, tn, dqn, nq);
    LCMAE_CUDA_CHECK_LAUNCH("infonce_normalize_kernel");
    const double factor = 2.0 * temperature / double(R);
    infonce_rows_kernel<T><<<blocks, kLossThreads, 0, ctx.stream()>>>(R, D, temperature, qn, tn, dqn, nq, scale, factor,
                                                                       dq, ctx.op_partials());
    LCMAE_CUDA_CHECK_LAUNCH("infonce_rows_kernel");
    launch_loss_final(ctx, blocks, nullptr, 1.0, factor, loss);
}

/// Smooth L1 (beta), mean over R*D; dq ACCUMULATES (may be null).
template <class T>
inline void guidance_smooth_l1(const backend::Cuda& ctx, long R, long D, double beta, const T* q, const T* t,
                               double scale, T* dq, double* loss) {
    using namespace backend::cuda_detail;
    LCMAE_CHECK(beta > 0, "Smooth L1 beta must be positive, got " << beta);
    LCMAE_CHECK(R >= 1 && D >= 1, "guidance_smooth_l1 needs R, D >= 1, got " << R << ", " << D);
    const long long n = (long long)R * D;
    const int blocks = static_cast<int>(std::min<long long>(blocks_for(n, kLossThreads), kOpMaxBlocks));
    guidance_smooth_l1_kernel<T><<<blocks, kLossThreads, 0, ctx.stream()>>>(n, beta, q, t, scale, dq, ctx.op_partials());
    LCMAE_CUDA_CHECK_LAUNCH("guidance_smooth_l1_kernel");
    launch_loss_final(ctx, blocks, nullptr, double(n), 1.0, loss);
}

}  // namespace lcmae::ops
