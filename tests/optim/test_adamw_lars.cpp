// Tests of AdamW (against torch.optim.AdamW numbers and a plain reference loop), LARS (against a
// plain reference loop), the decay mask, buffers being skipped, grad scale and clipping.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/lars.hpp"
#include "lcmae/optim/layer_decay.hpp"

#include "optim/adamw_reference.inc"

using namespace lcmae;
using namespace lcmae::optim;

namespace {

// The same four tensors as make_adamw_reference.py, plus a BN buffer that must never move.
template <class T>
struct Tiny {
    ParamArena<T> arena;
    Slot W, b, cls, bn, h;
    Tiny() {
        W = arena.add("W", Shape{3, 4});
        b = arena.add("b", Shape{4});
        cls = arena.add("cls", Shape{1, 1, 4});
        bn = arena.add_buffer("bn.running_mean", Shape{3});
        h = arena.add("h", Shape{2, 3});
        arena.allocate();
        int k = 0;
        for (Slot s : {W, b, cls, h})
            for (std::size_t i = 0; i < s.count; ++i, ++k) arena.value(s)[i] = T(0.5 * std::cos(0.21 * k));
        for (int i = 0; i < 3; ++i) arena.value(bn)[i] = T(7 + i);
    }
    // the summed grad of 2 micro-batches (accumulated with +=), as the script
    void set_grads(int step) {
        arena.zero_grad();
        int k = 0;
        for (Slot s : {W, b, cls, h})
            for (std::size_t i = 0; i < s.count; ++i, ++k) {
                const double g = 2.0 * std::sin(0.37 * (k + 1) + 1.1 * step);
                arena.grad(s)[i] += T(g / 2);
                arena.grad(s)[i] += T(g / 2);
            }
        for (int i = 0; i < 3; ++i) arena.grad(bn)[i] = T(100);  // must be ignored
    }
};

template <class T>
void check_close(const T* got, const double* want, std::size_t n, double tol) {
    for (std::size_t i = 0; i < n; ++i) CHECK(double(got[i]) == doctest::Approx(want[i]).epsilon(tol));
}

}  // namespace

TEST_CASE_TEMPLATE("AdamW matches torch.optim.AdamW over 3 steps (decay mask, lr scale, grad scale)", T, float, double) {
    Tiny<T> m;
    CHECK(m.arena.entry("W").weight_decay);
    CHECK_FALSE(m.arena.entry("b").weight_decay);
    CHECK(m.arena.entry("cls").weight_decay);  // 3-D: decayed, like cls_token
    AdamW<T> opt(m.arena);                      // defaults: (0.9, 0.95), 1e-8, 0.05
    std::vector<double> scales(m.arena.entries().size(), 1.0);
    scales[4] = 0.5;  // "h"
    opt.set_lr_scales(scales);
    for (int step = 0; step < 3; ++step) {
        m.set_grads(step);
        const double norm = opt.step(0.01, 0.5);
        CHECK(std::isnan(norm));  // no clipping configured
    }
    CHECK(opt.step_count() == 3);
    const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-12;
    check_close(m.arena.value(m.W), kTorchAdamW_W, 12, tol);
    check_close(m.arena.value(m.b), kTorchAdamW_b, 4, tol);
    check_close(m.arena.value(m.cls), kTorchAdamW_cls, 4, tol);
    check_close(m.arena.value(m.h), kTorchAdamW_h, 6, tol);
    for (int i = 0; i < 3; ++i) CHECK(m.arena.value(m.bn)[i] == T(7 + i));  // buffer untouched
    // moments of the buffer slot stay zero
    CHECK(opt.exp_avg()[m.bn.offset] == T(0));
}

TEST_CASE("AdamW equals a straightforward per-element reference loop, and merges segments") {
    ParamArena<double> a;
    std::vector<Slot> slots;
    slots.push_back(a.add("blocks.0.attn.qkv.weight", Shape{6, 5}));
    slots.push_back(a.add("blocks.0.attn.qkv.bias", Shape{6}));
    slots.push_back(a.add("blocks.0.mlp.fc1.weight", Shape{7, 3}));
    slots.push_back(a.add("norm.weight", Shape{5}));
    a.allocate();
    for (std::size_t s = 0; s < slots.size(); ++s)
        for (std::size_t i = 0; i < slots[s].count; ++i) a.value(slots[s])[i] = std::sin(1.0 + i + 10.0 * s);
    std::vector<std::vector<double>> p(slots.size()), m(slots.size()), v(slots.size());
    for (std::size_t s = 0; s < slots.size(); ++s) {
        p[s].assign(a.value(slots[s]), a.value(slots[s]) + slots[s].count);
        m[s].assign(slots[s].count, 0.0);
        v[s].assign(slots[s].count, 0.0);
    }
    AdamWConfig cfg;
    cfg.beta2 = 0.999;
    cfg.weight_decay = 0.1;
    AdamW<double> opt(a, cfg);
    // decay pattern: W, bias, W, 1-D -> 4 segments (no two neighbours agree)
    CHECK(opt.segments().size() == 4);
    for (int t = 1; t <= 5; ++t) {
        const double lr = 1e-2 * t;
        for (std::size_t s = 0; s < slots.size(); ++s)
            for (std::size_t i = 0; i < slots[s].count; ++i) a.grad(slots[s])[i] = std::cos(0.3 * i + t + s);
        opt.step(lr);
        for (std::size_t s = 0; s < slots.size(); ++s) {
            const bool decay = a.entries()[s].weight_decay;
            for (std::size_t i = 0; i < slots[s].count; ++i) {
                const double g = std::cos(0.3 * i + t + s);
                if (decay) p[s][i] -= lr * cfg.weight_decay * p[s][i];
                m[s][i] = cfg.beta1 * m[s][i] + (1 - cfg.beta1) * g;
                v[s][i] = cfg.beta2 * v[s][i] + (1 - cfg.beta2) * g * g;
                const double mh = m[s][i] / (1 - std::pow(cfg.beta1, t));
                const double vh = v[s][i] / (1 - std::pow(cfg.beta2, t));
                p[s][i] -= lr * mh / (std::sqrt(vh) + cfg.eps);
            }
        }
    }
    for (std::size_t s = 0; s < slots.size(); ++s)
        for (std::size_t i = 0; i < slots[s].count; ++i)
            CHECK(a.value(slots[s])[i] == doctest::Approx(p[s][i]).epsilon(1e-10));
    // a uniform layout of 16-multiples merges into one segment; padding breaks a run
    ParamArena<float> u;
    u.add("w1", Shape{4, 4});
    u.add("w2", Shape{16, 2});
    u.add("w3", Shape{2, 3});
    u.add("w4", Shape{2, 8});
    u.allocate();
    AdamW<float> o2(u);
    CHECK(o2.segments().size() == 2);
    CHECK(o2.segments()[0].count == 16 + 32 + 6);
}

TEST_CASE("AdamW: a frozen predicate and zero weight decay") {
    ParamArena<float> a;
    const Slot enc = a.add("blocks.0.w", Shape{2, 2});
    const Slot head = a.add("head.weight", Shape{2, 2});
    a.allocate();
    for (int i = 0; i < 4; ++i) {
        a.value(enc)[i] = a.value(head)[i] = 1.0f;
        a.grad(enc)[i] = a.grad(head)[i] = 1.0f;
    }
    AdamW<float> opt(a, {}, [](const ParamEntry& e) { return e.name.starts_with("head."); });
    opt.step(0.1);
    for (int i = 0; i < 4; ++i) {
        CHECK(a.value(enc)[i] == 1.0f);
        // first step moves by lr * sign(g) (m/sqrt(v) = 1) after decay 1 - 0.1*0.05
        CHECK(a.value(head)[i] == doctest::Approx(1.0 * (1 - 0.005) - 0.1).epsilon(1e-6));
    }
}

TEST_CASE("Gradient clipping: global norm over trainable grads, as clip_grad_norm_") {
    ParamArena<double> a;
    const Slot w = a.add("w", Shape{2, 2});
    const Slot b = a.add("b", Shape{2});
    const Slot bn = a.add_buffer("bn.running_var", Shape{2});
    a.allocate();
    const double g[6] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < 4; ++i) a.grad(w)[i] = g[i];
    for (int i = 0; i < 2; ++i) a.grad(b)[i] = g[4 + i];
    a.grad(bn)[0] = 1000;  // ignored
    const double norm = std::sqrt(1 + 4 + 9 + 16 + 25 + 36.0);
    CHECK(global_grad_norm(a) == doctest::Approx(norm));
    CHECK(global_grad_norm(a, 0.5) == doctest::Approx(norm / 2));

    // AdamW with clipping: the step equals an unclipped step on pre-clipped grads
    ParamArena<double> a2;
    a2.add("w", Shape{2, 2});
    a2.add("b", Shape{2});
    a2.add_buffer("bn.running_var", Shape{2});
    a2.allocate();
    a2.grads() = a.grads();
    AdamWConfig cfg;
    cfg.max_grad_norm = 1.0;
    AdamW<double> clipped(a, cfg);
    CHECK(clipped.step(0.1) == doctest::Approx(norm));
    const double got = clip_grad_norm(a2, 1.0);
    CHECK(got == doctest::Approx(norm));
    CHECK(global_grad_norm(a2) == doctest::Approx(1.0).epsilon(1e-5));
    // Adam is scale invariant except for eps, so compare the moments instead
    AdamW<double> plain(a2);
    plain.step(0.1);
    for (std::size_t i = 0; i < a.planned_size(); ++i) {
        CHECK(clipped.exp_avg()[i] == doctest::Approx(plain.exp_avg()[i]).epsilon(1e-12));
        CHECK(clipped.exp_avg_sq()[i] == doctest::Approx(plain.exp_avg_sq()[i]).epsilon(1e-12));
    }
    // below the threshold nothing changes
    CHECK(clip_coefficient(0.5, 1.0) == 1.0);
}

TEST_CASE("AdamW with layer-wise lr decay scales each entry's step") {
    ParamArena<double> a;
    const Slot cls = a.add("cls_token", Shape{1, 1, 2});
    const Slot blk = a.add("blocks.1.mlp.fc1.weight", Shape{2, 2});
    const Slot head = a.add("head.weight", Shape{2, 2});
    a.allocate();
    assign_vit_layer_ids(a, 2);
    CHECK(a.entry("cls_token").layer_id == 0);
    CHECK(a.entry("blocks.1.mlp.fc1.weight").layer_id == 2);
    CHECK(a.entry("head.weight").layer_id == 3);
    for (Slot s : {cls, blk, head})
        for (std::size_t i = 0; i < s.count; ++i) a.grad(s)[i] = 1.0;
    AdamWConfig cfg;
    cfg.weight_decay = 0;
    AdamW<double> opt(a, cfg);
    opt.set_lr_scales(layer_lr_scales(a, 2, 0.5));
    opt.step(1.0);  // first Adam step moves by lr_e * 1/(1 + eps)
    CHECK(a.value(cls)[0] == doctest::Approx(-0.125));
    CHECK(a.value(blk)[0] == doctest::Approx(-0.5));
    CHECK(a.value(head)[0] == doctest::Approx(-1.0));
    CHECK_THROWS_AS(opt.set_lr_scales({1.0}), Error);
}

TEST_CASE_TEMPLATE("LARS equals a reference loop (trust ratio, 1-D skip, momentum, weight decay)", T, float, double) {
    ParamArena<T> a;
    const Slot w = a.add("head.1.weight", Shape{3, 4});
    const Slot b = a.add("head.1.bias", Shape{3});
    const Slot z = a.add("zero.weight", Shape{2, 2});  // |p| = 0: trust ratio falls back to 1
    const Slot bn = a.add_buffer("head.0.running_mean", Shape{4});
    a.allocate();
    std::vector<double> pw(12), pb(3), pz(4, 0.0), mw(12, 0), mb(3, 0), mz(4, 0);
    for (int i = 0; i < 12; ++i) a.value(w)[i] = T(pw[i] = 0.1 * (i - 5));
    for (int i = 0; i < 3; ++i) a.value(b)[i] = T(pb[i] = 0.2 * i);
    for (int i = 0; i < 4; ++i) a.value(bn)[i] = T(3);
    LarsConfig cfg;
    cfg.weight_decay = 0.01;
    Lars<T> opt(a, cfg);
    const auto ref_step = [&](std::vector<double>& p, std::vector<double>& mu, const std::vector<double>& g, bool matrix,
                              double lr) {
        std::vector<double> d(p.size());
        double pn = 0, dn = 0;
        for (std::size_t i = 0; i < p.size(); ++i) {
            d[i] = g[i] + (matrix ? cfg.weight_decay * p[i] : 0.0);
            pn += p[i] * p[i];
            dn += d[i] * d[i];
        }
        pn = std::sqrt(pn);
        dn = std::sqrt(dn);
        const double q = (matrix && pn > 0 && dn > 0) ? cfg.trust_coefficient * pn / dn : 1.0;
        for (std::size_t i = 0; i < p.size(); ++i) {
            mu[i] = cfg.momentum * mu[i] + q * d[i];
            p[i] -= lr * mu[i];
        }
    };
    for (int t = 0; t < 4; ++t) {
        const double lr = 0.5 + 0.1 * t;
        std::vector<double> gw(12), gb(3), gz(4);
        for (int i = 0; i < 12; ++i) a.grad(w)[i] = T(gw[i] = std::sin(i + 2.0 * t));
        for (int i = 0; i < 3; ++i) a.grad(b)[i] = T(gb[i] = std::cos(i + 2.0 * t));
        for (int i = 0; i < 4; ++i) a.grad(z)[i] = T(gz[i] = 0.25 * (i + 1));
        a.grad(bn)[0] = T(9);
        opt.step(lr);
        ref_step(pw, mw, gw, true, lr);
        ref_step(pb, mb, gb, false, lr);
        ref_step(pz, mz, gz, true, lr);
    }
    const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    for (int i = 0; i < 12; ++i) CHECK(double(a.value(w)[i]) == doctest::Approx(pw[i]).epsilon(tol));
    for (int i = 0; i < 3; ++i) CHECK(double(a.value(b)[i]) == doctest::Approx(pb[i]).epsilon(tol));
    for (int i = 0; i < 4; ++i) CHECK(double(a.value(z)[i]) == doctest::Approx(pz[i]).epsilon(tol));
    for (int i = 0; i < 4; ++i) CHECK(a.value(bn)[i] == T(3));
    CHECK(opt.step_count() == 4);
}
