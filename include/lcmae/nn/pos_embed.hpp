// lcmae/nn/pos_embed.hpp - the fixed 2-D sin-cos position embedding of SPEC 1 (not a parameter),
// and the resampling of a position table to another grid (timm's resample_abs_pos_embed).
// Host data: computed once on the host; the encoder and decoder upload it with their first forward.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lcmae/core/error.hpp"

namespace lcmae::nn {

/// (1 + grid^2, width) table, row 0 (the CLS slot) zeros. For token n = i*grid + j (row i, col j)
/// and w_k = 10000^(-k/(width/4)): [0,W/4) sin(j w_k), [W/4,W/2) cos(j w_k), [W/2,3W/4) sin(i w_k),
/// [3W/4,W) cos(i w_k). The column index comes first. Computed in double and rounded to float
/// (SPEC 1: "stored as float"), also when T is double, so float and double models share one table.
template <class T>
std::vector<T> sincos_pos_embed_2d(long width, long grid) {
    LCMAE_CHECK(width > 0 && width % 4 == 0,
                "the 2-D sin-cos position embedding needs a width divisible by 4, got " << width);
    LCMAE_CHECK(grid > 0, "the position embedding needs a positive grid, got " << grid);
    const long q = width / 4;
    std::vector<T> pe(static_cast<std::size_t>((1 + grid * grid) * width), T(0));
    for (long i = 0; i < grid; ++i)
        for (long j = 0; j < grid; ++j) {
            T* row = pe.data() + (1 + i * grid + j) * width;
            for (long k = 0; k < q; ++k) {
                const double omega = std::pow(10000.0, -double(k) / double(q));
                row[k] = T(float(std::sin(double(j) * omega)));
                row[q + k] = T(float(std::cos(double(j) * omega)));
                row[2 * q + k] = T(float(std::sin(double(i) * omega)));
                row[3 * q + k] = T(float(std::cos(double(i) * omega)));
            }
        }
    return pe;
}

namespace detail {
/// PyTorch's antialiased bicubic filter (Keys' cubic with a = -0.5, as PIL; the plain bicubic of
/// F.interpolate uses a = -0.75): ((a+2)x - (a+3))x^2 + 1 and ((ax - 5a)x + 8a)x - 4a in float,
/// with the fused multiply-adds PyTorch's FMA-enabled CPU build contracts them to (explicit here,
/// so the result does not depend on our compiler flags).
inline float aa_bicubic_filter(float x) {
    constexpr float a = -0.5f;
    x = std::abs(x);
    if (x < 1.0f) return std::fma(std::fma(a + 2, x, -(a + 3)) * x, x, 1.0f);
    if (x < 2.0f) return std::fma(std::fma(std::fma(a, x, -5 * a), x, 8 * a), x, -4 * a);
    return 0.0f;
}

/// The taps of one axis of F.interpolate(mode='bicubic', antialias=True, align_corners=False)
/// from n_in to n_out samples: output i reads inputs first[i] .. first[i] + count[i] - 1 with the
/// (normalised) weights w[i * taps + j]. As PyTorch computes them for float tensors: the filter is
/// widened by the scale when downsampling, weights in float.
struct AxisTaps {
    long taps = 0;
    std::vector<long> first, count;
    std::vector<float> w;
};
inline AxisTaps aa_bicubic_taps(long n_in, long n_out) {
    const float scale = static_cast<float>(n_in) / static_cast<float>(n_out);
    const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;  // interp_size 4 * 0.5
    const float invscale = scale >= 1.0f ? static_cast<float>(1.0 / static_cast<double>(scale)) : 1.0f;
    AxisTaps t;
    t.taps = static_cast<long>(std::ceil(support)) * 2 + 1;
    t.first.resize(static_cast<std::size_t>(n_out));
    t.count.resize(static_cast<std::size_t>(n_out));
    t.w.assign(static_cast<std::size_t>(n_out * t.taps), 0.0f);
    for (long i = 0; i < n_out; ++i) {
        const float center = static_cast<float>(scale * (static_cast<double>(i) + 0.5));
        const long xmin = std::max(static_cast<long>(static_cast<std::int64_t>(center - support + 0.5)), 0L);
        long xsize = std::min(static_cast<long>(static_cast<std::int64_t>(center + support + 0.5)), n_in) - xmin;
        xsize = std::clamp(xsize, 0L, t.taps);
        float* w = t.w.data() + i * t.taps;
        float total = 0.0f;
        for (long j = 0; j < xsize; ++j) {
            // (j + xmin - center) in float, then "+ 0.5" and "* invscale" in double, as PyTorch's
            // int64 / float / double expression evaluates
            w[j] = aa_bicubic_filter(static_cast<float>((static_cast<double>(static_cast<float>(j + xmin) - center) + 0.5) *
                                                        static_cast<double>(invscale)));
            total += w[j];
        }
        if (total != 0.0f)
            for (long j = 0; j < xsize; ++j) w[j] /= total;
        t.first[static_cast<std::size_t>(i)] = xmin;
        t.count[static_cast<std::size_t>(i)] = xsize;
    }
    return t;
}
}  // namespace detail

namespace detail {
/// One antialiased-bicubic pass over a (rows, n_in, width) float table along its middle axis,
/// giving (rows, n_out, width): as PyTorch's interpolate_aa_single_dim, the taps summed in order
/// with fused multiply-adds (what its FMA-enabled CPU kernels compute). One non-template function,
/// so every caller gets the same bits.
inline std::vector<float> aa_bicubic_pass(const std::vector<float>& in, long rows, long n_in, long n_out, long width) {
    if (n_in == n_out) return in;  // PyTorch skips an axis whose size is unchanged
    const AxisTaps t = aa_bicubic_taps(n_in, n_out);
    std::vector<float> out(static_cast<std::size_t>(rows * n_out * width));
    for (long r = 0; r < rows; ++r)
        for (long i = 0; i < n_out; ++i) {
            const long x0 = t.first[static_cast<std::size_t>(i)], n = t.count[static_cast<std::size_t>(i)];
            const float* w = t.w.data() + i * t.taps;
            const float* src = in.data() + (r * n_in + x0) * width;
            float* o = out.data() + (r * n_out + i) * width;
            for (long c = 0; c < width; ++c) {
                float acc = n > 0 ? src[c] * w[0] : 0.0f;
                for (long j = 1; j < n; ++j) acc = std::fma(src[j * width + c], w[j], acc);
                o[c] = acc;
            }
        }
    return out;
}
}  // namespace detail

/// timm's resample_abs_pos_embed with its defaults (bicubic, antialias=True, align_corners=False):
/// `pos` is (prefix + old_h * old_w, width) row-major (tokens row-major over the grid); the first
/// `prefix` rows (the CLS row) are kept as they are, the grid rows are resampled to new_h x new_w.
/// Computed as PyTorch does for float32 whatever T is (its separable antialiased kernel: along the
/// width first, then along the height). The same grid returns the table unchanged (as timm does).
template <class T>
std::vector<T> resample_abs_pos_embed(const std::vector<T>& pos, long width, long old_h, long old_w, long new_h,
                                      long new_w, long prefix = 1) {
    LCMAE_CHECK(width > 0 && old_h > 0 && old_w > 0 && new_h > 0 && new_w > 0 && prefix >= 0,
                "resample_abs_pos_embed: bad sizes (width " << width << ", grid " << old_h << "x" << old_w << " -> "
                                                            << new_h << "x" << new_w << ", prefix " << prefix << ")");
    LCMAE_CHECK(static_cast<long>(pos.size()) == (prefix + old_h * old_w) * width,
                "resample_abs_pos_embed: the table has " << pos.size() << " values, expected (" << prefix << " + "
                                                         << old_h << "*" << old_w << ") * " << width);
    if (old_h == new_h && old_w == new_w) return pos;
    const std::vector<float> grid(pos.begin() + prefix * width, pos.end());  // "interpolate needs float32"
    const std::vector<float> wide = detail::aa_bicubic_pass(grid, old_h, old_w, new_w, width);
    // the height pass: the rows of (old_h, new_w * width) are the samples
    const std::vector<float> res = detail::aa_bicubic_pass(wide, 1, old_h, new_h, new_w * width);
    std::vector<T> out(pos.begin(), pos.begin() + prefix * width);
    for (const float v : res) out.push_back(static_cast<T>(v));
    return out;
}

}  // namespace lcmae::nn
