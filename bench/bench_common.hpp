// bench/bench_common.hpp - the machine's GEMM ceiling, measured in the same run as each workload,
// so every workload is reported as a fraction of what this machine's sgemm reaches.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "lcmae/backend/cpu/ops_cpu.hpp"

namespace lcmae::bench {

/// GFLOP/s of sgemm (the context's provider: Eigen or OpenBLAS) at a ViT-like shape C(M,N) = A(M,K) B(K,N)^T, best of a few repeats.
inline double sgemm_ceiling_gflops(const backend::Cpu& ctx, long M = 4096, long N = 768, long K = 192) {
    std::vector<float> A(M * K, 0.5f), B(N * K, 0.25f), C(M * N);
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        ops::gemm(ctx, false, true, M, N, K, 1.f, A.data(), K, B.data(), K, 0.f, C.data(), N);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, 2.0 * M * N * K / s / 1e9);
    }
    benchmark::DoNotOptimize(C.data());
    return best;
}

}  // namespace lcmae::bench
