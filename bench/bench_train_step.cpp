// bench/bench_train_step.cpp - issue 3's number: one full pre-training step on the Tiny 32 px preset
// (D 192, 12 blocks, 3 heads, 64 tokens, decoder 128 x 4 blocks x 4 heads, head hidden 4096,
// projector 2 / predictor 2 layers with BatchNorm), batch 64 per view, on the CPU backend.
//
//   LC-MAE step (Symmetric views): zero_grad; online encoder on both masked views (one 2B pass over
//   16 + cls tokens), MAE decoder + norm-pix MSE, target encoder on both full views (2B x 65
//   tokens, eval, no grad), projector/predictor per view, target projector, cosine loss, all
//   backward passes; AdamW step over the online arena; EMA update of the target (params + BN
//   buffers).  Plain MAE step: zero_grad; encoder on one masked view; decoder; backward; AdamW.
//
// GFLOP/s uses models::LcmaeModel::flops_step(B): the analytic count of the GEMMs and attention
// products (QK^T, AV) of every forward and backward pass, 2 FLOP per multiply-add; backward counted
// as 2x forward for trained layers (patch-embed: weight gradient only), the target forward once.
// Element-wise work (LayerNorm, GELU, softmax, BatchNorm, losses), AdamW and EMA are NOT counted,
// so GFLOP/s is "useful GEMM work per second" and its fraction of the sgemm ceiling is the figure
// of merit. The ceiling is sgemm at (4096 x 768 x 192) through the same provider (Eigen or
// OpenBLAS), measured in the same run.
//
// peak_RSS_MiB is the process's VmHWM (/proc/self/status) after the run: high-water mark of resident
// memory, including the benchmark library, both models, optimiser state and activations.
//
//   ./build-bench/bench/bench_train_step --benchmark_counters_tabular=true [--precision=fp32|bf16]
//
// --precision=bf16 runs the step with backend::Cpu's Precision::Bf16 (bf16 GEMM operands, FP32
// accumulation; issue 13 item 3); the ceiling stays the provider's FP32 sgemm, so the fraction compares both
// precisions against the same number.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/models/lcmae_model.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/ema.hpp"

using namespace lcmae;

namespace {

backend::Precision g_precision = backend::Precision::Fp32;

double vm_hwm_mib() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    double kib = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atof(line + 6);
    std::fclose(f);
    return kib / 1024.0;
}

models::ModelSpec tiny_spec(models::GuidanceLoss loss) {
    models::ModelSpec s;
    s.encoder = vit::Tiny32::dims();
    s.decoder = {128, 4, 4};
    s.head_hidden = 4096;
    s.projector_depth = 2;
    s.predictor_depth = 2;
    s.loss = loss;
    s.views = models::ViewSchedule::Symmetric;
    s.max_batch = 64;
    return s;
}

void run_step(benchmark::State& st, models::GuidanceLoss loss) {
    backend::Cpu ctx;
    // arg 0: the GEMM provider (0 Eigen, 1 OpenBLAS where built in: cpu/gemm_provider.hpp)
    ctx.set_gemm_provider(st.range(0) ? backend::cpu::GemmProvider::OpenBlas : backend::cpu::GemmProvider::Eigen);
    const double ceiling = bench::sgemm_ceiling_gflops(ctx);  // FP32, before the precision is set
    ctx.set_precision(g_precision);  // Bf16: float GEMMs run the bf16 kernel whatever the provider
    st.SetLabel(std::string(backend::cpu::gemm_provider_name(ctx.gemm_provider())) +
                (g_precision == backend::Precision::Bf16 ? " bf16" : ""));
    const long B = 64;
    const auto spec = tiny_spec(loss);
    models::LcmaeModel<float> model(spec, 0);
    optim::AdamW<float> adamw(model.params());
    std::unique_ptr<optim::EmaUpdater<float>> ema;
    if (model.has_target()) ema = std::make_unique<optim::EmaUpdater<float>>(model.target_params(), model.params());
    const long img = spec.encoder.channels * spec.encoder.image * spec.encoder.image;
    std::vector<float> v1(B * img), v2(B * img);
    Rng r(1, 1);
    for (auto& v : v1) v = float(r.normal());
    for (auto& v : v2) v = float(r.normal());
    Rng rng(7, 0);
    double last_loss = 0;
    for (auto _ : st) {
        model.params().zero_grad();
        const auto l = model.forward_backward(ctx, v1.data(), model.has_target() ? v2.data() : nullptr, B, rng);
        adamw.step(1.5e-4);
        if (ema) ema->update(0.996);
        last_loss = l.total;
    }
    const double flops = model.flops_step(B);
    st.counters["images/s"] = benchmark::Counter(double(B), benchmark::Counter::kIsIterationInvariantRate);
    st.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    st.counters["GFLOP/img"] = flops / 1e9 / B;
    st.counters["ceiling_GFLOP/s"] = ceiling;
    st.counters["threads"] = ctx.threads();
    st.counters["bf16"] = g_precision == backend::Precision::Bf16;
    st.counters["act_MiB"] = double(model.activation_bytes()) / (1024.0 * 1024.0);
    st.counters["peak_RSS_MiB"] = vm_hwm_mib();
    st.counters["loss"] = last_loss;
}

}  // namespace

// fraction of ceiling = GFLOP/s / ceiling_GFLOP/s (printed by compare_pytorch.py and in README.md)
static void BM_lcmae_step(benchmark::State& st) { run_step(st, models::GuidanceLoss::Cosine); }
static void BM_mae_step(benchmark::State& st) { run_step(st, models::GuidanceLoss::None); }
// Every provider this build has, the default (OpenBLAS where built in) first; the Eigen row is
// the header-only build's number, measured in the same process.
static void providers(benchmark::internal::Benchmark* b) {
    if (backend::cpu::openblas_available) b->Arg(1);
    b->Arg(0);
    b->ArgName("openblas");
}
BENCHMARK(BM_lcmae_step)->Apply(providers)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(4.0);
BENCHMARK(BM_mae_step)->Apply(providers)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(4.0);

int main(int argc, char** argv) {
    // our one flag, taken out before Google Benchmark parses the rest
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--precision=bf16") g_precision = backend::Precision::Bf16;
        else if (a == "--precision=fp32") g_precision = backend::Precision::Fp32;
        else argv[out++] = argv[i];
    }
    argc = out;
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("precision", backend::precision_name(g_precision));
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
