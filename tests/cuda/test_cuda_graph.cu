// CUDA graphs of the step's device work (backend/cuda/graph.cuh): with graphs on, the model records
// its forward + backward once per key and replays it; training must give the same bits as without
// (same kernels, same order, same memory), and the replays must really have happened. Not yet run
// on a GPU (graphs are off by default until it has); skips without one.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "lcmae/backend/cuda.cuh"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/train/trainer.hpp"

using namespace lcmae;
using namespace lcmae::models;
using backend::Cuda;

namespace {

ModelSpec small_spec(bool guided) {
    ModelSpec s;
    s.encoder = vit::VitDims{32, 2, 2, 4, 16, 3, 4};
    s.decoder = DecoderDims{32, 1, 2};
    s.head_hidden = 64;
    s.loss = guided ? GuidanceLoss::Cosine : GuidanceLoss::None;
    s.max_batch = 4;
    return s;
}

struct Run {
    std::vector<double> losses;
    std::vector<float> weights, target;
    long launches = 0;
};

Run train_run(bool graphs, const ModelSpec& spec, int accumulation) {
    Cuda gpu(0, backend::Precision::Fp32);
    gpu.set_graphs(graphs);
    LcmaeModel<float, Cuda> model(gpu, spec, 9);
    train::TrainConfig c;
    c.batch = 4;
    c.accumulation = accumulation;
    c.epochs = 1;
    c.warmup_epochs = 0.2;
    c.blr = 0.05;
    c.max_grad_norm = 1.0;
    c.seed = 2;
    const int micro = 8;
    train::Trainer<float, Cuda> t(gpu, model, c, micro);
    Run r;
    const long n = 4 * 3 * 16 * 16;
    for (int m = 0; m < micro; ++m) {
        Rng g(31, std::uint64_t(m));
        std::vector<float> v1(static_cast<std::size_t>(n)), v2(static_cast<std::size_t>(n));
        for (auto& x : v1) x = float(g.uniform(-1, 1));
        for (auto& x : v2) x = float(g.uniform(-1, 1));
        r.losses.push_back(t.micro_batch(gpu, v1.data(), v2.data(), 4).losses.total);
    }
    gpu.check_errors();
    r.weights.resize(model.params().values().size());
    ops::download(gpu, long(r.weights.size()), model.params().values().data(), r.weights.data());
    if (model.has_target()) {
        r.target.resize(model.target_params().values().size());
        ops::download(gpu, long(r.target.size()), model.target_params().values().data(), r.target.data());
    }
    r.launches = model.graph_launches();
    return r;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("cuda graphs: replayed steps train to the same bits as eager ones (LC-MAE, MAE; accumulation 1 and 2)") {
    LCMAE_SKIP_WITHOUT_CUDA();
    for (const bool guided : {true, false})
        for (const int accumulation : {1, 2}) {
            CAPTURE(guided);
            CAPTURE(accumulation);
            const auto spec = small_spec(guided);
            const Run eager = train_run(false, spec, accumulation), replay = train_run(true, spec, accumulation);
            MESSAGE((guided ? "LC-MAE" : "MAE") << ", accumulation " << accumulation << ": " << replay.launches
                                                << " graph launches in 8 micro-batches");
            CHECK(eager.launches == 0);
            // per key: 1 eager warm-up, 1 recorded (launched), then launches: 8 micro-batches of one
            // loss scale give 7 launches
            CHECK(replay.launches == 7);
            CHECK(eager.losses == replay.losses);
            CHECK(same_bits(eager.weights, replay.weights));
            CHECK(same_bits(eager.target, replay.target));
        }
}

TEST_CASE("cuda graphs: LCMAE_CUDA_GRAPH is read and checked") {
    LCMAE_SKIP_WITHOUT_CUDA();
    ::setenv("LCMAE_CUDA_GRAPH", "1", 1);
    CHECK(Cuda(0).graphs());
    ::setenv("LCMAE_CUDA_GRAPH", "yes", 1);
    CHECK_THROWS_WITH(Cuda(0), doctest::Contains("LCMAE_CUDA_GRAPH must be 0 or 1, got 'yes'"));
    ::unsetenv("LCMAE_CUDA_GRAPH");
    CHECK_FALSE(Cuda(0).graphs());
}
