// backend::Strict against backend::Cpu for the optimisers and the files: AdamW (lr scales,
// clipping, a frozen entry), LARS, EMA, the gradient norm and clipping, zero-grad, parameter and
// training-state files (byte-identical files, exact resume). Strict's memory cannot be read by the
// generic code, so every access went through the ops; the results must be bit-identical to the CPU.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/train_state.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/ema.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/lars.hpp"
#include "lcmae/optim/layer_decay.hpp"

// Declared after the generic code on purpose: its ops are found through ADL at instantiation.
#include "support/strict_backend.hpp"

#include "io/test_util.hpp"

using namespace lcmae;
namespace fs = std::filesystem;
using lcmae::test::TempDir;

namespace {

constexpr int kThreads = 2;

// A small online model (or its target twin) whose qkv weight (300 x 300) is large enough for the
// threaded path of every optimiser op; odd sizes leave padding between entries.
template <class T, class B>
void build(ParamArena<T, B>& a, bool online) {
    a.add("cls_token", Shape{1, 1, 16});
    a.add("patch_embed.proj.weight", Shape{16, 12});
    a.add("patch_embed.proj.bias", Shape{16});
    a.add("blocks.0.attn.qkv.weight", Shape{300, 300});
    a.add("blocks.0.attn.qkv.bias", Shape{300});
    a.add("blocks.0.norm1.weight", Shape{7});
    if (online) {
        a.add("mask_token", Shape{1, 1, 8});
        a.add("decoder_embed.weight", Shape{8, 16});
    }
    a.add("norm.weight", Shape{16});
    a.add("head.0.weight", Shape{5, 16});
    a.add_buffer("head.1.running_mean", Shape{5});
    a.add_buffer("head.1.running_var", Shape{5});
    a.allocate();
}

template <class T>
std::vector<T> random_host(std::size_t n, std::uint64_t seed, double lo, double hi) {
    Rng r(seed, 1);
    std::vector<T> h(n);
    for (auto& x : h) x = T(r.uniform(lo, hi));
    return h;
}
template <class T, class B>
void set_values(const B& ctx, ParamArena<T, B>& a, std::uint64_t seed) {
    const auto h = random_host<T>(a.planned_size(), seed, -1.0, 1.0);
    upload(ctx, long(h.size()), h.data(), a.values().data());
}
template <class T, class B>
void set_grads(const B& ctx, ParamArena<T, B>& a, std::uint64_t seed) {
    const auto h = random_host<T>(a.planned_size(), seed, -0.3, 0.3);
    upload(ctx, long(h.size()), h.data(), a.grads().data());
}
template <class T, class B, class Buf>
std::vector<T> to_host(const B& ctx, const Buf& buf) {
    std::vector<T> h(buf.size());
    download(ctx, long(h.size()), buf.data(), h.data());
    return h;
}
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
template <class T>
bool all_zero(const std::vector<T>& v) {
    for (T x : v)
        if (x != T(0)) return false;
    return true;
}
std::string file_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

template <class T>
struct AdamWResult {
    std::vector<T> values, grads, m, v;
    std::vector<double> norms;
    double grad_norm = 0;
};

template <class T, class B>
AdamWResult<T> run_adamw(const B& ctx) {
    ParamArena<T, B> a;
    build(a, true);
    set_values(ctx, a, 11);
    optim::assign_vit_layer_ids(a, 1);
    optim::AdamWConfig cfg;
    cfg.max_grad_norm = 1.0;
    optim::AdamW<T, B> opt(a, cfg, [](const ParamEntry& e) { return e.name != "mask_token"; });
    opt.set_lr_scales(optim::layer_lr_scales(a, 1, 0.75));
    AdamWResult<T> r;
    for (int s = 0; s < 3; ++s) {
        set_grads(ctx, a, 100 + s);
        opt.step(ctx, 1e-2 * (s + 1), 0.5);
        r.norms.push_back(opt.last_grad_norm(ctx));
    }
    r.grad_norm = opt.grad_norm(ctx, 0.25);
    r.values = to_host<T>(ctx, a.values());
    r.grads = to_host<T>(ctx, a.grads());
    r.m = to_host<T>(ctx, opt.exp_avg());
    r.v = to_host<T>(ctx, opt.exp_avg_sq());
    // reset zeroes the moments through the backend
    opt.reset(ctx);
    CHECK(opt.step_count() == 0);
    CHECK(all_zero(to_host<T>(ctx, opt.exp_avg())));
    return r;
}

}  // namespace

TEST_CASE_TEMPLATE("Strict = Cpu: AdamW with lr scales, clipping and a frozen entry", T, float, double) {
    const auto c = run_adamw<T>(backend::Cpu(kThreads));
    const auto s = run_adamw<T>(backend::Strict(kThreads));
    CHECK(same_bits(c.values, s.values));
    CHECK(same_bits(c.grads, s.grads));
    CHECK(same_bits(c.m, s.m));
    CHECK(same_bits(c.v, s.v));
    CHECK(same_bits(c.norms, s.norms));
    CHECK(same_bits(c.grad_norm, s.grad_norm));
    for (double n : c.norms) CHECK(std::isfinite(n));
}

TEST_CASE("The CPU's context-free AdamW step equals the step with a context of the same threads") {
    ParamArena<float> a, b;
    build(a, true);
    build(b, true);
    const backend::Cpu ctx;  // the default: the current OpenMP thread count, as the old step used
    set_values(ctx, a, 3);
    set_values(ctx, b, 3);
    optim::AdamWConfig cfg;
    cfg.max_grad_norm = 0.5;
    optim::AdamW<float> oa(a, cfg), ob(b, cfg);
    for (int s = 0; s < 2; ++s) {
        set_grads(ctx, a, 7 + s);
        set_grads(ctx, b, 7 + s);
        const double na = oa.step(1e-3, 0.5);
        ob.step(ctx, 1e-3, 0.5);
        CHECK(same_bits(na, ob.last_grad_norm(ctx)));
    }
    CHECK(same_bits(to_host<float>(ctx, a.values()), to_host<float>(ctx, b.values())));
}

TEST_CASE_TEMPLATE("Strict = Cpu: LARS (matrices with trust ratio, 1-D entries, a zero tensor)", T, float, double) {
    const auto run = [](const auto& ctx) {
        using B = std::decay_t<decltype(ctx)>;
        ParamArena<T, B> a;
        build(a, false);
        set_values(ctx, a, 21);
        // a zero matrix: the trust ratio falls back to 1
        const Slot z = a.entry("head.0.weight").slot;
        fill(ctx, long(z.count), T(0), a.value(z));
        optim::LarsConfig cfg;
        cfg.weight_decay = 0.01;
        optim::Lars<T, B> opt(a, cfg);
        for (int s = 0; s < 3; ++s) {
            set_grads(ctx, a, 200 + s);
            opt.step(ctx, 0.5 + 0.1 * s, 0.5);
        }
        CHECK(opt.step_count() == 3);
        return std::pair(to_host<T>(ctx, a.values()), to_host<T>(ctx, opt.momentum_buffer()));
    };
    const auto c = run(backend::Cpu(kThreads));
    const auto s = run(backend::Strict(kThreads));
    CHECK(same_bits(c.first, s.first));
    CHECK(same_bits(c.second, s.second));
}

TEST_CASE_TEMPLATE("Strict = Cpu: EMA copy and update over parameters and buffers", T, float, double) {
    const auto run = [](const auto& ctx) {
        using B = std::decay_t<decltype(ctx)>;
        ParamArena<T, B> online, target;
        build(online, true);
        build(target, false);
        set_values(ctx, online, 31);
        set_values(ctx, target, 32);
        optim::EmaUpdater<T, B> ema(target, online);
        CHECK(ema.runs().size() == 4);  // padding after odd sizes and the decoder gap split the runs
        ema.copy_from_online(ctx);
        const auto copied = to_host<T>(ctx, target.values());
        set_values(ctx, online, 33);
        ema.update(ctx, 0.996);
        ema.update(ctx, 0.9);
        return std::pair(copied, to_host<T>(ctx, target.values()));
    };
    const auto c = run(backend::Cpu(kThreads));
    const auto s = run(backend::Strict(kThreads));
    CHECK(same_bits(c.first, s.first));
    CHECK(same_bits(c.second, s.second));
}

TEST_CASE_TEMPLATE("Strict = Cpu: global grad norm, clipping and zero-grad", T, float, double) {
    const auto run = [](const auto& ctx) {
        using B = std::decay_t<decltype(ctx)>;
        ParamArena<T, B> a;
        build(a, true);
        set_grads(ctx, a, 41);
        std::vector<double> norms;
        norms.push_back(optim::global_grad_norm(ctx, a));
        norms.push_back(optim::global_grad_norm(ctx, a, 0.5));
        norms.push_back(optim::clip_grad_norm(ctx, a, 1.0));  // clips: the norm is far above 1
        norms.push_back(optim::global_grad_norm(ctx, a));
        norms.push_back(optim::clip_grad_norm(ctx, a, 1e6));  // does not clip
        const auto clipped = to_host<T>(ctx, a.grads());
        optim::zero_grad(ctx, a);
        CHECK(all_zero(to_host<T>(ctx, a.grads())));
        return std::pair(norms, clipped);
    };
    const auto c = run(backend::Cpu(kThreads));
    const auto s = run(backend::Strict(kThreads));
    CHECK(same_bits(c.first, s.first));
    CHECK(same_bits(c.second, s.second));
    CHECK(c.first[0] > 1.0);
    CHECK(c.first[3] == doctest::Approx(1.0).epsilon(1e-5));
}

namespace {
// Trains online (AdamW) + target (EMA) for `steps`; saves after `save_at` steps when asked, or
// first loads what another run saved and continues from its step count.
template <class T, class B>
std::vector<T> train(const B& ctx, int steps, const fs::path* save_dir, int save_at, const fs::path* load_dir) {
    ParamArena<T, B> online, target;
    build(online, true);
    build(target, false);
    set_values(ctx, online, 51);
    optim::AdamWConfig cfg;
    cfg.max_grad_norm = 2.0;
    optim::AdamW<T, B> opt(online, cfg);
    optim::EmaUpdater<T, B> ema(target, online);
    ema.copy_from_online(ctx);
    int start = 0;
    if (load_dir) {
        io::load_params(ctx, *load_dir / "ckpt.safetensors", online, "", io::Strictness::IgnoreUnexpected);
        io::load_params(ctx, *load_dir / "ckpt.safetensors", target, "target.");
        io::TrainState st;
        io::load_train_state<T, B>(ctx, *load_dir / "state.safetensors", st, {opt.state()});
        start = int(st.step);
        CHECK(st.integers.at("answer") == 42);
    }
    for (int s = start; s < steps; ++s) {
        if (save_dir && s == save_at) {
            io::save_params<T>(ctx, *save_dir / "ckpt.safetensors", {{"", online}, {"target.", target}}, {{"epoch", "3"}});
            io::TrainState st;
            st.step = s;
            st.integers["answer"] = 42;
            st.rngs["mask"] = Rng(1, 2, 3);
            io::save_train_state<T, B>(ctx, *save_dir / "state.safetensors", st, {opt.state()});
            io::EncoderExport<T> ex;
            ex.channels = 3;
            ex.patch = 2;
            io::export_encoder(ctx, *save_dir / "encoder.safetensors", online, ex);
            // F64 parameters from a float arena convert the same way on every backend
            io::save_params<T>(ctx, *save_dir / "f64.safetensors", {{"", online}}, {}, io::Dtype::F64);
        }
        set_grads(ctx, online, 300 + s);
        opt.step(ctx, 1e-3 * (1 + s), 0.5);
        ema.update(ctx, 0.99);
        optim::zero_grad(ctx, online);
    }
    std::vector<T> out = to_host<T>(ctx, online.values());
    const auto t = to_host<T>(ctx, target.values());
    const auto m = to_host<T>(ctx, opt.exp_avg_sq());
    out.insert(out.end(), t.begin(), t.end());
    out.insert(out.end(), m.begin(), m.end());
    return out;
}
}  // namespace

TEST_CASE_TEMPLATE("Strict = Cpu: parameter and training-state files are byte-identical; exact resume", T, float, double) {
    TempDir cpu_dir, strict_dir;
    const backend::Cpu cpu(kThreads);
    const backend::Strict strict(kThreads);
    const auto ref = train<T>(cpu, 4, nullptr, 0, nullptr);
    const auto ref_s = train<T>(strict, 4, &strict_dir.path, 2, nullptr);
    const auto ref_c = train<T>(cpu, 4, &cpu_dir.path, 2, nullptr);
    CHECK(same_bits(ref, ref_s));
    CHECK(same_bits(ref, ref_c));
    for (const char* f : {"ckpt.safetensors", "state.safetensors", "encoder.safetensors", "f64.safetensors"}) {
        CAPTURE(f);
        const std::string a = file_bytes(cpu_dir.path / f), b = file_bytes(strict_dir.path / f);
        CHECK(!a.empty());
        CHECK(a == b);
    }
    // resume from the other backend's files: both continue bit-identically to the uninterrupted run
    CHECK(same_bits(train<T>(strict, 4, nullptr, 0, &cpu_dir.path), ref));
    CHECK(same_bits(train<T>(cpu, 4, nullptr, 0, &strict_dir.path), ref));
    // a strict load that does not match still names the problem and changes nothing
    ParamArena<T, backend::Strict> small;
    small.add("cls_token", Shape{1, 1, 4});
    small.allocate();
    CHECK(lcmae::test::throws_with([&] { io::load_params(strict, strict_dir.path / "ckpt.safetensors", small); },
                                   "shape mismatch for 'cls_token'"));
    CHECK(all_zero(to_host<T>(strict, small.values())));
}
