// The backward pass's gradient reports (dist/grad_ready.hpp), which the data-parallel trainer uses
// to start the all-reduce of final gradients while earlier layers still compute theirs. If a report
// came too early, a bucket would be reduced before its last contribution and the ranks would train
// on a wrong mean - silently, since every rank makes the same mistake. So, for every model kind:
//   * each report's suffix [from, n) is snapshotted at the report and compared, bit for bit, with
//     the gradient at the end of the backward (nothing in it may change afterwards);
//   * reports never increase, the last is 0, there are some in between (the encoder's blocks),
//     and the gradient with a sink installed is bit-identical to the gradient without one.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "lcmae/dist/grad_ready.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "support/tiny_model.hpp"

using namespace lcmae;
using namespace lcmae::models;

namespace {

/// Snapshots the final suffix at every report.
struct RecordingSink final : dist::GradReady<backend::Cpu> {
    explicit RecordingSink(const ParamArena<double>& p) : P(&p) {}
    void ready_from(const backend::Cpu&, std::size_t from) override {
        reports.push_back(from);
        const auto& g = P->grads();
        snapshots.emplace_back(g.data() + from, g.data() + g.size());
    }
    const ParamArena<double>* P;
    std::vector<std::size_t> reports;
    std::vector<std::vector<double>> snapshots;
};

ModelSpec spec_for(const std::string& kind) {
    ModelSpec s = test::tiny_spec(kind == "MAE" ? GuidanceLoss::None : kind == "token-wise" ? GuidanceLoss::SmoothL1 : GuidanceLoss::Cosine, 2);
    s.encoder.depth = 3;  // several blocks, so reports fall between them
    if (kind == "LC-SimMIM") {
        s.baseline = Baseline::SimMim;
        s.views = ViewSchedule::Paper;
    }
    if (kind == "token-wise") s.guidance = GuidanceType::TokenWise;
    if (kind == "masked target") s.target_mask_ratio = 0.5;
    if (kind == "LC-MAE 5e") {
        s.guided = GuidedTokens::VisibleAndMask;
        s.decoder = DecoderDims{12, 1, 2};
    }
    return s;
}

void views(long B, std::vector<double>& v1, std::vector<double>& v2) {
    v1.resize(std::size_t(B * 64));
    v2.resize(std::size_t(B * 64));
    Rng r(5, 6);
    for (auto& x : v1) x = r.uniform(-1, 1);
    for (auto& x : v2) x = r.uniform(-1, 1);
}

}  // namespace

TEST_CASE("the backward reports final gradients only (GradReady), for every model kind") {
    backend::Cpu ctx(1);
    for (const char* kind : {"LC-MAE", "MAE", "LC-SimMIM", "token-wise", "masked target", "LC-MAE 5e"}) {
        CAPTURE(kind);
        const long B = 2;
        std::vector<double> v1, v2;
        views(B, v1, v2);
        // the same step twice: without a sink, then with one (after zeroing the gradient)
        LcmaeModel<double> m(spec_for(kind), 11);
        Rng r1(3, 4), r2(3, 4);
        m.forward_backward(ctx, v1.data(), v2.data(), B, r1);
        const std::vector<double> plain(m.params().grads().data(), m.params().grads().data() + m.params().grads().size());
        m.params().zero_grad();
        RecordingSink sink(m.params());
        m.set_grad_ready(&sink);
        m.forward_backward(ctx, v1.data(), v2.data(), B, r2);
        m.set_grad_ready(nullptr);
        const auto& g = m.params().grads();
        const std::size_t n = g.size();
        CHECK(std::equal(plain.begin(), plain.end(), g.data()));

        REQUIRE(!sink.reports.empty());
        CHECK(sink.reports.back() == 0);
        CHECK(std::is_sorted(sink.reports.rbegin(), sink.reports.rend()));  // non-increasing
        // decoder + heads, the final norm, one per block, and the rest: 3 + depth reports
        CHECK(sink.reports.size() == 3 + std::size_t(m.spec().encoder.depth));
        const auto inner = std::count_if(sink.reports.begin(), sink.reports.end(), [&](std::size_t f) { return f > 0 && f < n; });
        CHECK(inner >= m.spec().encoder.depth);
        for (std::size_t k = 0; k < sink.reports.size(); ++k) {
            const std::size_t from = sink.reports[k];
            CAPTURE(k);
            CAPTURE(from);
            REQUIRE(from <= n);
            // bit-equal: a value that changed after its report would make this fail
            CHECK(std::equal(sink.snapshots[k].begin(), sink.snapshots[k].end(), g.data() + from));
        }
    }
}
