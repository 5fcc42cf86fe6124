// bench/bench_gemm_provider.cpp - issue 13, item 1: the CPU GEMM providers (Eigen's kernel, and
// OpenBLAS where the build has lcmae::openblas) on every shape class of the Tiny 32 px LC-MAE step
// (batch 64 per view), through ops::gemm exactly as the layers call it, at 1 and 2 threads.
//
// A Linear layer computes Y = X W^T (NT), its input gradient dX = dY W (NN) and its weight
// gradient dW = dY^T X (TN); attention multiplies per head Q K^T (NT) and P V (NN). Rows:
//   enc    online encoder, both masked views:  2B x (16 + cls) = 2176 tokens, D 192
//   tgt    target encoder, both full views:    2B x 65 = 8320 tokens (forward only)
//   dec    decoder, one view:                  B x 65 = 4160 tokens, 128 wide
//   head   projector / predictor layers:       2B = 128 rows, hidden 4096
//   att17 / att65   one head's products (head dim 64) over 17 and 65 tokens
// and the whole attention op (ops::attention_forward / _backward, which run those products per
// (sequence, head) through ops::gemm): 128 sequences x 3 heads of 17 tokens (the online encoder's
// two masked views, forward and backward) and of 65 tokens (the target's two full views, forward).
//
//   ./build/bench/bench_gemm_provider --benchmark_counters_tabular=true
// Counter GFLOP/s = 2 M N K per second. Compare providers only within one run (bench/README.md).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "lcmae/backend/cpu/ops_cpu.hpp"

using namespace lcmae;

namespace {

struct Shape {
    const char* name;
    bool ta, tb;
    long M, N, K;
};

const std::vector<Shape>& shapes() {
    static const std::vector<Shape> s{
        {"enc_qkv_fwd", false, true, 2176, 576, 192},   {"enc_fc1_fwd", false, true, 2176, 768, 192},
        {"enc_fc2_fwd", false, true, 2176, 192, 768},   {"enc_fc1_dX", false, false, 2176, 192, 768},
        {"enc_fc1_dW", true, false, 768, 192, 2176},    {"enc_fc2_dW", true, false, 192, 768, 2176},
        {"tgt_qkv_fwd", false, true, 8320, 576, 192},   {"tgt_fc1_fwd", false, true, 8320, 768, 192},
        {"tgt_fc2_fwd", false, true, 8320, 192, 768},   {"dec_fc1_fwd", false, true, 4160, 512, 128},
        {"dec_fc1_dW", true, false, 512, 128, 4160},    {"head_fc1_fwd", false, true, 128, 4096, 192},
        {"head_fc2_dX", false, false, 128, 4096, 192},  {"head_fc1_dW", true, false, 4096, 192, 128},
        {"att17_qk", false, true, 17, 17, 64},          {"att17_pv", false, false, 17, 64, 17},
        {"att65_qk", false, true, 65, 65, 64},          {"att65_pv", false, false, 65, 64, 65},
    };
    return s;
}

// args: shape index, provider (0 Eigen, 1 OpenBLAS), threads
void BM_gemm(benchmark::State& st) {
    const Shape& s = shapes()[std::size_t(st.range(0))];
    const auto provider = st.range(1) ? backend::cpu::GemmProvider::OpenBlas : backend::cpu::GemmProvider::Eigen;
    backend::Cpu ctx(int(st.range(2)));
    ctx.set_gemm_provider(provider);
    const long lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    std::vector<float> A(s.M * s.K), B(s.K * s.N), C(s.M * s.N);
    for (std::size_t i = 0; i < A.size(); ++i) A[i] = float(i % 13) * 0.01f - 0.06f;
    for (std::size_t i = 0; i < B.size(); ++i) B[i] = float(i % 7) * 0.02f - 0.06f;
    for (auto _ : st) {
        ops::gemm(ctx, s.ta, s.tb, s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), s.N);
        benchmark::DoNotOptimize(C.data());
    }
    st.SetLabel(std::string(s.name) + " " + backend::cpu::gemm_provider_name(provider));
    st.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.M * s.N * s.K / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

// args: tokens N, provider (0 Eigen, 1 OpenBLAS), threads, with backward (0/1). Counter GFLOP/s
// counts the products only: 2 per forward (Q K^T, P V), 4 more per backward, 2 N N hd FLOP each.
void BM_attention(benchmark::State& st) {
    const long B = 128, H = 3, hd = 64, N = st.range(0), D = H * hd;
    const bool backward = st.range(3) != 0;
    const auto provider = st.range(1) ? backend::cpu::GemmProvider::OpenBlas : backend::cpu::GemmProvider::Eigen;
    backend::Cpu ctx(int(st.range(2)));
    ctx.set_gemm_provider(provider);
    std::vector<float> qkv(B * N * 3 * D), P(B * H * N * N), out(B * N * D), dout(B * N * D), dqkv(qkv.size()),
        scratch(P.size());
    for (std::size_t i = 0; i < qkv.size(); ++i) qkv[i] = float(i % 13) * 0.01f - 0.06f;
    for (std::size_t i = 0; i < dout.size(); ++i) dout[i] = float(i % 7) * 0.02f - 0.06f;
    for (auto _ : st) {
        ops::attention_forward(ctx, B, N, H, hd, qkv.data(), P.data(), out.data());
        if (backward) ops::attention_backward(ctx, B, N, H, hd, qkv.data(), P.data(), dout.data(), dqkv.data(), scratch.data());
        benchmark::DoNotOptimize(out.data());
        benchmark::DoNotOptimize(dqkv.data());
    }
    st.SetLabel(std::string("attention N ") + std::to_string(N) + (backward ? " fwd+bwd " : " fwd ") +
                backend::cpu::gemm_provider_name(provider));
    st.counters["GFLOP/s"] = benchmark::Counter((backward ? 6.0 : 2.0) * 2.0 * B * H * N * N * hd / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// The machine's FMA peak: 12 independent chains of a*b+c on the widest vectors the compiler
// targets (64-byte GCC vectors: one AVX-512 FMA, or two AVX2 FMAs, per multiply-add), per thread,
// 2 FLOP per lane. 12 chains cover the FMA latency (4 cycles) times its issue rate (2 per cycle)
// with margin; the result is what "fraction of peak" in bench/README.md divides by.
using v16f = float __attribute__((vector_size(64)));
void BM_fma_peak(benchmark::State& st) {
    const int threads = int(st.range(0));
    constexpr long kIters = 1L << 22;
    for (auto _ : st) {
        float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        {
            v16f acc[12];
            const v16f m = v16f{} + 0.999999f, a = v16f{} + 1e-7f;
            for (int j = 0; j < 12; ++j) acc[j] = v16f{} + float(j);
            for (long i = 0; i < kIters; ++i)
#pragma GCC unroll 12
                for (int j = 0; j < 12; ++j) acc[j] = acc[j] * m + a;
            for (int j = 0; j < 12; ++j) sink += acc[j][0];
        }
        benchmark::DoNotOptimize(sink);
    }
    st.counters["GFLOP/s"] = benchmark::Counter(double(threads) * kIters * 12 * 16 * 2 / 1e9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
    for (int threads : {1, 2})
        benchmark::RegisterBenchmark("fma_peak", BM_fma_peak)->Arg(threads)->ArgName("threads")->UseRealTime()->MinTime(0.5);
    for (long i = 0; i < long(shapes().size()); ++i)
        for (int threads : {1, 2})
            for (long p = 0; p <= (backend::cpu::openblas_available ? 1 : 0); ++p)
                benchmark::RegisterBenchmark((std::string("gemm/") + shapes()[std::size_t(i)].name).c_str(), BM_gemm)
                    ->Args({i, p, threads})
                    ->ArgNames({"shape", "openblas", "threads"})
                    ->UseRealTime()
                    ->MinTime(0.3);
    for (auto [N, backward] : {std::pair{17L, 1L}, std::pair{65L, 0L}})
        for (int threads : {1, 2})
            for (long p = 0; p <= (backend::cpu::openblas_available ? 1 : 0); ++p)
                benchmark::RegisterBenchmark("attention", BM_attention)
                    ->Args({N, p, threads, backward})
                    ->ArgNames({"tokens", "openblas", "threads", "backward"})
                    ->UseRealTime()
                    ->MinTime(0.3);
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
