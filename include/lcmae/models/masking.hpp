// lcmae/models/masking.hpp - MAE's per-sample random masking (SPEC 2) and SimMIM's block masking
// (SPEC 3), both drawn from the counter-based RNG so a step's masks depend only on (seed, step).
// Host data only: masks are drawn on the host and uploaded once per step by the model (LcmaeModel).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "lcmae/core/error.hpp"
#include "lcmae/core/rng.hpp"

namespace lcmae::models {

/// len_keep = int(L (1 - r)) (SPEC 2).
inline long len_keep(long L, double ratio) {
    LCMAE_CHECK(ratio >= 0.0 && ratio < 1.0, "mask ratio must lie in [0, 1), got " << ratio);
    const long k = static_cast<long>(double(L) * (1.0 - ratio));
    LCMAE_CHECK(k >= 1, "mask ratio " << ratio << " keeps no token of " << L);
    return k;
}

/// ids_shuffle (B, L): per sample the argsort of uniform noise (small = keep). Ties are broken by
/// index (stable), so the result is a permutation for any noise.
/// Writes into `ids` (B * L values) using `noise` (L values) as scratch; allocates nothing.
inline void random_shuffle_into(long B, long L, Rng& rng, std::int64_t* ids, double* noise_buf) {
    std::span<double> noise(noise_buf, static_cast<std::size_t>(L));
    for (long b = 0; b < B; ++b) {
        for (auto& v : noise) v = rng.uniform_double();
        auto* row = ids + b * L;
        std::iota(row, row + L, std::int64_t{0});
        std::stable_sort(row, row + L, [&](std::int64_t a, std::int64_t c) { return noise[a] < noise[c]; });
    }
}
inline std::vector<std::int64_t> random_shuffle(long B, long L, Rng& rng) {
    std::vector<std::int64_t> ids(static_cast<std::size_t>(B * L));
    std::vector<double> noise(static_cast<std::size_t>(L));
    random_shuffle_into(B, L, rng, ids.data(), noise.data());
    return ids;
}

/// Checks that each row of ids_shuffle (B, L) is a permutation of 0..L-1.
inline void check_shuffle(const std::int64_t* ids, long B, long L) {
    std::vector<char> seen(static_cast<std::size_t>(L));
    for (long b = 0; b < B; ++b) {
        std::fill(seen.begin(), seen.end(), 0);  // host data (a validation bitmap)
        for (long n = 0; n < L; ++n) {
            const std::int64_t v = ids[b * L + n];
            LCMAE_CHECK(v >= 0 && v < L && !seen[v], "ids_shuffle row " << b << " is not a permutation of 0.." << L - 1
                                                                        << " (value " << v << " at " << n << ")");
            seen[v] = 1;
        }
    }
}

/// Keep list (B, K) = ids_shuffle[:, offset : offset + K]; mask (B, L) = 1 where not kept.
template <class M>
void keep_set(const std::int64_t* ids_shuffle, long B, long L, long offset, long K, std::int64_t* keep, M* mask) {
    LCMAE_CHECK(offset + K <= L, "keep set [" << offset << ", " << offset + K << ") exceeds " << L << " tokens");
    for (long b = 0; b < B; ++b) {
        if (mask) std::fill(mask + b * L, mask + (b + 1) * L, M(1));  // host staging, uploaded by the caller
        for (long k = 0; k < K; ++k) {
            const std::int64_t n = ids_shuffle[b * L + offset + k];
            keep[b * K + k] = n;
            if (mask) mask[b * L + n] = M(0);
        }
    }
}

/// SimMIM block mask (B, L): the grid of (grid / block) x (grid / block) blocks, ceil(blocks * ratio)
/// of them masked per sample, each block covering block x block patches. 1 = masked. Writes into
/// `mask` (B * grid^2 values) using `order` ((grid / block)^2 values) as scratch; allocates nothing.
template <class M>
void block_mask_into(long B, long grid, long block, double ratio, Rng& rng, M* mask, long* order) {
    LCMAE_CHECK(block >= 1 && grid % block == 0, "mask block " << block << " does not tile a " << grid << "-patch grid");
    LCMAE_CHECK(ratio > 0 && ratio < 1, "SimMIM mask ratio must lie in (0, 1), got " << ratio);
    const long gb = grid / block, nb = gb * gb;
    const long count = static_cast<long>(std::ceil(double(nb) * ratio));
    std::fill(mask, mask + B * grid * grid, M(0));  // host staging, uploaded by the caller
    for (long b = 0; b < B; ++b) {
        std::iota(order, order + nb, 0L);
        for (long i = nb - 1; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<std::uint64_t>(i + 1))]);
        for (long j = 0; j < count; ++j) {
            const long br = order[j] / gb, bc = order[j] % gb;
            for (long y = 0; y < block; ++y)
                for (long x = 0; x < block; ++x) mask[b * grid * grid + (br * block + y) * grid + bc * block + x] = M(1);
        }
    }
}
inline std::vector<float> block_mask(long B, long grid, long block, double ratio, Rng& rng) {
    std::vector<float> mask(static_cast<std::size_t>(B * grid * grid));
    std::vector<long> order(static_cast<std::size_t>(block >= 1 ? (grid / block) * (grid / block) : 0) + 1);
    block_mask_into(B, grid, block, ratio, rng, mask.data(), order.data());
    return mask;
}

}  // namespace lcmae::models
