// bench_cuda_ops - GEMM rates and two memory-bound ops of the CUDA backend, through OUR ops.
//
//   GEMMs (ViT-B/16, batch 128 = 25,216 tokens), named m x n x k as in shared/GPU.md, i.e. a Linear
//   layer Y(tokens, out) = X(tokens, in) W^T with m = out, n = tokens, k = in:
//     fc1 3072 x 25216 x 768, fc2 768 x 25216 x 3072, qkv 2304 x 25216 x 768; FP32 strict and TF32.
//   LayerNorm forward, 25,216 x 768: GB/s counting x read + y written once.
//   Attention forward, B 128, N 197, H 12, hd 64: ms, and GB/s counting qkv read + P and out written
//   once (the floor for an unfused version, which also re-reads P), in the default path. Then
//   attention forward and backward for fp32 / tf32 / bf16 x per-head / batched / fused paths, with
//   the relative difference of out and dqkv from the per-head path (fused under fp32 runs the
//   batched path: its fp32 row repeats the batched one).
// Each figure is the median of 25 runs timed with CUDA events after 3 warm-up runs, on inputs
// filled with pseudo-random values (never zeros). Usage: bench_cuda_ops [device]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lcmae/backend/cuda.cuh"

using lcmae::backend::Cuda;
using lcmae::backend::Precision;

namespace {

__global__ void fill_random_kernel(long long n, std::uint32_t seed, float lo, float hi, float* x) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        std::uint32_t h = std::uint32_t(i) * 2654435761u ^ std::uint32_t(i >> 32) ^ seed;  // an integer hash
        h ^= h >> 16; h *= 0x7feb352du; h ^= h >> 15; h *= 0x846ca68bu; h ^= h >> 16;
        x[i] = lo + (hi - lo) * float(h >> 8) * 0x1.0p-24f;
    }
}

struct Buf {
    float* p;
    long long n;
    Buf(const Cuda& ctx, long long count, std::uint32_t seed, float lo = -1, float hi = 1)
        : p(Cuda::allocate<float>(std::size_t(count))), n(count) {
        fill_random_kernel<<<lcmae::backend::cuda_detail::blocks_for(n), 256, 0, ctx.stream()>>>(n, seed, lo, hi, p);
        LCMAE_CUDA_CHECK_LAUNCH("fill_random_kernel");
    }
    ~Buf() { Cuda::deallocate(p); }
    Buf(const Buf&) = delete;
    Buf& operator=(const Buf&) = delete;
};

/// Median milliseconds of `f` over `reps` event-timed runs after `warm` untimed ones.
template <class F>
double median_ms(const Cuda& ctx, F&& f, int warm = 3, int reps = 25) {
    for (int i = 0; i < warm; ++i) f();
    cudaEvent_t a, b;
    LCMAE_CUDA_CHECK(cudaEventCreate(&a));
    LCMAE_CUDA_CHECK(cudaEventCreate(&b));
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
        LCMAE_CUDA_CHECK(cudaEventRecord(a, ctx.stream()));
        f();
        LCMAE_CUDA_CHECK(cudaEventRecord(b, ctx.stream()));
        LCMAE_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        LCMAE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    LCMAE_CUDA_CHECK(cudaEventDestroy(a));
    LCMAE_CUDA_CHECK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (!Cuda::available()) {
            std::printf("bench_cuda_ops: no CUDA device, nothing to measure\n");
            return 0;
        }
        const int device = argc > 1 ? std::atoi(argv[1]) : 0;
        Cuda ctx(device);
        cudaDeviceProp prop{};
        LCMAE_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
        std::printf("device %d: %s, %d SMs\n\n", device, prop.name, prop.multiProcessorCount);

        const long tokens = 128 * 197;
        struct Shape { const char* name; long m, n, k; };
        const Shape shapes[] = {{"fc1", 3072, tokens, 768}, {"fc2", 768, tokens, 3072}, {"qkv", 2304, tokens, 768}};
        std::printf("%-4s %-20s %-5s %9s %10s\n", "gemm", "m x n x k", "prec", "ms", "TFLOP/s");
        for (const Shape& s : shapes) {
            // Y(n, m) = X(n, k) W(m, k)^T: row-major gemm with M = tokens, N = out, K = in.
            Buf X(ctx, (long long)s.n * s.k, 1), W(ctx, (long long)s.m * s.k, 2, -0.05f, 0.05f), Y(ctx, (long long)s.n * s.m, 3);
            for (Precision p : {Precision::Fp32, Precision::Tf32, Precision::Bf16}) {  // bf16: incl. the operand conversions
                ctx.set_precision(p);
                const double ms = median_ms(ctx, [&] {
                    lcmae::ops::gemm(ctx, false, true, s.n, s.m, s.k, 1.0f, X.p, s.k, W.p, s.k, 0.0f, Y.p, s.m);
                });
                const double tflops = 2.0 * s.m * s.n * s.k / (ms * 1e-3) / 1e12;
                char dims[64];
                std::snprintf(dims, sizeof dims, "%ld x %ld x %ld", s.m, s.n, s.k);
                std::printf("%-4s %-20s %-5s %9.3f %10.1f\n", s.name, dims, lcmae::backend::precision_name(p), ms, tflops);
            }
        }
        ctx.set_precision(Precision::Fp32);

        std::printf("\n%-28s %9s %10s\n", "memory-bound op (fp32)", "ms", "GB/s");
        {
            const long rows = tokens, cols = 768;
            Buf x(ctx, (long long)rows * cols, 4), g(ctx, cols, 5, 0.5f, 1.5f), b(ctx, cols, 6), y(ctx, (long long)rows * cols, 7),
                mean(ctx, rows, 8), rstd(ctx, rows, 9);
            const double ms = median_ms(ctx, [&] {
                lcmae::ops::layernorm_forward(ctx, rows, cols, x.p, g.p, b.p, 1e-6f, y.p, mean.p, rstd.p);
            });
            std::printf("%-28s %9.3f %10.1f\n", "layernorm_forward 25216x768", ms, 2.0 * rows * cols * 4 / (ms * 1e-3) / 1e9);
        }
        {
            const long B = 128, N = 197, H = 12, hd = 64, D = H * hd;
            Buf qkv(ctx, B * N * 3 * D, 10), P(ctx, B * H * N * N, 11), out(ctx, B * N * D, 12);
            const double ms = median_ms(ctx, [&] { lcmae::ops::attention_forward(ctx, B, N, H, hd, qkv.p, P.p, out.p); });
            const double bytes = 4.0 * (B * N * 3 * D + B * H * N * N + B * N * D);
            const double tflops = 4.0 * B * H * N * N * hd / (ms * 1e-3) / 1e12;
            std::printf("%-28s %9.3f %10.1f   (%.1f TFLOP/s in its two products; %s path)\n", "attention_forward B128 N197", ms,
                        bytes / (ms * 1e-3) / 1e9, tflops, lcmae::backend::attention_path_name(ctx.attention_path()));
        }

        // Attention forward and backward, every path, every precision. FLOPs: 2 B H N^2 hd per
        // product (forward 2 products, backward 4). GB/s counts the unavoidable traffic once: forward
        // qkv read, P and out written; backward qkv, P, dout read and dqkv written. "vs per-head" is
        // the relative Frobenius difference of out / dqkv from the per-head path (same inputs).
        std::printf("\nattention B128 N197 H12 hd64: %-8s %-9s %9s %8s %8s %9s %8s %8s %11s %11s\n", "prec", "path",
                    "fwd ms", "TFLOP/s", "GB/s", "bwd ms", "TFLOP/s", "GB/s", "out diff", "dqkv diff");
        {
            const long B = 128, N = 197, H = 12, hd = 64, D = H * hd;
            const long long nq = B * N * 3 * D, np = B * H * N * N, no = B * N * D;
            Buf qkv(ctx, nq, 20, -2, 2), P(ctx, np, 21), out(ctx, no, 22), dout(ctx, no, 23), dqkv(ctx, nq, 24),
                scratch(ctx, np, 25);
            const double f2 = 4.0 * B * H * N * N * hd;
            const double fwd_bytes = 4.0 * (nq + np + no), bwd_bytes = 4.0 * (nq + np + no + nq);
            auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
                double num = 0, den = 0;
                for (std::size_t i = 0; i < a.size(); ++i) {
                    const double d = double(a[i]) - double(b[i]);
                    num += d * d;
                    den += double(b[i]) * double(b[i]);
                }
                return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
            };
            for (Precision prec : {Precision::Fp32, Precision::Tf32, Precision::Bf16}) {
                ctx.set_precision(prec);
                std::vector<float> ref_out, ref_dqkv;
                for (auto path : {lcmae::backend::AttentionPath::PerHead, lcmae::backend::AttentionPath::Batched,
                                  lcmae::backend::AttentionPath::Fused}) {
                    ctx.set_attention_path(path);
                    const double fms = median_ms(ctx, [&] { lcmae::ops::attention_forward(ctx, B, N, H, hd, qkv.p, P.p, out.p); });
                    const double bms = median_ms(ctx, [&] {
                        lcmae::ops::attention_backward(ctx, B, N, H, hd, qkv.p, P.p, dout.p, dqkv.p, scratch.p);
                    });
                    std::vector<float> ho(std::size_t(no), 0.0f), hg(std::size_t(nq), 0.0f);
                    lcmae::ops::download(ctx, no, out.p, ho.data());
                    lcmae::ops::download(ctx, nq, dqkv.p, hg.data());
                    const bool first = ref_out.empty();
                    if (first) {
                        ref_out = ho;
                        ref_dqkv = hg;
                    }
                    char od[32] = "-", gd[32] = "-";
                    if (!first) {
                        std::snprintf(od, sizeof od, "%.2e", rel(ho, ref_out));
                        std::snprintf(gd, sizeof gd, "%.2e", rel(hg, ref_dqkv));
                    }
                    std::printf("%-30s %-8s %-9s %9.3f %8.1f %8.0f %9.3f %8.1f %8.0f %11s %11s\n", "", 
                                lcmae::backend::precision_name(prec), lcmae::backend::attention_path_name(path), fms,
                                f2 / (fms * 1e-3) / 1e12, fwd_bytes / (fms * 1e-3) / 1e9, bms,
                                2 * f2 / (bms * 1e-3) / 1e12, bwd_bytes / (bms * 1e-3) / 1e9, od, gd);
                }
            }
            ctx.set_precision(Precision::Fp32);
            ctx.set_attention_path(lcmae::backend::kDefaultAttentionPath);
            std::printf("(context scratch after the attention runs: %.2f GiB)\n", double(ctx.scratch_bytes()) / (1 << 30));
        }
        ctx.synchronize();
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_cuda_ops: %s\n", e.what());
        return 1;
    }
}
