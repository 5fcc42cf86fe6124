// backend::Cpu with Precision::Bf16 on a whole model: one forward_backward of the tiny LC-MAE and MAE
// models with bf16 GEMM operands against the same step in FP32, with the tolerances of the CUDA
// bf16 test (tests/cuda/test_cuda_model.cu, check_model_bf16): losses 2e-2 relative, the whole
// gradient arena 0.25 relative (Frobenius) and finite; and the arena must differ from FP32, so the
// test proves the bf16 kernel ran. Skipped, with a message, on a CPU without AVX512-BF16.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lcmae/core/rng.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "support/tiny_model.hpp"

using namespace lcmae;

namespace {

void check_step(const std::string& name, models::GuidanceLoss loss) {
    CAPTURE(name);
    backend::Cpu fp32(2), bf16(2, backend::Precision::Bf16);
    const auto spec = test::tiny_spec(loss, 4);
    models::LcmaeModel<float> a(fp32, spec, 7), b(bf16, spec, 7);
    const auto& e = spec.encoder;
    const long B = spec.max_batch, img = B * e.channels * e.image * e.image;
    std::vector<float> x1(img), x2(img);
    Rng r(3, 0);
    for (auto& v : x1) v = float(r.normal());
    for (auto& v : x2) v = float(r.normal());
    Rng ra(5, 0), rb(5, 0);
    const auto la = a.forward_backward(fp32, x1.data(), x2.data(), B, ra, 0.5);
    const auto lb = b.forward_backward(bf16, x1.data(), x2.data(), B, rb, 0.5);
    MESSAGE(name << ": total loss fp32 " << la.total << " bf16 " << lb.total);
    CHECK(std::abs(lb.mim - la.mim) <= 2e-2 * std::abs(la.mim));
    CHECK(std::abs(lb.gg - la.gg) <= 2e-2 * std::abs(la.gg));
    CHECK(std::abs(lb.total - la.total) <= 2e-2 * std::abs(la.total));
    const auto& ga = a.params().grads();
    const auto& gb = b.params().grads();
    REQUIRE(ga.size() == gb.size());
    double num = 0, den = 0;
    bool finite = true;
    for (std::size_t i = 0; i < ga.size(); ++i) {
        finite = finite && std::isfinite(gb[i]);
        num += (double(gb[i]) - ga[i]) * (double(gb[i]) - ga[i]);
        den += double(ga[i]) * ga[i];
    }
    const double rel = finite ? std::sqrt(num / std::max(den, 1e-300)) : INFINITY;
    MESSAGE(name << ": all gradients, relative error " << rel << " (tolerance 0.25)");
    CHECK(rel <= 0.25);
    CHECK(rel > 0);  // bf16 operands changed the gradients: the kernel ran
}

}  // namespace

TEST_CASE("cpu model, float with Precision::Bf16: one step near FP32 (losses 2e-2, gradients 0.25)") {
    if (!backend::cpu_has_avx512_bf16()) {
        MESSAGE("LCMAE_SKIP: this CPU has no AVX512-BF16; the bf16 model step is not tested here");
        return;
    }
    check_step("LC-MAE cosine (tiny)", models::GuidanceLoss::Cosine);
    check_step("MAE (tiny)", models::GuidanceLoss::None);
}
