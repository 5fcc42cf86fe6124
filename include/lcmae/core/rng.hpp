// lcmae/core/rng.hpp - a counter-based random number generator (Philox-4x32-10).
//
// Why counter-based: the numbers drawn for (seed, stream, index) are a pure function of those three
// values, so sample i of epoch e gets the same crop on any thread, any rank, in any order, and a
// resumed run continues exactly where it stopped (its position is just an integer).
//
// Philox-4x32-10 (Salmon et al., SC'11) maps a 128-bit counter and a 64-bit key to 128 random bits.
// We use counter = (index_lo, index_hi, stream_lo, stream_hi) and key = seed, so each (seed, stream)
// pair is an independent sequence indexed by a 64-bit position.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>

#include "lcmae/core/error.hpp"

namespace lcmae {

/// One Philox-4x32-10 evaluation: 4 random 32-bit words for (counter, key).
constexpr std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> ctr,
                                                  std::array<std::uint32_t, 2> key) noexcept {
    constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
    constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
        const std::uint64_t p0 = std::uint64_t{kMul0} * ctr[0];
        const std::uint64_t p1 = std::uint64_t{kMul1} * ctr[2];
        ctr = {static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<std::uint32_t>(p1),
               static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<std::uint32_t>(p0)};
        key[0] += kWeyl0;
        key[1] += kWeyl1;
    }
    return ctr;
}

/// A position in one random sequence: (seed, stream) choose the sequence, `position` counts 32-bit
/// words drawn so far. Cheap to construct, copy and store (a training-state file saves it as three
/// integers). Not thread-safe; give each thread/sample its own stream instead.
class Rng {
public:
    Rng() = default;
    Rng(std::uint64_t seed, std::uint64_t stream, std::uint64_t position = 0) noexcept
        : seed_(seed), stream_(stream), position_(position) {}

    std::uint64_t seed() const noexcept { return seed_; }
    std::uint64_t stream() const noexcept { return stream_; }
    std::uint64_t position() const noexcept { return position_; }

    /// The 32-bit word at `index` of this sequence, without moving the position.
    std::uint32_t word_at(std::uint64_t index) const noexcept {
        const auto block = philox4x32(
            {static_cast<std::uint32_t>(index >> 2), static_cast<std::uint32_t>(index >> 34),
             static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32)},
            {static_cast<std::uint32_t>(seed_), static_cast<std::uint32_t>(seed_ >> 32)});
        return block[index & 3u];
    }

    std::uint32_t next_u32() noexcept { return word_at(position_++); }
    std::uint64_t next_u64() noexcept {
        const std::uint64_t hi = next_u32();
        return (hi << 32) | next_u32();
    }
    /// Uniform in [0, 1) with 24 random bits (every value exactly representable in float).
    float uniform() noexcept { return static_cast<float>(next_u32() >> 8) * 0x1.0p-24f; }
    /// Uniform in [0, 1) with 53 random bits.
    double uniform_double() noexcept { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
    /// Uniform in [lo, hi).
    double uniform(double lo, double hi) noexcept { return lo + (hi - lo) * uniform_double(); }
    /// Standard normal by Box-Muller (two uniforms per draw; no cached second value, so the
    /// position alone describes the state).
    double normal() noexcept {
        double u1 = uniform_double();
        const double u2 = uniform_double();
        if (u1 < 1e-300) u1 = 1e-300;
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }
    /// Uniform integer in [0, n) without modulo bias (Lemire's method with rejection).
    std::uint64_t below(std::uint64_t n) {
        LCMAE_CHECK(n > 0, "Rng::below needs a positive bound, got " << n);
        if (n <= std::numeric_limits<std::uint32_t>::max()) {
            const std::uint32_t bound = static_cast<std::uint32_t>(n);
            const std::uint32_t threshold = static_cast<std::uint32_t>(-bound) % bound;
            for (;;) {
                const std::uint64_t m = std::uint64_t{next_u32()} * bound;
                if (static_cast<std::uint32_t>(m) >= threshold) return m >> 32;
            }
        }
        const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                                    std::numeric_limits<std::uint64_t>::max() % n;
        for (;;) {
            const std::uint64_t x = next_u64();
            if (x < limit) return x % n;
        }
    }
    /// True with probability p.
    bool bernoulli(double p) noexcept { return uniform_double() < p; }

private:
    std::uint64_t seed_ = 0;
    std::uint64_t stream_ = 0;
    std::uint64_t position_ = 0;
};

/// Mixes several integers into one stream id (splitmix64 finaliser), e.g. stream_id(epoch, sample).
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
constexpr std::uint64_t stream_id(std::uint64_t a) noexcept { return mix64(a); }
template <class... Rest>
constexpr std::uint64_t stream_id(std::uint64_t a, Rest... rest) noexcept {
    return mix64(a ^ (stream_id(static_cast<std::uint64_t>(rest)...) * 0xD6E8FEB86659FD93ull));
}

}  // namespace lcmae
