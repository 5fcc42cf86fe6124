// The C++ models against PyTorch (tests/reference/make_fixtures.py, fixtures committed): the same
// initial weights, images and ids_shuffle / mask; losses at 3 steps, every step-0 gradient, and the
// online and target weights after 3 AdamW + EMA steps. `lcmae_cosine_visible_mask` is Table 5e
// (guided tokens "visible + mask": the decoded tokens are pooled, the target holds a decoder copy;
// decoder width 24, not D = 32). `lcmae_cosine_accum2` makes each of 2 steps
// from 2 accumulated micro-batches of 4 (loss scale 1/2, per-micro-batch BatchNorm statistics).
// In float32 and in double (where only the summation order differs from PyTorch's float64 run),
// at the measured tolerances above the TEST_CASEs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <string>
#include <vector>

#include "lcmae/io/checkpoint.hpp"
#include "lcmae/io/safetensors.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/ema.hpp"
#include "reference/fixture_cases.hpp"
#include "support/gradcheck.hpp"

using namespace lcmae;
using namespace lcmae::models;
using namespace lcmae::test::reference;

namespace {

bool is_qkv_bias(const std::string& name) {
    return name.size() > 14 && name.compare(name.size() - 14, 14, ".attn.qkv.bias") == 0;
}

template <class T>
double tensor_rel_error(const ParamArena<T>& P, const ParamEntry& e, const std::vector<double>& ref,
                        const std::vector<double>* zero_grad_ref, const std::vector<double>* init = nullptr) {
    const T* v = P.value(e.slot);
    const std::vector<double> got(v, v + e.slot.count);
    return weights_rel_error(got.data(), ref, zero_grad_ref, init);
}


// `micro` micro-batches per step: micro-batch m is samples [m B/micro, (m+1) B/micro) of the
// inputs, run at loss scale 1/micro into the same gradients; loss.* holds steps x micro values.
template <class T>
void run_fixture(const std::string& name, const ModelSpec& spec, double loss_tol, double grad_tol, double weight_tol,
                 int micro = 1) {
    CAPTURE(name);
    const io::SafetensorsFile f(fixture(name));
    LcmaeModel<T> model(spec, 0);
    auto& P = model.params();
    io::load_params(f, P, "init.", io::Strictness::IgnoreUnexpected);
    // every init.* tensor must have been used: the C++ model has exactly PyTorch's tensors
    long init_count = 0;
    for (const auto& t : f.tensors()) init_count += t.name.rfind("init.", 0) == 0;
    CHECK(init_count == long(P.entries().size()));
    if (model.has_target()) model.copy_online_to_target();

    const FixtureInputs<T> in(f, spec);
    const auto &view1 = in.view1, &view2 = in.view2, &mask = in.mask;
    const auto& ids = in.ids;
    const auto &loss_mim = in.loss_mim, &loss_gg = in.loss_gg, &loss_total = in.loss_total;
    const int steps = int(loss_total.size()) / micro;
    REQUIRE(steps * micro == long(loss_total.size()));
    std::vector<double> d_k(std::size_t(steps), 0.0);
    if (model.has_target()) d_k = f.read<double>("ref.ema_decay");  // 0.9, 0.925, 0.975 (3 steps)
    REQUIRE(long(d_k.size()) == steps);
    const long B = 8 / micro, L = 16, img = 3 * 16 * 16;
    double worst_loss = 0, worst_grad = 0, worst_weight = 0;  // measured, reported below

    backend::Cpu ctx(2);
    optim::AdamW<T> adamw(P, optim::AdamWConfig{0.9, 0.95, 1e-8, 0.05, 0.0});
    std::unique_ptr<optim::EmaUpdater<T>> ema;
    if (model.has_target()) ema = std::make_unique<optim::EmaUpdater<T>>(model.target_params(), P);
    for (int k = 0; k < steps; ++k) {
        CAPTURE(k);
        P.zero_grad();
        for (int m = 0; m < micro; ++m) {
            CAPTURE(m);
            const double scale = 1.0 / micro;
            const StepLosses l =
                spec.baseline == Baseline::Mae
                    ? model.forward_backward_mae(ctx, view1.data() + m * B * img, view2.data() + m * B * img, B,
                                                 ids.data() + m * B * L, scale)
                    : model.forward_backward_simmim(ctx, view1.data() + m * B * img, view2.data() + m * B * img, B,
                                                    mask.data() + m * B * L, scale);
            const std::size_t at = std::size_t(k * micro + m);
            const double tol = (k == 0 || !std::is_same_v<T, float>) ? loss_tol : std::max(loss_tol, kFloatLaterStepLossTol);
            CHECK(l.mim == doctest::Approx(loss_mim[at]).epsilon(tol));
            CHECK(l.gg == doctest::Approx(loss_gg[at]).epsilon(tol));
            CHECK(l.total == doctest::Approx(loss_total[at]).epsilon(tol));
            worst_loss = std::max(worst_loss, std::abs(l.total - loss_total[at]) / std::abs(loss_total[at]));
        }
        if (k == 0) {
            for (const auto& e : P.entries()) {
                if (e.kind != EntryKind::Parameter) continue;
                const auto ref = f.read<double>("grad." + e.name);
                std::vector<double> got(e.slot.count);
                for (std::size_t i = 0; i < e.slot.count; ++i) got[i] = double(P.grad(e.slot)[i]);
                const double err = test::rel_error(got, ref);
                INFO("gradient of " << e.name << " relative error " << err);
                CHECK(err <= grad_tol);
                worst_grad = std::max(worst_grad, err);
                if (is_qkv_bias(e.name)) {  // the reference's key-bias gradient is rounding noise
                    const std::size_t D = ref.size() / 3;
                    double key = 0, all = 0;
                    for (std::size_t i = 0; i < ref.size(); ++i) {
                        all += ref[i] * ref[i];
                        if (i >= D && i < 2 * D) key += ref[i] * ref[i];
                    }
                    CHECK(std::sqrt(key) <= 1e-10 * std::sqrt(all));
                }
            }
        }
        adamw.step(1e-3);
        if (ema) ema->update(d_k[k]);
    }
    const bool skip_zero_grads = std::is_same_v<T, float>;
    auto grad_ref = [&](const ParamEntry& e) -> std::unique_ptr<std::vector<double>> {
        if (!skip_zero_grads || e.kind != EntryKind::Parameter) return nullptr;
        return std::make_unique<std::vector<double>>(f.read<double>("grad." + e.name));
    };
    for (const auto& e : P.entries()) {
        const auto init = f.read<double>("init." + e.name);
        const auto g = grad_ref(e);
        const double err = tensor_rel_error(P, e, f.read<double>("final." + e.name), g.get(), &init);
        INFO("final " << e.name << " relative error " << err);
        CHECK(err <= weight_tol);
        worst_weight = std::max(worst_weight, err);
    }
    if (model.has_target())
        for (const auto& e : model.target_params().entries()) {
            const auto g = grad_ref(e);
            const double err = tensor_rel_error(model.target_params(), e, f.read<double>("final.target." + e.name), g.get());
            INFO("final target " << e.name << " relative error " << err);
            CHECK(err <= weight_tol);
            worst_weight = std::max(worst_weight, err);
        }
    const std::string type = std::is_same_v<T, float> ? "float" : "double";
    MESSAGE(name << " " << type << ": worst relative error: loss " << worst_loss
                 << ", gradient " << worst_grad << ", weights " << worst_weight);
}



}  // namespace

// Tolerances (loss relative; gradients and weights ||diff|| / ||ref|| per tensor), a small margin
// above the worst measured (each run prints its worst values). Measured with GCC 12 on AMD EPYC,
// builds with -march=native (AVX-512), x86-64-v3 and x86-64-v2, against the committed files and
// against sets regenerated with torch's AVX2 and non-vectorised kernels (tests/reference/README.md):
//   float:  loss 8.9e-8, gradients 2.5e-6, weights 7.7e-6 (3 steps) and 2.4e-5 (accum2); with OpenBLAS
//           as the GEMM provider (same machine, -march=native): losses 4.2e-7 after step 0
//           (kFloatLaterStepLossTol above), gradients 3.4e-6, weights 1.0e-5
//           -> tested at 2e-7, 1e-5, 2e-5 (3 steps) and 5e-5 (accum2)
//   double: loss 1.4e-15, gradients 6.2e-15, weights 1.25e-10 -> tested at 1e-14, 2e-14, 3e-10
// Weights after AdamW are the loose ones: m / (sqrt(v) + eps) turns the rounding noise of small
// gradients into steps of up to lr, and in float the accumulation fixture's 4-sample BatchNorm
// batches make that noise larger (its worst: blocks.0.mlp.fc1.bias, 2.0e-5 in the x86-64-v2 build).
// The Table 5e fixture (lcmae_cosine_visible_mask; the same three builds, committed file only):
//   float loss 8.9e-8, gradients 3.6e-6, weights 2.9e-6; double loss 4.1e-16, gradients 1.34e-14
//   (head.0.weight, x86-64-v2: its guidance runs through the decoder and both encoders' paths,
//   and the errors of the other tensors lie at 1.1e-14 to 1.3e-14), weights 1.18e-10.
constexpr double kFloatTol[3] = {2e-7, 1e-5, 2e-5}, kDoubleTol[3] = {1e-14, 2e-14, 3e-10};
constexpr double kFloatAccumWeightTol = 5e-5;

TEST_CASE("PyTorch reference: float32 within the measured tolerances") {
    for (const auto& c : kCases)
        run_fixture<float>(c.file, fixture_spec(c.loss, c.views, c.baseline, c.guided), kFloatTol[0], kFloatTol[1], kFloatTol[2]);
}

TEST_CASE("PyTorch reference: double agrees to near machine precision") {
    for (const auto& c : kCases)
        run_fixture<double>(c.file, fixture_spec(c.loss, c.views, c.baseline, c.guided), kDoubleTol[0], kDoubleTol[1], kDoubleTol[2]);
}

TEST_CASE("PyTorch reference: LC-MAE with 2 accumulated micro-batches per step, float32 and double") {
    const auto spec = fixture_spec(GuidanceLoss::Cosine, ViewSchedule::Symmetric, Baseline::Mae);
    run_fixture<float>("lcmae_cosine_accum2", spec, kFloatTol[0], kFloatTol[1], kFloatAccumWeightTol, 2);
    run_fixture<double>("lcmae_cosine_accum2", spec, kDoubleTol[0], kDoubleTol[1], kDoubleTol[2], 2);
}
