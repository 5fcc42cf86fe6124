// bench/bench_encoder.cpp - issue 2's numbers: Eigen sgemm at ViT shapes (the ceiling), and the
// encoder forward+backward on the Tiny 32 px preset (D 192, 12 blocks, 3 heads, 64 tokens),
// batch 64, on the visible tokens only (16 + cls) and on all 64 tokens.
//
//   ./build/bench/bench_encoder --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "bench_common.hpp"
#include "lcmae/core/rng.hpp"
#include "lcmae/models/vit_encoder.hpp"

using namespace lcmae;

static void BM_sgemm(benchmark::State& st) {
    backend::Cpu ctx;
    const long M = st.range(0), N = st.range(1), K = st.range(2);
    std::vector<float> A(M * K, 0.5f), B(N * K, 0.25f), C(M * N);
    for (auto _ : st) {
        ops::gemm(ctx, false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, C.data(), N);
        benchmark::DoNotOptimize(C.data());
    }
    st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    st.counters["threads"] = ctx.threads();
}
BENCHMARK(BM_sgemm)->Args({4096, 768, 192})->Args({4096, 192, 768})->Args({1088, 576, 192})->Args({4160, 576, 192})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_encoder_fwd_bwd(benchmark::State& st) {
    backend::Cpu ctx;
    const auto dims = vit::Tiny32::dims();
    const long B = 64, K = st.range(0);
    ParamArena<float> P;
    models::VitEncoder<float> enc(P, dims, {.max_batch = B, .max_keep = K});
    P.allocate();
    enc.init(P, 0);
    std::vector<float> images(B * 3 * 32 * 32);
    Rng r(1, 1);
    for (auto& v : images) v = float(r.normal());
    std::vector<std::int64_t> keep(B * K);
    for (long b = 0; b < B; ++b)
        for (long k = 0; k < K; ++k) keep[b * K + k] = (k * 4 + b) % dims.tokens();
    if (K == dims.tokens())
        for (long b = 0; b < B; ++b)
            for (long k = 0; k < K; ++k) keep[b * K + k] = k;
    std::vector<float> dout(B * (1 + K) * dims.dim, 1e-3f);
    const double ceiling = bench::sgemm_ceiling_gflops(ctx);
    double seconds = 0;
    for (auto _ : st) {
        const auto t0 = std::chrono::steady_clock::now();
        enc.forward(ctx, P, images.data(), B, keep.data(), K);
        enc.backward(ctx, P, dout.data());
        seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    const double flops = enc.flops_forward(B, K) + enc.flops_backward(B, K);
    st.counters["fraction"] = seconds > 0 ? flops * double(st.iterations()) / seconds / 1e9 / ceiling : 0.0;
    st.counters["images/s"] = benchmark::Counter(double(B), benchmark::Counter::kIsIterationInvariantRate);
    st.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
    st.counters["GFLOP/img"] = flops / 1e9 / B;
    st.counters["ceiling_GFLOP/s"] = ceiling;
    st.counters["threads"] = ctx.threads();
}
BENCHMARK(BM_encoder_fwd_bwd)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

BENCHMARK_MAIN();
