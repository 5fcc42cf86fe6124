// Tests of the lr schedule, lr scaling rules, EMA momentum schedule, layer ids for ViT-B, and the
// EMA update over parameters and BatchNorm buffers.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/optim/ema.hpp"
#include "lcmae/optim/layer_decay.hpp"
#include "lcmae/optim/schedule.hpp"

using namespace lcmae;
using namespace lcmae::optim;

TEST_CASE("lr scaling rules") {
    CHECK(scaled_lr(1.5e-4, 4096) == doctest::Approx(2.4e-3));
    CHECK(scaled_lr(1.5e-4, 256) == doctest::Approx(1.5e-4));
    CHECK(scaled_lr(1.5e-4, 4096, LrScaling::Sqrt) == doctest::Approx(1.5e-4 * 64 / 4));
    CHECK(scaled_lr(0.1, 16384) == doctest::Approx(6.4));  // linear probe blr 0.1
    CHECK_THROWS_AS(scaled_lr(1e-3, 0), Error);
}

TEST_CASE("warm-up + cosine lr at chosen points") {
    WarmupCosine s{.lr_max = 2.0, .min_lr = 0.1, .warmup_epochs = 40, .epochs = 1600};
    CHECK(s(0.0) == 0.0);
    CHECK(s(20.0) == doctest::Approx(1.0));                 // half-way through warm-up
    CHECK(s(40.0) == doctest::Approx(2.0));                 // warm-up end = peak
    CHECK(s(39.999) == doctest::Approx(2.0 * 39.999 / 40));
    CHECK(s(820.0) == doctest::Approx(0.1 + 1.9 * 0.5));    // cosine midpoint
    CHECK(s(1600.0) == doctest::Approx(0.1));               // end
    CHECK(s(2000.0) == doctest::Approx(0.1));               // clamped past the end
    // per iteration: epoch 1, iteration 50 of 100 -> e = 1.5
    CHECK(fractional_epoch(1, 50, 100) == doctest::Approx(1.5));
    CHECK(s.at(1, 50, 100) == doctest::Approx(2.0 * 1.5 / 40));
    const double e = 100.25;
    CHECK(s(e) == doctest::Approx(0.1 + 1.9 * 0.5 * (1 + std::cos(std::numbers::pi * (e - 40) / 1560))));
    WarmupCosine bad{.lr_max = 1, .min_lr = 0, .warmup_epochs = 5, .epochs = 2};
    CHECK_THROWS_AS(bad(1.0), Error);
}

TEST_CASE("EMA momentum: cosine from base to 1 over optimiser steps") {
    CHECK(ema_momentum(0, 1000) == doctest::Approx(0.996));
    CHECK(ema_momentum(500, 1000) == doctest::Approx(0.998));
    CHECK(ema_momentum(1000, 1000) == doctest::Approx(1.0));
    CHECK(ema_momentum(250, 1000, 0.99) ==
          doctest::Approx(1 - 0.01 * (1 + std::cos(std::numbers::pi * 0.25)) / 2));
}

TEST_CASE("layer ids and lr scales for a ViT-B name list") {
    const int depth = 12;
    std::vector<std::string> names = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"};
    for (int k = 0; k < depth; ++k)
        for (const char* leaf : {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                                 "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                                 "mlp.fc2.weight", "mlp.fc2.bias"})
            names.push_back("blocks." + std::to_string(k) + "." + leaf);
    for (const char* n : {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias", "norm.weight"}) names.push_back(n);
    for (const auto& n : names) {
        const int id = vit_layer_id(n, depth);
        if (n == "cls_token" || n == "pos_embed" || n.starts_with("patch_embed")) CHECK(id == 0);
        else if (n.starts_with("blocks.")) CHECK(id == std::stoi(n.substr(7)) + 1);
        else CHECK(id == 13);
    }
    CHECK(vit_layer_id("blocks.11.mlp.fc2.bias", 12) == 12);
    CHECK(vit_layer_id("blocks.10.attn.qkv.weight", 12) == 11);
    CHECK_THROWS_AS(vit_layer_id("blocks.12.attn.qkv.weight", 12), Error);
    CHECK_THROWS_AS(vit_layer_id("blocks.x.attn", 12), Error);
    CHECK(layer_lr_scale(13, 12, 0.65) == doctest::Approx(1.0));
    CHECK(layer_lr_scale(0, 12, 0.65) == doctest::Approx(std::pow(0.65, 13)));
    CHECK(layer_lr_scale(5, 12, 0.75) == doctest::Approx(std::pow(0.75, 8)));
    CHECK(layer_lr_scale(-1, 12, 0.75) == doctest::Approx(1.0));
}

namespace {
template <class T>
void build(ParamArena<T>& a, bool with_decoder) {
    a.add("cls_token", Shape{1, 1, 16});
    a.add("blocks.0.attn.qkv.weight", Shape{48, 16});
    a.add("blocks.0.attn.qkv.bias", Shape{48});
    if (with_decoder) a.add("decoder_embed.weight", Shape{3, 16});
    a.add("head.0.weight", Shape{32, 16});
    a.add_buffer("head.1.running_mean", Shape{32});
    a.add_buffer("head.1.running_var", Shape{32});
    a.add("head.3.weight", Shape{16, 5});  // 80 values: no padding, but the run ends here anyway
    a.allocate();
}
}  // namespace

TEST_CASE_TEMPLATE("EMA update over parameters AND buffers, matched by name", T, float, double) {
    ParamArena<T> online, target;
    build(online, true);   // online has a decoder the target lacks
    build(target, false);
    for (std::size_t i = 0; i < online.planned_size(); ++i) online.values()[i] = T(0);
    for (const auto& e : online.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i) online.value(e.slot)[i] = T(1 + 0.01 * double(i));
    EmaUpdater<T> ema(target, online);
    // target: cls..bias contiguous in both arenas; the decoder gap splits the online layout once
    CHECK(ema.runs().size() == 2);
    CHECK(ema.runs()[1].count == 32 * 16 + 32 + 32 + 80);
    ema.copy_from_online();
    for (const auto& e : target.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i)
            CHECK(target.value(e.slot)[i] == online.value(online.entry(e.name).slot)[i]);
    // move the online model, then one EMA step
    for (const auto& e : online.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i) online.value(e.slot)[i] = T(3);
    const double d = 0.9;
    ema.update(d);
    for (const auto& e : target.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i) {
            const double before = 1 + 0.01 * double(i);
            CHECK(double(target.value(e.slot)[i]) == doctest::Approx(d * before + (1 - d) * 3).epsilon(1e-6));
        }
    // BN running stats were averaged too
    CHECK(double(target.value(target.entry("head.1.running_var").slot)[0]) == doctest::Approx(0.9 + 0.3));
    CHECK_THROWS_AS(ema.update(1.5), Error);
}

TEST_CASE("EMA construction fails clearly on a missing twin or a shape mismatch") {
    ParamArena<float> online, target, target2;
    online.add("a", Shape{2, 2});
    online.allocate();
    target.add("a", Shape{2, 2});
    target.add("b", Shape{2});
    target.allocate();
    try {
        EmaUpdater<float> e(target, online);
        FAIL("expected an error");
    } catch (const Error& err) {
        CHECK(std::string(err.what()).find("'b'") != std::string::npos);
    }
    target2.add("a", Shape{4});
    target2.allocate();
    try {
        EmaUpdater<float> e(target2, online);
        FAIL("expected an error");
    } catch (const Error& err) {
        const std::string w = err.what();
        CHECK(w.find("(4,)") != std::string::npos);
        CHECK(w.find("(2, 2)") != std::string::npos);
    }
}
