// VitEncoder: whole-encoder gradient checks (visible subset, all tokens, SimMIM mask tokens),
// SPEC 1's position embedding and initialisation, timm names for ViT-B/16, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include "lcmae/models/vit_encoder.hpp"
#include "support/gradcheck.hpp"

using namespace lcmae;
using namespace lcmae::test;

namespace {
backend::Cpu ctx(2);
backend::Cpu ctx1(1);  // gradient checks: thousands of passes of ops far too small to split
const vit::VitDims kTiny{8, 2, 2, 2, 8, 2, 4};  // D 8, 2 blocks, 2 heads, patch 2, 8 px, 2 channels: 16 tokens
}

TEST_CASE("gradcheck: whole encoder on visible tokens, on all tokens, and with mask tokens") {
    const long B = 2, L = kTiny.tokens();
    auto images = random_vector(B * kTiny.channels * kTiny.image * kTiny.image, 31);
    SUBCASE("visible subset in shuffled order") {
        ParamArena<double> P;
        models::VitEncoder<double> enc(P, kTiny, {.max_batch = 3, .max_keep = 6});
        P.allocate();
        randomize(P, 32);
        std::vector<std::int64_t> keep = {5, 0, 11, 3, 15, 7, 2, 9};  // K = 4 per sample
        const long K = 4;
        auto r = random_vector(B * (1 + K) * kTiny.dim, 33);
        auto loss = [&] { return probe(enc.forward(ctx1, P, images.data(), B, keep.data(), K), r); };
        check_param_grads(P, loss, [&] { enc.backward(ctx1, P, r.data()); });
    }
    SUBCASE("all tokens") {
        ParamArena<double> P;
        models::VitEncoder<double> enc(P, kTiny, {.max_batch = 2});
        P.allocate();
        randomize(P, 34);
        auto r = random_vector(B * (1 + L) * kTiny.dim, 35);
        auto loss = [&] { return probe(enc.forward(ctx1, P, images.data(), B, nullptr, 0), r); };
        check_param_grads(P, loss, [&] { enc.backward(ctx1, P, r.data()); });
    }
    SUBCASE("SimMIM: mask tokens mixed in") {
        ParamArena<double> P;
        models::VitEncoder<double> enc(P, kTiny, {.max_batch = 2, .mask_token = true});
        P.allocate();
        randomize(P, 36);
        std::vector<double> w(B * L);
        for (long i = 0; i < B * L; ++i) w[i] = (i * 7 % 5) < 3 ? 1.0 : 0.0;
        auto r = random_vector(B * (1 + L) * kTiny.dim, 37);
        auto loss = [&] { return probe(enc.forward_masked(ctx1, P, images.data(), B, w.data()), r); };
        check_param_grads(P, loss, [&] { enc.backward(ctx1, P, r.data()); });
    }
}

TEST_CASE("encoder on all tokens equals the encoder on the identity keep list") {
    ParamArena<float> P;
    models::VitEncoder<float> enc(P, kTiny, {.max_batch = 2});
    P.allocate();
    enc.init(P, 5);
    const long B = 2, L = kTiny.tokens(), N = (1 + L) * kTiny.dim;
    std::vector<float> images(B * 2 * 64);
    for (std::size_t i = 0; i < images.size(); ++i) images[i] = std::sin(float(i));
    const float* full = enc.forward(ctx, P, images.data(), B, nullptr, 0);
    std::vector<float> all(full, full + B * N);
    std::vector<std::int64_t> ids(B * L);
    for (long i = 0; i < B * L; ++i) ids[i] = i % L;
    const float* sub = enc.forward(ctx, P, images.data(), B, ids.data(), L);
    for (long i = 0; i < B * N; ++i) REQUIRE(sub[i] == all[i]);
}

TEST_CASE("position embedding equals SPEC 1's formula; CLS row is zero") {
    const long W = 16, G = 4;
    auto pe = nn::sincos_pos_embed_2d<double>(W, G);
    REQUIRE(pe.size() == std::size_t((1 + G * G) * W));
    for (long c = 0; c < W; ++c) CHECK(pe[c] == 0.0);
    for (long i : {0L, 1L, 3L})
        for (long j : {0L, 2L, 3L}) {
            const double* row = pe.data() + (1 + i * G + j) * W;
            for (long k = 0; k < W / 4; ++k) {
                const double w = 1.0 / std::pow(10000.0, double(k) / (W / 4));
                CHECK(row[k] == double(float(std::sin(j * w))));
                CHECK(row[W / 4 + k] == double(float(std::cos(j * w))));
                CHECK(row[W / 2 + k] == double(float(std::sin(i * w))));
                CHECK(row[3 * W / 4 + k] == double(float(std::cos(i * w))));
            }
        }
    CHECK_THROWS_AS(nn::sincos_pos_embed_2d<float>(6, 2), lcmae::Error);
}

TEST_CASE("initialisation statistics: xavier bound and variance, N(0, 0.02), LN ones, bias rules") {
    ParamArena<float> P;
    models::VitEncoder<float> enc(P, vit::Tiny32::dims(), {.max_batch = 1, .max_keep = 1});
    P.allocate();
    enc.init(P, 123);
    auto stats = [&](const std::string& name) {
        const auto& e = P.entry(name);
        double s = 0, s2 = 0, mx = 0;
        for (std::size_t i = 0; i < e.slot.count; ++i) {
            const double v = P.value(e.slot)[i];
            s += v; s2 += v * v; mx = std::max(mx, std::abs(v));
        }
        const double n = double(e.slot.count);
        return std::tuple{s / n, std::sqrt(s2 / n - s * s / n / n), mx, n};
    };
    {  // qkv: (576, 192) xavier: bound sqrt(6/768), std bound/sqrt(3)
        auto [m, sd, mx, n] = stats("blocks.0.attn.qkv.weight");
        const double bound = std::sqrt(6.0 / (192 + 576));
        CHECK(mx <= bound);
        CHECK(mx > 0.99 * bound);
        CHECK(std::abs(m) < 5 * bound / std::sqrt(3 * n));
        CHECK(std::abs(sd - bound / std::sqrt(3.0)) < 0.01 * bound);
    }
    {  // patch embed on its (192, 48) view
        auto [m, sd, mx, n] = stats("patch_embed.proj.weight");
        const double bound = std::sqrt(6.0 / (192 + 48));
        CHECK(mx <= bound);
        CHECK(std::abs(sd - bound / std::sqrt(3.0)) < 0.03 * bound);
        auto [bm, bsd, bmx, bn] = stats("patch_embed.proj.bias");
        CHECK(bmx <= 1.0 / std::sqrt(48.0));
        CHECK(bmx > 0.5 / std::sqrt(48.0));
    }
    {
        auto [m, sd, mx, n] = stats("cls_token");  // 192 values: sampling error of the std ~5%
        CHECK(std::abs(sd - 0.02) < 0.006);
    }
    auto [lm, lsd, lmx, ln] = stats("blocks.5.norm2.weight");
    CHECK(lm == 1.0);
    CHECK(lsd == 0.0);
    auto [qm, qsd, qmx, qn] = stats("blocks.5.attn.qkv.bias");
    CHECK(qmx == 0.0);
    // decay flags (SPEC 4)
    CHECK(P.entry("blocks.0.attn.qkv.weight").weight_decay);
    CHECK(P.entry("cls_token").weight_decay);
    CHECK_FALSE(P.entry("blocks.0.attn.qkv.bias").weight_decay);
    CHECK_FALSE(P.entry("norm.weight").weight_decay);
    // the same seed gives the same weights; another seed does not
    ParamArena<float> Q;
    models::VitEncoder<float> enc2(Q, vit::Tiny32::dims(), {.max_batch = 1, .max_keep = 1});
    Q.allocate();
    enc2.init(Q, 123);
    CHECK(std::equal(P.values().begin(), P.values().end(), Q.values().begin()));
}

TEST_CASE("ViT-B/16 tensor names and shapes equal timm's vit_base_patch16_224 (no classifier)") {
    ParamArena<float> P;  // planned only: no allocation needed to compare the table
    models::VitEncoder<float> enc(P, vit::Base16::dims(), {.max_batch = 1, .max_keep = 1});
    std::ifstream f(std::string(LCMAE_TEST_DATA_DIR) + "/reference/fixtures/vit_base_patch16_224_names.txt");
    REQUIRE_MESSAGE(f.good(), "missing tests/reference/fixtures/vit_base_patch16_224_names.txt");
    std::string line;
    long total = 0, checked = 0;
    std::set<std::string> seen;
    while (std::getline(f, line)) {
        std::istringstream ls(line);
        std::string name, shape;
        std::getline(ls, name, '\t');
        std::getline(ls, shape);
        if (name == "total") { total = std::stol(shape); continue; }
        std::vector<long> dims;
        std::istringstream ss(shape);
        for (std::string tok; std::getline(ss, tok, ',');) dims.push_back(std::stol(tok));
        const Shape s = Shape::from_range(dims.begin(), dims.end());
        if (name == "pos_embed") {  // fixed, not a parameter: only its shape must agree
            CHECK(s == Shape{1, 197, 768});
            CHECK(long(enc.pos_embed().size()) == 197 * 768);
            continue;
        }
        INFO("timm tensor " << name);
        REQUIRE(P.contains(name));
        CHECK(P.entry(name).shape == s);
        seen.insert(name);
        ++checked;
    }
    CHECK(seen.size() == P.entries().size());  // nothing extra on our side
    CHECK(total == 85798656);
    CHECK(long(P.parameter_count()) + 197 * 768 == total);
    CHECK(checked == long(P.entries().size()));
}

TEST_CASE("bad input ends in lcmae::Error, never memory corruption") {
    ParamArena<float> P;
    models::VitEncoder<float> enc(P, kTiny, {.max_batch = 2, .max_keep = 4});
    P.allocate();
    enc.init(P, 1);
    std::vector<float> images(3 * 2 * 64, 0.5f);
    std::vector<std::int64_t> keep = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    CHECK_THROWS_AS(enc.forward(ctx, P, images.data(), 3, keep.data(), 4), lcmae::Error);  // batch above plan
    CHECK_THROWS_AS(enc.forward(ctx, P, images.data(), 2, keep.data(), 5), lcmae::Error);  // more kept tokens than planned
    CHECK_THROWS_AS(enc.forward(ctx, P, images.data(), 2, nullptr, 0), lcmae::Error);      // all 16 tokens > plan
    keep[3] = 16;
    CHECK_THROWS_AS(enc.forward(ctx, P, images.data(), 2, keep.data(), 4), lcmae::Error);  // id out of range
    CHECK_THROWS_AS(enc.forward_masked(ctx, P, images.data(), 2, images.data()), lcmae::Error);
    ParamArena<float> Q;
    models::VitEncoder<float> fresh(Q, kTiny, {.max_batch = 2, .max_keep = 4});
    Q.allocate();
    std::vector<float> d(100);
    CHECK_THROWS_AS(fresh.backward(ctx, Q, d.data()), lcmae::Error);  // backward before forward
    try {
        enc.forward(ctx, P, images.data(), 3, keep.data(), 4);
    } catch (const lcmae::Error& e) {
        CHECK(std::string(e.what()).find("batch 3") != std::string::npos);
    }
}

TEST_CASE("forward_only encoder: same output as the training encoder, far less memory, no backward") {
    const vit::VitDims d{16, 4, 2, 2, 8, 2, 4};
    ParamArena<float> P, Q;
    models::VitEncoder<float> train_enc(P, d, {.max_batch = 3});
    models::VitEncoder<float> fwd_enc(Q, d, {.max_batch = 3, .forward_only = true});
    P.allocate();
    Q.allocate();
    train_enc.init(P, 9);
    fwd_enc.init(Q, 9);
    REQUIRE(std::equal(P.values().begin(), P.values().end(), Q.values().begin()));
    std::vector<float> images(3 * 2 * 64);
    for (std::size_t i = 0; i < images.size(); ++i) images[i] = std::cos(0.37f * float(i));
    const long n = 3 * (1 + d.tokens()) * d.dim;
    const float* a = train_enc.forward(ctx, P, images.data(), 3, nullptr, 0);
    std::vector<float> ref(a, a + n);
    const float* b = fwd_enc.forward(ctx, Q, images.data(), 3, nullptr, 0);
    for (long i = 0; i < n; ++i) REQUIRE(b[i] == ref[i]);
    CHECK(fwd_enc.activations().bytes() * 2 < train_enc.activations().bytes());
    std::vector<float> g(n, 1.f);
    CHECK_THROWS_AS(fwd_enc.backward(ctx, Q, g.data()), lcmae::Error);
}
