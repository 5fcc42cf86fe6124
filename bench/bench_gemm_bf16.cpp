// bench/bench_gemm_bf16.cpp - issue 13 item 3: the CPU GEMM in FP32 (Eigen, the default) against
// Precision::Bf16 (own AVX512-BF16 kernel, cpu/gemm_bf16.hpp) on the shapes of the Tiny 32 px step:
// the linear layers C(M,N) = X(M,K) W(N,K)^T at 4096x768x192 (qkv/fc1-like), 4096x192x768 (fc2-like),
// 1088x576x192 (target-encoder qkv) and attention's 65x65x64 (QK^T of one head, batched over 192 heads
// as gemm_batched runs it). GFLOP/s counts 2 FLOP per multiply-add. Threads: OMP_NUM_THREADS.
//
//   OMP_NUM_THREADS=1 ./build/bench/bench_gemm_bf16 --benchmark_repetitions=5 \
//       --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// On a CPU without AVX512-BF16 the bf16 rows are skipped with an error message.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "lcmae/backend/cpu/ops_cpu.hpp"

using namespace lcmae;

namespace {

struct Shape { long M, N, K, batch; };
constexpr Shape kShapes[] = {{4096, 768, 192, 1}, {4096, 192, 768, 1}, {1088, 576, 192, 1}, {65, 65, 64, 192}};

void BM_gemm(benchmark::State& st) {
    const Shape s = kShapes[st.range(0)];
    const bool bf16 = st.range(1) != 0;
    if (bf16 && !backend::cpu_has_avx512_bf16()) {
        st.SkipWithError("this CPU has no AVX512-BF16");
        return;
    }
    backend::Cpu ctx;
    ctx.set_precision(bf16 ? backend::Precision::Bf16 : backend::Precision::Fp32);
    std::mt19937 g(1);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    std::vector<float> A(s.batch * s.M * s.K), B(s.batch * s.N * s.K), C(s.batch * s.M * s.N);
    for (auto& x : A) x = d(g);
    for (auto& x : B) x = d(g);
    for (auto _ : st) {
        if (s.batch == 1)
            ops::gemm(ctx, false, true, s.M, s.N, s.K, 1.f, A.data(), s.K, B.data(), s.K, 0.f, C.data(), s.N);
        else
            ops::gemm_batched(ctx, false, true, s.M, s.N, s.K, 1.f, A.data(), s.K, s.M * s.K, B.data(), s.K,
                              s.N * s.K, 0.f, C.data(), s.N, s.M * s.N, s.batch);
        benchmark::DoNotOptimize(C.data());
    }
    st.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.M * s.N * s.K * s.batch / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
    st.counters["threads"] = ctx.threads();
    st.SetLabel(std::to_string(s.M) + "x" + std::to_string(s.N) + "x" + std::to_string(s.K) +
                (s.batch > 1 ? " x" + std::to_string(s.batch) : std::string()) + (bf16 ? " bf16" : " fp32"));
}

}  // namespace

BENCHMARK(BM_gemm)->ArgsProduct({{0, 1, 2, 3}, {0, 1}})->ArgNames({"shape", "bf16"})->UseRealTime()->MinTime(0.5);

BENCHMARK_MAIN();
