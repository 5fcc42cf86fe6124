// The PyTorch fixtures (tests/reference/fixtures, the ones tests/models/test_reference_pytorch.cpp
// runs on the CPU) on the GPU backend, and 50 training steps in TF32 and BF16 against FP32 (issue 8:
// "the PyTorch fixtures also run on the GPU backend"; "50 steps in BF16 whose loss curve stays
// within a stated band of the FP32 one").
//
// Fixtures: the same initial weights, images and masks as PyTorch; losses at every step, every
// step-0 gradient, and the online and target weights after 3 AdamW + EMA steps, for MAE, LC-MAE
// (cosine, InfoNCE, Smooth L1, paper views, Table 5e) and LC-SimMIM, in double and in strict FP32
// (the parity mode). Tolerances are the CPU test's (same arithmetic, another summation order), with
// one difference written down where it applies: double weights at 1e-9 instead of 3e-10 (AdamW's
// m / sqrt(v) amplifies summation-order noise of near-zero gradients; the GPU sums in other orders
// than both the CPU and PyTorch, and this has not been measured on a GPU yet: the first run prints
// its worst values, which then go here).
//
// Precision band: the tiny model of the trainer tests trains 50 optimiser steps from the same
// weights on the same batches under Fp32, Tf32 and Bf16 ("BF16 GEMM operands"); every step's loss
// under Tf32 must lie within 2% of FP32's and under Bf16 within 5%, and the mean of the last 10
// within 1% (Tf32) and 3% (Bf16). Why those bands: Tf32 rounds GEMM operands to 10 mantissa bits
// (relative 4.9e-4), Bf16 to 7 bits (3.9e-3); a step's loss moves by about the operands' rounding
// times the depth of the products (~10 here), and 50 steps of AdamW let the trajectories drift apart
// slowly (the per-step band is the larger one for that reason). Skips without a GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_test_util.hpp"
#include "lcmae/backend/cuda.cuh"
#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/ema.hpp"
#include "lcmae/train/trainer.hpp"
#include "reference/fixture_cases.hpp"
#include "support/gradcheck.hpp"
#include "support/tiny_model.hpp"

using namespace lcmae;
using namespace lcmae::models;
using namespace lcmae::test::cuda;
using namespace lcmae::test::reference;
using backend::Cuda;
using backend::Precision;

namespace {

double tensor_rel_error(const std::vector<double>& got_all, const ParamEntry& e, const std::vector<double>& ref,
                        const std::vector<double>* step0_grad, const std::vector<double>* init) {
    return weights_rel_error(got_all.data() + e.slot.offset, ref, step0_grad, init);
}

template <class Buffer>
std::vector<double> download_all(const Cuda& gpu, const Buffer& buf) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(buf.data())>>;
    std::vector<T> h(buf.size());
    ops::download(gpu, long(h.size()), buf.data(), h.data());
    return std::vector<double>(h.begin(), h.end());
}

template <class T>
void run_fixture_on_gpu(const std::string& name, const ModelSpec& spec, double loss_tol, double grad_tol, double weight_tol) {
    CAPTURE(name);
    Cuda gpu(0, Precision::Fp32);
    const io::SafetensorsFile f(fixture(name));
    LcmaeModel<T, Cuda> model(gpu, spec, 0);
    auto& P = model.params();
    io::load_params(gpu, f, P, "init.", io::Strictness::IgnoreUnexpected);
    if (model.has_target()) model.copy_online_to_target(gpu);

    const FixtureInputs<T> in(f, spec);
    const auto &view1 = in.view1, &view2 = in.view2, &mask = in.mask;
    const auto& ids = in.ids;
    const auto &loss_mim = in.loss_mim, &loss_gg = in.loss_gg, &loss_total = in.loss_total;
    const int steps = int(loss_total.size());
    std::vector<double> d_k(std::size_t(steps), 0.0);
    if (model.has_target()) d_k = f.read<double>("ref.ema_decay");
    REQUIRE(long(d_k.size()) == steps);
    const long B = 8;
    double worst_loss = 0, worst_grad = 0, worst_weight = 0;

    optim::AdamW<T, Cuda> adamw(P, optim::AdamWConfig{0.9, 0.95, 1e-8, 0.05, 0.0});
    std::unique_ptr<optim::EmaUpdater<T, Cuda>> ema;
    if (model.has_target()) ema = std::make_unique<optim::EmaUpdater<T, Cuda>>(model.target_params(), P);
    for (int k = 0; k < steps; ++k) {
        CAPTURE(k);
        optim::zero_grad(gpu, P);
        const StepLosses l = spec.baseline == Baseline::Mae
                                 ? model.forward_backward_mae(gpu, view1.data(), view2.data(), B, ids.data())
                                 : model.forward_backward_simmim(gpu, view1.data(), view2.data(), B, mask.data());
        gpu.check_errors();
        const double tol = (k == 0 || !std::is_same_v<T, float>) ? loss_tol : std::max(loss_tol, kFloatLaterStepLossTol);
        CHECK(l.mim == doctest::Approx(loss_mim[k]).epsilon(tol));
        CHECK(l.gg == doctest::Approx(loss_gg[k]).epsilon(tol));
        CHECK(l.total == doctest::Approx(loss_total[k]).epsilon(tol));
        worst_loss = std::max(worst_loss, std::abs(l.total - loss_total[k]) / std::abs(loss_total[k]));
        if (k == 0) {
            const auto grads = download_all(gpu, P.grads());
            for (const auto& e : P.entries()) {
                if (e.kind != EntryKind::Parameter) continue;
                const auto ref = f.read<double>("grad." + e.name);
                const std::vector<double> got(grads.begin() + long(e.slot.offset), grads.begin() + long(e.slot.offset + e.slot.count));
                const double err = test::rel_error(got, ref);
                INFO("gradient of " << e.name << " relative error " << err);
                CHECK(err <= grad_tol);
                worst_grad = std::max(worst_grad, err);
            }
        }
        adamw.step(gpu, 1e-3);
        if (ema) ema->update(gpu, d_k[std::size_t(k)]);
    }
    const bool skip_zero_grads = std::is_same_v<T, float>;
    const auto values = download_all(gpu, P.values());
    for (const auto& e : P.entries()) {
        const auto init = f.read<double>("init." + e.name);
        std::unique_ptr<std::vector<double>> g;
        if (skip_zero_grads && e.kind == EntryKind::Parameter) g = std::make_unique<std::vector<double>>(f.read<double>("grad." + e.name));
        const double err = tensor_rel_error(values, e, f.read<double>("final." + e.name), g.get(), &init);
        INFO("final " << e.name << " relative error " << err);
        CHECK(err <= weight_tol);
        worst_weight = std::max(worst_weight, err);
    }
    if (model.has_target()) {
        const auto target = download_all(gpu, model.target_params().values());
        for (const auto& e : model.target_params().entries()) {
            std::unique_ptr<std::vector<double>> g;
            if (skip_zero_grads && e.kind == EntryKind::Parameter) g = std::make_unique<std::vector<double>>(f.read<double>("grad." + e.name));
            const double err = tensor_rel_error(target, e, f.read<double>("final.target." + e.name), g.get(), nullptr);
            INFO("final target " << e.name << " relative error " << err);
            CHECK(err <= weight_tol);
            worst_weight = std::max(worst_weight, err);
        }
    }
    MESSAGE(name << " " << type_name<T>() << " on the GPU: worst relative error: loss " << worst_loss << ", gradient "
                 << worst_grad << ", weights " << worst_weight);
}

// loss, gradients, weights: the CPU test's tolerances (test_reference_pytorch.cpp), double weights
// at 1e-9 (header)
constexpr double kFloatTol[3] = {2e-7, 1e-5, 2e-5}, kDoubleTol[3] = {1e-14, 2e-14, 1e-9};

/// Losses of `steps` trainer steps of the tiny LC-MAE model under `p` (same seed, same batches).
std::vector<double> loss_curve(Precision p, int steps) {
    Cuda gpu(0, p);
    ModelSpec spec = test::tiny_spec(GuidanceLoss::Cosine, 8);
    spec.encoder = vit::VitDims{32, 2, 2, 4, 16, 3, 4};  // 16 px RGB, 16 tokens, head dim 16 (tensor-core friendly)
    spec.decoder = DecoderDims{32, 1, 2};
    spec.head_hidden = 64;
    LcmaeModel<float, Cuda> model(gpu, spec, 5);
    train::TrainConfig c;
    c.batch = 8;
    c.epochs = 1;
    c.warmup_epochs = 0.1;
    c.blr = 0.05;
    c.max_grad_norm = 1.0;
    c.seed = 3;
    train::Trainer<float, Cuda> t(gpu, model, c, steps);
    const long n = 8 * 3 * 16 * 16;
    std::vector<double> losses;
    for (int s = 0; s < steps; ++s) {
        Rng r(77, std::uint64_t(s));  // the same batches in every precision
        std::vector<float> v1(static_cast<std::size_t>(n)), v2(static_cast<std::size_t>(n));
        for (auto& x : v1) x = float(r.uniform(-1, 1));
        for (auto& x : v2) x = float(r.uniform(-1, 1));
        losses.push_back(t.micro_batch(gpu, v1.data(), v2.data(), 8).losses.total);
    }
    gpu.check_errors();
    return losses;
}

}  // namespace

TEST_CASE("cuda: the PyTorch fixtures, double and strict FP32, on the GPU backend") {
    LCMAE_SKIP_WITHOUT_CUDA();
    for (const auto& c : kCases) {
        const auto spec = fixture_spec(c.loss, c.views, c.baseline, c.guided);
        run_fixture_on_gpu<double>(c.file, spec, kDoubleTol[0], kDoubleTol[1], kDoubleTol[2]);
        run_fixture_on_gpu<float>(c.file, spec, kFloatTol[0], kFloatTol[1], kFloatTol[2]);
    }
}

TEST_CASE("cuda: 50 steps under TF32 and BF16 GEMM operands stay within a stated band of FP32's loss curve") {
    LCMAE_SKIP_WITHOUT_CUDA();
    const int steps = 50;
    const auto fp32 = loss_curve(Precision::Fp32, steps);
    const struct {
        Precision p;
        double per_step, last10;
    } bands[] = {{Precision::Tf32, 0.02, 0.01}, {Precision::Bf16, 0.05, 0.03}};
    for (const auto& b : bands) {
        CAPTURE(backend::precision_name(b.p));
        const auto got = loss_curve(b.p, steps);
        REQUIRE(got.size() == fp32.size());
        double worst = 0, mean_got = 0, mean_ref = 0;
        for (int s = 0; s < steps; ++s) {
            REQUIRE(std::isfinite(got[std::size_t(s)]));
            worst = std::max(worst, std::abs(got[std::size_t(s)] - fp32[std::size_t(s)]) / std::abs(fp32[std::size_t(s)]));
            if (s >= steps - 10) mean_got += got[std::size_t(s)], mean_ref += fp32[std::size_t(s)];
        }
        const double last10 = std::abs(mean_got - mean_ref) / std::abs(mean_ref);
        MESSAGE(std::string(backend::precision_name(b.p)) << " vs fp32 over " << steps << " steps: worst step " << worst
                                                        << ", last-10 mean " << last10 << " (first loss " << fp32.front()
                                                        << ", last " << fp32.back() << ")");
        CHECK(worst <= b.per_step);
        CHECK(last10 <= b.last10);
    }
    CHECK(fp32.back() < fp32.front());  // it trained
}
