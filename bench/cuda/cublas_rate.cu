// The card's cuBLAS GEMM rate on the ViT-B/16 batch-128 shapes (25,216 tokens) and 8192^3,
// in FP32 (strict: no TF32), TF32 and BF16 (bf16 A/B/C, FP32 accumulate), on random data.
//
//   nvcc -O3 -arch=sm_90 -o cublas_rate bench/cuda/cublas_rate.cu -lcublas
//   ./cublas_rate [--reps N] [--warmup N] [--json PATH]
//
// C (m x n) = op(A) (m x k) * B (k x n), column-major, op(A) = A^T with A stored k x m: the call
// a PyTorch Linear forward makes (m = out features, n = tokens, k = in features). Each GEMM runs
// --warmup times untimed, then --reps times, each bracketed by its own cudaEvent pair; the median
// is reported (TFLOP/s = 2 m n k / median). A 32 MiB cuBLAS workspace is set, as PyTorch does on
// Hopper. Inputs are uniform in [-1, 1) from a counter hash (never zeros); 8 entries of every C
// are checked against a double-precision host dot product of the same (rounded) inputs, the error
// scaled by the norm of the products: FP32 must be within 1e-4 (TF32 arithmetic would not be),
// TF32 1e-2, BF16 2e-2. Every CUDA and cuBLAS call is checked; the exit code is 1 on any failure.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define CUDA_CHECK(call)                                                                              \
    do {                                                                                              \
        cudaError_t e_ = (call);                                                                      \
        if (e_ != cudaSuccess) {                                                                      \
            std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            std::exit(1);                                                                             \
        }                                                                                             \
    } while (0)

#define CUBLAS_CHECK(call)                                                                            \
    do {                                                                                              \
        cublasStatus_t s_ = (call);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                            \
            std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
            std::exit(1);                                                                             \
        }                                                                                             \
    } while (0)

namespace {

// Uniform in [-1, 1) from (seed, index): splitmix64, top 24 bits. Same on host and device.
__host__ __device__ inline float hash_uniform(std::uint64_t seed, std::uint64_t i) {
    std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

template <class T> __host__ __device__ inline T from_float(float x);
template <> __host__ __device__ inline float from_float<float>(float x) { return x; }
template <> __host__ __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
inline double to_double(float x) { return x; }
inline double to_double(__nv_bfloat16 x) { return static_cast<double>(__bfloat162float(x)); }

template <class T> __global__ void fill(T* p, std::size_t n, std::uint64_t seed) {
    for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
        p[i] = from_float<T>(hash_uniform(seed, i));
}

enum class Mode { FP32, TF32, BF16 };
const char* mode_name(Mode m) { return m == Mode::FP32 ? "FP32" : m == Mode::TF32 ? "TF32" : "BF16"; }

struct Shape {
    const char* name;
    int m, n, k;
};

struct Result {
    std::string shape, mode;
    int m, n, k;
    double median_ms, min_ms, tflops, max_err, tol;
    bool ok;
};

template <class T>
Result run(cublasHandle_t h, cudaStream_t st, const Shape& s, Mode mode, int warmup, int reps) {
    const std::size_t na = std::size_t(s.k) * s.m, nb = std::size_t(s.k) * s.n, nc = std::size_t(s.m) * s.n;
    T *A = nullptr, *B = nullptr, *C = nullptr;
    CUDA_CHECK(cudaMalloc(&A, na * sizeof(T)));
    CUDA_CHECK(cudaMalloc(&B, nb * sizeof(T)));
    CUDA_CHECK(cudaMalloc(&C, nc * sizeof(T)));
    const std::uint64_t seedA = 0xA11CE, seedB = 0xB0B;
    fill<T><<<1024, 256, 0, st>>>(A, na, seedA);
    CUDA_CHECK(cudaGetLastError());
    fill<T><<<1024, 256, 0, st>>>(B, nb, seedB);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemsetAsync(C, 0xFF, nc * sizeof(T), st));  // NaN pattern: an untouched C fails the check

    const cudaDataType_t dt = mode == Mode::BF16 ? CUDA_R_16BF : CUDA_R_32F;
    const cublasComputeType_t ct = mode == Mode::TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    CUBLAS_CHECK(cublasSetMathMode(h, mode == Mode::TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const float alpha = 1.0f, beta = 0.0f;
    auto gemm = [&] {
        CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, s.m, s.n, s.k, &alpha, A, dt, s.k, B, dt, s.k, &beta,
                                  C, dt, s.m, ct, CUBLAS_GEMM_DEFAULT));
    };
    for (int i = 0; i < warmup; ++i) gemm();
    CUDA_CHECK(cudaStreamSynchronize(st));

    std::vector<cudaEvent_t> ev(2 * reps);
    for (auto& e : ev) CUDA_CHECK(cudaEventCreate(&e));
    for (int i = 0; i < reps; ++i) {
        CUDA_CHECK(cudaEventRecord(ev[2 * i], st));
        gemm();
        CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], st));
    }
    CUDA_CHECK(cudaStreamSynchronize(st));
    std::vector<double> ms(reps);
    for (int i = 0; i < reps; ++i) {
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, ev[2 * i], ev[2 * i + 1]));
        ms[i] = t;
    }
    for (auto& e : ev) CUDA_CHECK(cudaEventDestroy(e));
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = reps % 2 ? sorted[reps / 2] : 0.5 * (sorted[reps / 2 - 1] + sorted[reps / 2]);

    // Spot check: C(i, j) = sum_p A[i k + p] B[j k + p] (op(A) = A^T, both columns contiguous in p).
    const int pts[8][2] = {{0, 0}, {s.m - 1, s.n - 1}, {s.m / 2, s.n / 3}, {s.m - 1, 0}, {0, s.n - 1},
                           {s.m / 7, s.n / 5}, {(s.m * 5) / 6, (s.n * 3) / 4}, {s.m / 3, s.n - 2}};
    double max_err = 0;
    for (const auto& pt : pts) {
        const std::size_t i = pt[0], j = pt[1];
        double ref = 0, norm2 = 0;
        for (int p = 0; p < s.k; ++p) {
            const double a = to_double(from_float<T>(hash_uniform(seedA, i * s.k + p)));
            const double b = to_double(from_float<T>(hash_uniform(seedB, j * s.k + p)));
            ref += a * b;
            norm2 += a * a * b * b;
        }
        T got;
        CUDA_CHECK(cudaMemcpy(&got, C + i + j * std::size_t(s.m), sizeof(T), cudaMemcpyDeviceToHost));
        const double g = to_double(got);
        const double err = std::isfinite(g) ? std::fabs(g - ref) / std::sqrt(norm2) : INFINITY;
        max_err = std::max(max_err, err);
    }
    CUDA_CHECK(cudaFree(A));
    CUDA_CHECK(cudaFree(B));
    CUDA_CHECK(cudaFree(C));
    const double tol = mode == Mode::FP32 ? 1e-4 : mode == Mode::TF32 ? 1e-2 : 2e-2;
    return {s.name, mode_name(mode), s.m, s.n, s.k, median, sorted.front(),
            2.0 * s.m * double(s.n) * s.k / (median * 1e-3) / 1e12, max_err, tol, max_err <= tol};
}

void usage(const char* argv0) {
    std::fprintf(stderr, "usage: %s [--reps N (>= 20, default 30)] [--warmup N (default 5)] [--json PATH]\n", argv0);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 30, warmup = 5;
    const char* json = nullptr;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
        else if (a == "--warmup" && i + 1 < argc) warmup = std::atoi(argv[++i]);
        else if (a == "--json" && i + 1 < argc) json = argv[++i];
        else usage(argv[0]);
    }
    if (reps < 20 || warmup < 1) usage(argv[0]);

    int dev = 0, rt = 0, drv = 0, cublas_ver = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    CUDA_CHECK(cudaRuntimeGetVersion(&rt));
    CUDA_CHECK(cudaDriverGetVersion(&drv));
    int clock_khz = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev));
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasGetVersion(h, &cublas_ver));
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasSetStream(h, st));
    void* ws = nullptr;
    const std::size_t ws_bytes = 32u << 20;
    CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    CUBLAS_CHECK(cublasSetWorkspace(h, ws, ws_bytes));
    std::printf("%s, %d SMs, sm_%d%d, %.0f MHz max SM clock, %.1f GiB; CUDA runtime %d, driver %d, cuBLAS %d\n",
                prop.name, prop.multiProcessorCount, prop.major, prop.minor, clock_khz / 1e3,
                prop.totalGlobalMem / 1073741824.0, rt, drv, cublas_ver);
    std::printf("C = A^T B (TN), %d warm-up + %d timed runs each, median\n\n", warmup, reps);
    std::fflush(stdout);

    const Shape shapes[] = {{"fc1", 3072, 25216, 768}, {"fc2", 768, 25216, 3072}, {"qkv", 2304, 25216, 768},
                            {"square", 8192, 8192, 8192}};
    std::vector<Result> res;
    for (const auto& s : shapes) {
        for (Mode m : {Mode::FP32, Mode::TF32, Mode::BF16}) {
            res.push_back(m == Mode::BF16 ? run<__nv_bfloat16>(h, st, s, m, warmup, reps)
                                          : run<float>(h, st, s, m, warmup, reps));
            const Result& r = res.back();
            std::printf("  %-6s %5d x %5d x %5d %-4s  median %8.3f ms  min %8.3f ms  %7.1f TFLOP/s  check %.1e %s\n",
                        r.shape.c_str(), r.m, r.n, r.k, r.mode.c_str(), r.median_ms, r.min_ms, r.tflops, r.max_err,
                        r.ok ? "ok" : "FAIL");
            std::fflush(stdout);
        }
    }

    bool all_ok = true;
    std::printf("\n| GEMM (m x n x k) | FP32 | TF32 | BF16 (FP32 accumulate) |\n|---|---:|---:|---:|\n");
    for (std::size_t i = 0; i < res.size(); i += 3) {
        std::printf("| %s %d x %d x %d |", res[i].shape.c_str(), res[i].m, res[i].n, res[i].k);
        for (std::size_t j = i; j < i + 3; ++j) {
            std::printf(" %.1f TFLOP/s%s |", res[j].tflops, res[j].ok ? "" : " (check FAILED)");
            all_ok = all_ok && res[j].ok;
        }
        std::printf("\n");
    }
    std::printf("\n%s\n", all_ok ? "all checks ok" : "SOME CHECKS FAILED");

    if (json) {
        FILE* f = std::fopen(json, "w");
        if (!f) {
            std::fprintf(stderr, "cannot write %s: %s\n", json, std::strerror(errno));
            return 1;
        }
        std::fprintf(f, "{\"device\": \"%s\", \"sms\": %d, \"cuda_runtime\": %d, \"driver\": %d, \"cublas\": %d, "
                        "\"reps\": %d, \"warmup\": %d, \"results\": [\n",
                     prop.name, prop.multiProcessorCount, rt, drv, cublas_ver, reps, warmup);
        for (std::size_t i = 0; i < res.size(); ++i) {
            const Result& r = res[i];
            std::fprintf(f, "  {\"shape\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"mode\": \"%s\", \"median_ms\": %.5f, "
                            "\"min_ms\": %.5f, \"tflops\": %.2f, \"max_err\": %.3e, \"tol\": %.0e, \"ok\": %s}%s\n",
                         r.shape.c_str(), r.m, r.n, r.k, r.mode.c_str(), r.median_ms, r.min_ms, r.tflops, r.max_err,
                         r.tol, r.ok ? "true" : "false", i + 1 < res.size() ? "," : "");
        }
        std::fprintf(f, "]}\n");
        std::fclose(f);
    }
    CUDA_CHECK(cudaFree(ws));
    CUBLAS_CHECK(cublasDestroy(h));
    CUDA_CHECK(cudaStreamDestroy(st));
    return all_ok ? 0 : 1;
}
