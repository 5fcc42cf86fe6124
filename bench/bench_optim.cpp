// Benchmarks of the per-step optimiser passes over a ViT-shaped parameter arena: AdamW step (with
// and without gradient clipping), LARS step, EMA update, global grad norm. Reported as arena
// elements per second and bytes moved per second (AdamW reads p, g, m, v and writes p, m, v:
// 28 B per float element; EMA reads two and writes one value: 12 B), so they compare directly with
// the machine's memory bandwidth, the ceiling of these passes.
//   ./bench_optim --benchmark_filter=AdamW
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>

#include "lcmae/core/arena.hpp"
#include "lcmae/optim/adamw.hpp"
#include "lcmae/optim/ema.hpp"
#include "lcmae/optim/grad_norm.hpp"
#include "lcmae/optim/lars.hpp"

namespace {

using lcmae::ParamArena;
using lcmae::Shape;

// The parameters of a ViT encoder of width D and `depth` blocks plus LC-MAE's projector
// (D -> 4096 -> D, with BatchNorm buffers), under timm names.
void build_vit(ParamArena<float>& a, std::int64_t D, int depth) {
    a.add("cls_token", Shape{1, 1, D});
    a.add("patch_embed.proj.weight", Shape{D, 3, 16, 16});
    a.add("patch_embed.proj.bias", Shape{D});
    for (int k = 0; k < depth; ++k) {
        const std::string b = "blocks." + std::to_string(k) + ".";
        a.add(b + "norm1.weight", Shape{D});
        a.add(b + "norm1.bias", Shape{D});
        a.add(b + "attn.qkv.weight", Shape{3 * D, D});
        a.add(b + "attn.qkv.bias", Shape{3 * D});
        a.add(b + "attn.proj.weight", Shape{D, D});
        a.add(b + "attn.proj.bias", Shape{D});
        a.add(b + "norm2.weight", Shape{D});
        a.add(b + "norm2.bias", Shape{D});
        a.add(b + "mlp.fc1.weight", Shape{4 * D, D});
        a.add(b + "mlp.fc1.bias", Shape{4 * D});
        a.add(b + "mlp.fc2.weight", Shape{D, 4 * D});
        a.add(b + "mlp.fc2.bias", Shape{D});
    }
    a.add("norm.weight", Shape{D});
    a.add("norm.bias", Shape{D});
    a.add("head.0.weight", Shape{4096, D});
    a.add("head.1.weight", Shape{4096});
    a.add("head.1.bias", Shape{4096});
    a.add_buffer("head.1.running_mean", Shape{4096});
    a.add_buffer("head.1.running_var", Shape{4096});
    a.add("head.3.weight", Shape{D, 4096});
    a.allocate();
    for (const auto& e : a.entries())
        for (std::size_t i = 0; i < e.slot.count; ++i) {
            a.value(e.slot)[i] = 0.02f * std::sin(0.001f * float(i));
            a.grad(e.slot)[i] = 1e-3f * std::cos(0.001f * float(i));
        }
}

void report(benchmark::State& state, std::size_t elements, std::size_t bytes_per_element) {
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * elements));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * elements * bytes_per_element));
    state.counters["params_M"] = double(elements) / 1e6;
}

void BM_AdamW(benchmark::State& state) {
    ParamArena<float> a;
    build_vit(a, state.range(0), 12);
    lcmae::optim::AdamWConfig cfg;
    cfg.max_grad_norm = state.range(1) ? 1.0 : 0.0;
    lcmae::optim::AdamW<float> opt(a, cfg);
    state.counters["segments"] = double(opt.segments().size());
    for (auto _ : state) benchmark::DoNotOptimize(opt.step(1e-4, 0.5));
    report(state, a.parameter_count(), 28);
}
BENCHMARK(BM_AdamW)->ArgsProduct({{192, 384, 768}, {0, 1}})->ArgNames({"D", "clip"})->Unit(benchmark::kMillisecond);

void BM_Lars(benchmark::State& state) {
    ParamArena<float> a;
    build_vit(a, state.range(0), 12);
    lcmae::optim::Lars<float> opt(a);
    for (auto _ : state) opt.step(0.1);
    report(state, a.parameter_count(), 20);
}
BENCHMARK(BM_Lars)->Arg(192)->Arg(768)->ArgName("D")->Unit(benchmark::kMillisecond);

void BM_EmaUpdate(benchmark::State& state) {
    ParamArena<float> online, target;
    build_vit(online, state.range(0), 12);
    build_vit(target, state.range(0), 12);
    lcmae::optim::EmaUpdater<float> ema(target, online);
    state.counters["runs"] = double(ema.runs().size());
    for (auto _ : state) ema.update(0.996);
    report(state, target.value_count(), 12);
}
BENCHMARK(BM_EmaUpdate)->Arg(192)->Arg(768)->ArgName("D")->Unit(benchmark::kMillisecond);

void BM_GradNorm(benchmark::State& state) {
    ParamArena<float> a;
    build_vit(a, state.range(0), 12);
    for (auto _ : state) benchmark::DoNotOptimize(lcmae::optim::global_grad_norm(a));
    report(state, a.parameter_count(), 4);
}
BENCHMARK(BM_GradNorm)->Arg(192)->Arg(768)->ArgName("D")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
