// backend::Strict runs the whole model: LC-MAE (every guidance loss, both view schedules, token-wise
// guidance, Table 5c/5e rows), MAE and LC-SimMIM training steps give losses, gradients and
// running statistics bit-identical to backend::Cpu. Strict's handles do not convert to T*, so
// this file compiling at all proves generic code never touches tensor memory outside an op; the
// equality proves no op was skipped or replaced by a host shortcut.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/train/trainer.hpp"
#include "support/gradcheck.hpp"
#include "support/tiny_model.hpp"
// Declared after the models on purpose: generic code must find Strict's ops through ADL at the
// point of instantiation (backend/tag.hpp).
#include "support/strict_backend.hpp"

using namespace lcmae;
using namespace lcmae::models;

namespace {

ModelSpec tiny(GuidanceLoss loss, long max_batch = 4) { return test::tiny_spec(loss, max_batch); }

template <class T, class B>
std::vector<T> host_copy(const B& ctx, const dbuffer<B, T>& buf) {
    std::vector<T> h(buf.size());
    download(ctx, long(buf.size()), dptr<B, const T>(buf.data()), h.data());
    return h;
}

// Two steps (so the second sees the first's BatchNorm running statistics) with the same masks on
// both backends; everything must match bit for bit.
template <class T>
void check_same(const ModelSpec& spec) {
    backend::Cpu cpu(2);
    backend::Strict strict(2);
    LcmaeModel<T> a(spec, 7);
    LcmaeModel<T, backend::Strict> b(strict, spec, 7);
    const auto& e = spec.encoder;
    const long B = spec.max_batch, img = B * e.channels * e.image * e.image;
    for (int step = 0; step < 2; ++step) {
        const auto v1 = test::random_vector(img, 100 + step), v2 = test::random_vector(img, 200 + step);
        std::vector<T> x1(v1.begin(), v1.end()), x2(v2.begin(), v2.end());
        Rng ra(5, std::uint64_t(step)), rb(5, std::uint64_t(step));
        const StepLosses la = a.forward_backward(cpu, x1.data(), x2.data(), B, ra, 0.5);
        const StepLosses lb = b.forward_backward(strict, x1.data(), x2.data(), B, rb, 0.5);
        CHECK(la.mim == lb.mim);
        CHECK(la.gg == lb.gg);
        CHECK(la.total == lb.total);
    }
    const auto ga = host_copy<T>(cpu, a.params().grads()), gb = host_copy<T>(strict, b.params().grads());
    REQUIRE(ga.size() == gb.size());
    CHECK(std::memcmp(ga.data(), gb.data(), sizeof(T) * ga.size()) == 0);
    const auto va = host_copy<T>(cpu, a.params().values()), vb = host_copy<T>(strict, b.params().values());
    CHECK(std::memcmp(va.data(), vb.data(), sizeof(T) * va.size()) == 0);  // BN running statistics too
    if (a.has_target()) {
        const auto ta = host_copy<T>(cpu, a.target_params().values());
        const auto tb = host_copy<T>(strict, b.target_params().values());
        CHECK(std::memcmp(ta.data(), tb.data(), sizeof(T) * ta.size()) == 0);
    }
    // the losses are real numbers, not a zero both backends agree on
    Rng r(9, 0);
    const auto v = test::random_vector(img, 300);
    std::vector<T> x(v.begin(), v.end());
    CHECK(a.forward_backward(cpu, x.data(), x.data(), B, r, 1.0).mim > 0);
}

}  // namespace

TEST_CASE("Strict equals Cpu: MAE") { check_same<float>(tiny(GuidanceLoss::None)); }

TEST_CASE("Strict equals Cpu: LC-MAE under each guidance loss, float and double") {
    for (auto loss : {GuidanceLoss::Cosine, GuidanceLoss::InfoNCE, GuidanceLoss::SmoothL1}) {
        CAPTURE(int(loss));
        check_same<float>(tiny(loss));
        check_same<double>(tiny(loss));
    }
}

TEST_CASE("Strict equals Cpu: LC-MAE rows (paper views, token-wise, both, cls pooling, 5c, 5e)") {
    auto s = tiny(GuidanceLoss::Cosine);
    s.views = ViewSchedule::Paper;
    check_same<float>(s);
    s = tiny(GuidanceLoss::Cosine);
    s.guidance = GuidanceType::TokenWise;
    check_same<float>(s);
    s.guidance = GuidanceType::Both;
    check_same<float>(s);
    s = tiny(GuidanceLoss::Cosine);
    s.pool = PoolTokens::Cls;
    check_same<float>(s);
    s = tiny(GuidanceLoss::Cosine);
    s.target_mask_ratio = 0.5;
    check_same<float>(s);
    s = tiny(GuidanceLoss::Cosine);
    s.guided = GuidedTokens::VisibleAndMask;
    check_same<float>(s);
}

TEST_CASE("Strict equals Cpu: LC-SimMIM") {
    auto s = tiny(GuidanceLoss::Cosine);
    s.baseline = Baseline::SimMim;
    s.views = ViewSchedule::Paper;
    s.simmim_block = 2;
    check_same<float>(s);
    check_same<double>(s);
}

namespace {
template <class B>
std::vector<float> run_trainer(const B& ctx, train::Trainer<float, B>& tr, int from, int to) {
    std::vector<float> losses;
    for (int i = from; i < to; ++i) {
        const auto v1 = test::random_vector(4 * 64, 1000 + i), v2 = test::random_vector(4 * 64, 2000 + i);
        std::vector<float> x1(v1.begin(), v1.end()), x2(v2.begin(), v2.end());
        losses.push_back(float(tr.micro_batch(ctx, x1.data(), x2.data(), 4).losses.total));
        if ((i + 1) % 3 == 0) tr.end_epoch();  // 3 micro-batches per epoch
    }
    return losses;
}
}  // namespace

TEST_CASE("Strict equals Cpu: trainer with accumulation, save and exact resume across an epoch boundary") {
    backend::Cpu cpu(2);
    backend::Strict strict(2);
    const ModelSpec spec = tiny(GuidanceLoss::Cosine);
    train::TrainConfig tc;
    tc.batch = 4;
    tc.accumulation = 2;
    tc.epochs = 4;
    tc.warmup_epochs = 1;
    tc.blr = 1e-2;
    // uninterrupted, on the CPU
    LcmaeModel<float> a(spec, 3);
    train::Trainer<float> ta(a, tc, 3);
    const auto la = run_trainer(cpu, ta, 0, 8);
    // on Strict: 4 micro-batches (past the epoch boundary, mid accumulation cycle), save, resume in
    // a fresh model and trainer, 4 more
    const auto dir = std::filesystem::temp_directory_path() / "lcmae_strict_resume";
    std::filesystem::remove_all(dir);
    std::vector<float> lb;
    {
        LcmaeModel<float, backend::Strict> b(strict, spec, 3);
        train::Trainer<float, backend::Strict> tb(strict, b, tc, 3);
        lb = run_trainer(strict, tb, 0, 4);
        tb.save(strict, dir);
    }
    LcmaeModel<float, backend::Strict> c(strict, spec, 99);  // other init: everything must come from the files
    train::Trainer<float, backend::Strict> tcn(strict, c, tc, 3);
    tcn.load(strict, dir);
    CHECK(tcn.epoch() == 1);
    CHECK(tcn.iteration() == 1);
    const auto rest = run_trainer(strict, tcn, 4, 8);
    lb.insert(lb.end(), rest.begin(), rest.end());
    REQUIRE(la.size() == lb.size());
    for (std::size_t i = 0; i < la.size(); ++i) CHECK(la[i] == lb[i]);
    const auto va = host_copy<float>(cpu, a.params().values()), vc = host_copy<float>(strict, c.params().values());
    CHECK(std::memcmp(va.data(), vc.data(), sizeof(float) * va.size()) == 0);
    const auto ta_ = host_copy<float>(cpu, a.target_params().values()), tc_ = host_copy<float>(strict, c.target_params().values());
    CHECK(std::memcmp(ta_.data(), tc_.data(), sizeof(float) * ta_.size()) == 0);
    std::filesystem::remove_all(dir);
}
