// Tests of arena checkpoints (save_params / load_params), the encoder export and the
// training-state file.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/train_state.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/lars.hpp"

#include "io/test_util.hpp"

using namespace lcmae;
using namespace lcmae::io;
namespace fs = std::filesystem;
using lcmae::test::TempDir;
using lcmae::test::throws_with;

namespace {
// A miniature MAE/LC-MAE online model (names as timm/MAE) or its target twin.
template <class T>
void build(ParamArena<T>& a, bool online, std::int64_t width = 4) {
    a.add("cls_token", Shape{1, 1, width});
    a.add("patch_embed.proj.weight", Shape{width, 3 * 2 * 2});
    a.add("patch_embed.proj.bias", Shape{width});
    a.add("blocks.0.attn.qkv.weight", Shape{3 * width, width});
    a.add("blocks.0.attn.qkv.bias", Shape{3 * width});
    a.add("norm.weight", Shape{width});
    a.add("norm.bias", Shape{width});
    if (online) {
        a.add("mask_token", Shape{1, 1, 3});
        a.add("decoder_embed.weight", Shape{3, width});
        a.add("predictor.0.weight", Shape{5, width});
    }
    a.add("head.0.weight", Shape{5, width});
    a.add_buffer("head.1.running_mean", Shape{5});
    a.add_buffer("head.1.running_var", Shape{5});
    a.allocate();
}
template <class T>
void fill(ParamArena<T>& a, double base) {
    for (const auto& e : a.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i) a.value(e.slot)[i] = T(base + std::sin(0.7 * i + e.name.size()));
}
template <class A, class B>
void check_equal_arenas(const ParamArena<A>& a, const ParamArena<B>& b) {
    REQUIRE(a.entries().size() == b.entries().size());
    for (const auto& e : a.entries()) {
        const auto& f = b.entry(e.name);
        for (std::size_t i = 0; i < e.slot.count; ++i) CHECK(double(a.value(e.slot)[i]) == double(b.value(f.slot)[i]));
    }
}
}  // namespace

TEST_CASE_TEMPLATE("checkpoint: online + target round trip, buffers included", T, float, double) {
    TempDir dir;
    const fs::path p = dir.path / "ckpt.safetensors";
    ParamArena<T> online, target;
    build(online, true);
    build(target, false);
    fill(online, 1.0);
    fill(target, -2.0);
    save_params<T>(p, {{"", online}, {"target.", target}}, {{"epoch", "7"}});
    const SafetensorsFile f(p);
    CHECK(f.metadata().at("epoch") == "7");
    CHECK(f.contains("target.head.1.running_var"));
    CHECK(f.contains("blocks.0.attn.qkv.weight"));
    CHECK(f.info("cls_token").dtype == dtype_of<T>());

    ParamArena<T> online2, target2;
    build(online2, true);
    build(target2, false);
    // the online arena with prefix "" would see target.* as unexpected: say so explicitly
    CHECK(throws_with([&] { load_params(f, online2, ""); }, "ckpt.safetensors", "unexpected tensor 'target.cls_token'"));
    const LoadReport r = load_params(f, online2, "", Strictness::IgnoreUnexpected);
    CHECK(r.loaded.size() == online2.entries().size());
    CHECK(r.unexpected.size() == target.entries().size());
    load_params(f, target2, "target.");  // strict: everything under target. matches
    check_equal_arenas(online, online2);
    check_equal_arenas(target, target2);
}

TEST_CASE("checkpoint: F64 files load into float arenas and F32 files into double arenas") {
    TempDir dir;
    ParamArena<double> d;
    build(d, false);
    fill(d, 0.5);
    save_params<double>(dir.path / "d.safetensors", {{"", d}});
    ParamArena<float> f;
    build(f, false);
    load_params(dir.path / "d.safetensors", f);
    for (const auto& e : d.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i)
            CHECK(f.value(f.entry(e.name).slot)[i] == static_cast<float>(d.value(e.slot)[i]));
    // and back: float saved as F64, then into double
    save_params<float>(dir.path / "f64.safetensors", {{"", f}}, {}, Dtype::F64);
    CHECK(SafetensorsFile(dir.path / "f64.safetensors").info("norm.weight").dtype == Dtype::F64);
    ParamArena<double> d2;
    build(d2, false);
    load_params(dir.path / "f64.safetensors", d2);
    check_equal_arenas(f, d2);
}

TEST_CASE("checkpoint: load names every missing, unexpected, shape and dtype problem") {
    TempDir dir;
    ParamArena<float> online;
    build(online, true);
    save_params<float>(dir.path / "o.safetensors", {{"", online}});
    // a target model lacks decoder/predictor/mask_token: unexpected under strict mode
    ParamArena<float> target;
    build(target, false);
    CHECK(throws_with([&] { load_params(dir.path / "o.safetensors", target); }, "o.safetensors",
                      "unexpected tensor 'decoder_embed.weight'", "unexpected tensor 'predictor.0.weight'",
                      "unexpected tensor 'mask_token'"));
    // wider model: every shape is named, file vs model
    ParamArena<float> wide;
    build(wide, true, 8);
    CHECK(throws_with([&] { load_params(dir.path / "o.safetensors", wide); }, "o.safetensors",
                      "shape mismatch for 'blocks.0.attn.qkv.weight': file (12, 4) vs model (24, 8)",
                      "shape mismatch for 'norm.bias': file (4,) vs model (8,)"));
    // missing tensors
    ParamArena<float> more;
    more.add("cls_token", Shape{1, 1, 4});
    more.add("blocks.5.mlp.fc1.weight", Shape{2, 2});
    more.allocate();
    CHECK(throws_with([&] { load_params(dir.path / "o.safetensors", more, "", Strictness::IgnoreUnexpected); },
                      "missing tensor 'blocks.5.mlp.fc1.weight' (2, 2)"));
    const LoadReport partial = load_params(dir.path / "o.safetensors", more, "", Strictness::Partial);
    CHECK(partial.loaded == std::vector<std::string>{"cls_token"});
    CHECK(partial.missing == std::vector<std::string>{"blocks.5.mlp.fc1.weight"});
    // an integer tensor where a parameter is expected
    SafetensorsWriter w;
    std::vector<std::int64_t> ints(4, 1);
    w.add("cls_token", Shape{1, 1, 4}, ints.data());
    w.write(dir.path / "int.safetensors");
    ParamArena<float> just_cls;
    just_cls.add("cls_token", Shape{1, 1, 4});
    just_cls.allocate();
    CHECK(throws_with([&] { load_params(dir.path / "int.safetensors", just_cls); }, "int.safetensors",
                      "dtype of 'cls_token' is I64"));
    // nothing is modified by a failed load
    CHECK(just_cls.value(just_cls.entry("cls_token").slot)[0] == 0.0f);
    // PyTorch's num_batches_tracked is tolerated
    SafetensorsWriter w2;
    std::vector<float> four(4, 2.0f);
    std::int64_t nbt = 10;
    w2.add("cls_token", Shape{1, 1, 4}, four.data());
    w2.add("head.1.num_batches_tracked", Shape{}, &nbt);
    w2.write(dir.path / "nbt.safetensors");
    load_params(dir.path / "nbt.safetensors", just_cls);
    CHECK(just_cls.value(just_cls.entry("cls_token").slot)[3] == 2.0f);
}

TEST_CASE("encoder export: timm names only, conv-shaped patch embedding, fixed pos_embed added") {
    TempDir dir;
    ParamArena<float> online;
    build(online, true);
    fill(online, 0.0);
    std::vector<float> pos(1 * 5 * 4);
    for (std::size_t i = 0; i < pos.size(); ++i) pos[i] = float(i);
    EncoderExport<float> opt;
    opt.pos_embed = pos.data();
    opt.pos_embed_shape = Shape{1, 5, 4};
    opt.channels = 3;
    opt.patch = 2;
    export_encoder(dir.path / "enc.safetensors", online, opt);
    const SafetensorsFile f(dir.path / "enc.safetensors");
    std::vector<std::string> names;
    for (const auto& t : f.tensors()) names.push_back(t.name);
    CHECK(names == std::vector<std::string>{"cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                            "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "norm.weight",
                                            "norm.bias", "pos_embed"});
    CHECK(f.info("patch_embed.proj.weight").shape == Shape{4, 3, 2, 2});
    CHECK(f.read<float>("pos_embed") == pos);
    const auto w = f.read<float>("patch_embed.proj.weight");
    const auto& e = online.entry("patch_embed.proj.weight");
    for (std::size_t i = 0; i < e.slot.count; ++i) CHECK(w[i] == online.value(e.slot)[i]);
    // a bad pos_embed shape is refused
    opt.pos_embed_shape = Shape{5, 4};
    CHECK(throws_with([&] { export_encoder(dir.path / "bad.safetensors", online, opt); }, "pos_embed"));
    CHECK_FALSE(fs::exists(dir.path / "bad.safetensors"));
}

TEST_CASE_TEMPLATE("training state: optimiser moments, steps, RNGs and scalars round trip exactly", T, float, double) {
    TempDir dir;
    ParamArena<T> a;
    build(a, true);
    fill(a, 0.1);
    for (const auto& e : a.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i) a.grad(e.slot)[i] = T(std::cos(double(i + e.slot.offset)));
    optim::AdamW<T> adam(a);
    adam.step(1e-3);
    adam.step(2e-3);
    ParamArena<T> head;
    head.add("head.weight", Shape{3, 4});
    head.add("head.bias", Shape{3});
    head.allocate();
    for (std::size_t i = 0; i < head.planned_size(); ++i) head.grads()[i] = T(0.5);
    optim::Lars<T> lars(head);
    lars.step(0.1);

    TrainState s;
    s.step = 2;
    s.epoch = 1;
    s.iteration = 17;
    Rng r(0xFFFFFFFFFFFFFFFFull, 12345, 999);
    r.next_u64();
    s.rngs["data"] = r;
    s.rngs["mask"] = Rng(7, 8, 9);
    s.integers["accum_steps"] = -3;
    s.reals["best_loss"] = 0.1 + 0.2;
    save_train_state<T>(dir.path / "state.safetensors", s, {adam.state("adamw"), lars.state("lars")});

    // PyTorch can read it: it is a valid safetensors file with plain names
    const SafetensorsFile f(dir.path / "state.safetensors");
    CHECK(f.contains("adamw.exp_avg.blocks.0.attn.qkv.weight"));
    CHECK(f.contains("adamw.exp_avg_sq.cls_token"));
    CHECK_FALSE(f.contains("adamw.exp_avg.head.1.running_mean"));  // buffers have no moments
    CHECK(f.contains("lars.momentum_buffer.head.bias"));
    CHECK(f.info("rng.data").shape == Shape{3});

    ParamArena<T> a2;
    build(a2, true);
    optim::AdamW<T> adam2(a2);
    ParamArena<T> head2;
    head2.add("head.weight", Shape{3, 4});
    head2.add("head.bias", Shape{3});
    head2.allocate();
    optim::Lars<T> lars2(head2);
    TrainState s2;
    load_train_state<T>(dir.path / "state.safetensors", s2, {adam2.state("adamw"), lars2.state("lars")});
    CHECK(s2.step == 2);
    CHECK(s2.epoch == 1);
    CHECK(s2.iteration == 17);
    CHECK(s2.rngs.at("data").seed() == r.seed());
    CHECK(s2.rngs.at("data").stream() == 12345);
    CHECK(s2.rngs.at("data").position() == r.position());
    CHECK(s2.rngs.at("data").next_u32() == r.next_u32());
    CHECK(s2.rngs.at("mask").position() == 9);
    CHECK(s2.integers.at("accum_steps") == -3);
    CHECK(s2.reals.at("best_loss") == 0.1 + 0.2);
    CHECK(adam2.step_count() == 2);
    CHECK(lars2.step_count() == 1);
    for (std::size_t i = 0; i < a.planned_size(); ++i) {
        CHECK(adam2.exp_avg()[i] == adam.exp_avg()[i]);
        CHECK(adam2.exp_avg_sq()[i] == adam.exp_avg_sq()[i]);
    }
    for (std::size_t i = 0; i < head.planned_size(); ++i) CHECK(lars2.momentum_buffer()[i] == lars.momentum_buffer()[i]);

    // a model of a different shape is refused, naming the tensor, and nothing is changed
    ParamArena<T> wide;
    build(wide, true, 8);
    optim::AdamW<T> adam3(wide);
    TrainState s3;
    CHECK(throws_with([&] { load_train_state<T>(dir.path / "state.safetensors", s3, {adam3.state("adamw")}); },
                      "state.safetensors", "adamw.exp_avg.cls_token", "(1, 1, 8)"));
    CHECK(s3.step == 0);
    // a parameter file is not a training state
    save_params<T>(dir.path / "p.safetensors", {{"", a}});
    CHECK(throws_with([&] { load_train_state<T>(dir.path / "p.safetensors", s3); }, "p.safetensors",
                      "not an lcmae training-state file"));
}

TEST_CASE("resume: params + training state saved after k steps continue bit-identically") {
    TempDir dir;
    const auto grads_at = [](ParamArena<float>& a, int step) {
        a.zero_grad();
        for (const auto& e : a.entries())
            if (e.kind == EntryKind::Parameter)
                for (std::size_t i = 0; i < e.slot.count; ++i)
                    a.grad(e.slot)[i] += float(std::sin(0.3 * double(i) + 1.7 * step + double(e.slot.offset)));
    };
    const auto lr_at = [](int step) { return 1e-3 * (1 + step); };
    // uninterrupted: 4 AdamW steps with clipping, EMA-free
    ParamArena<float> ref;
    build(ref, true);
    fill(ref, 0.3);
    optim::AdamWConfig cfg;
    cfg.max_grad_norm = 2.0;
    optim::AdamW<float> ref_opt(ref, cfg);
    for (int s = 0; s < 4; ++s) {
        grads_at(ref, s);
        ref_opt.step(lr_at(s), 0.5);
    }
    // 2 steps, save, fresh objects, load, 2 more
    {
        ParamArena<float> a;
        build(a, true);
        fill(a, 0.3);
        optim::AdamW<float> opt(a, cfg);
        for (int s = 0; s < 2; ++s) {
            grads_at(a, s);
            opt.step(lr_at(s), 0.5);
        }
        save_params<float>(dir.path / "p.safetensors", {{"", a}});
        TrainState st;
        st.step = 2;
        save_train_state<float>(dir.path / "s.safetensors", st, {opt.state()});
    }
    ParamArena<float> b;
    build(b, true);
    optim::AdamW<float> opt(b, cfg);
    load_params(dir.path / "p.safetensors", b);
    TrainState st;
    load_train_state<float>(dir.path / "s.safetensors", st, {opt.state()});
    for (int s = static_cast<int>(st.step); s < 4; ++s) {
        grads_at(b, s);
        opt.step(lr_at(s), 0.5);
    }
    for (const auto& e : ref.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i) CHECK(b.value(e.slot)[i] == ref.value(e.slot)[i]);
}
