// lcmae/nn/pos_embed.hpp - the fixed 2-D sin-cos position embedding of SPEC 1 (not a parameter).
// Host data: computed once on the host; the encoder and decoder upload it with their first forward.
#pragma once

#include <cmath>
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

}  // namespace lcmae::nn
