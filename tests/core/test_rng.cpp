// Tests of the counter-based RNG: pure function of (seed, stream, index), sane distributions.
#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <vector>

#include "lcmae/core/rng.hpp"

using lcmae::Rng;

TEST_CASE("Rng: a word depends only on (seed, stream, index)") {
    Rng a(42, 7), b(42, 7);
    std::vector<std::uint32_t> seq;
    for (int i = 0; i < 100; ++i) seq.push_back(a.next_u32());
    // random access agrees with sequential draws, in any order
    for (int i = 99; i >= 0; --i) CHECK(b.word_at(static_cast<std::uint64_t>(i)) == seq[static_cast<std::size_t>(i)]);
    // a copy positioned at 50 continues the same sequence
    Rng c(42, 7, 50);
    CHECK(c.next_u32() == seq[50]);
    // other seeds / streams differ
    CHECK(Rng(43, 7).next_u32() != seq[0]);
    CHECK(Rng(42, 8).next_u32() != seq[0]);
}

TEST_CASE("Rng: Philox-4x32-10 known-answer vector") {
    // Random123's published known-answer test for philox4x32_10 with counter and key all ones.
    const auto r = lcmae::philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                     {0xffffffffu, 0xffffffffu});
    CHECK(r[0] == 0x408f276du);
    CHECK(r[1] == 0x41c83b0eu);
    CHECK(r[2] == 0xa20bc7c6u);
    CHECK(r[3] == 0x6d5451fdu);
    const auto z = lcmae::philox4x32({0, 0, 0, 0}, {0, 0});
    CHECK(z[0] == 0x6627e8d5u);
    CHECK(z[1] == 0xe169c58du);
    CHECK(z[2] == 0xbc57ac4cu);
    CHECK(z[3] == 0x9b00dbd8u);
}

TEST_CASE("Rng: uniform and normal moments within sampling error") {
    Rng r(1, 2);
    const int n = 200000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
        const double u = r.uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        s += u;
        s2 += u * u;
    }
    CHECK(std::abs(s / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
    CHECK(std::abs(s2 / n - s * s / n / n - 1.0 / 12) < 0.002);
    s = s2 = 0;
    for (int i = 0; i < n; ++i) {
        const double x = r.normal();
        s += x;
        s2 += x * x;
    }
    CHECK(std::abs(s / n) < 5 / std::sqrt(double(n)));
    CHECK(std::abs(s2 / n - 1.0) < 0.02);
}

TEST_CASE("Rng: below is unbiased and in range") {
    Rng r(3, 4);
    std::vector<int> counts(7, 0);
    for (int i = 0; i < 70000; ++i) ++counts[r.below(7)];
    for (int c : counts) CHECK(std::abs(c - 10000) < 500);
    CHECK_THROWS_AS(r.below(0), lcmae::Error);
}

TEST_CASE("stream_id mixes its arguments") {
    std::set<std::uint64_t> ids;
    for (std::uint64_t e = 0; e < 10; ++e)
        for (std::uint64_t i = 0; i < 100; ++i) ids.insert(lcmae::stream_id(e, i));
    CHECK(ids.size() == 1000);
}
