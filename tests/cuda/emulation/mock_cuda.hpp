// mock_cuda.hpp - just enough of the CUDA device environment to run the fused attention kernels
// (include/lcmae/backend/cuda/fused_attention.cuh) as host code, one std::thread per CUDA thread,
// for checking their index arithmetic, padding, bounds and barriers on a machine without a GPU.
// Not a CUDA emulator: wmma fragments are whole 16 x 16 tiles held by every lane (loads check the
// documented alignment rules), __syncthreads / __syncwarp are std::barriers, shuffles go through a
// per-warp array between two warp barriers.
#pragma once

#include <algorithm>
#include <barrier>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __launch_bounds__(x)
#define __forceinline__ inline

namespace mock {
struct Idx {
    unsigned x = 0, y = 0, z = 0;
};
inline thread_local Idx t_thread, t_block;
inline thread_local unsigned char* smem = nullptr;
inline thread_local std::barrier<>* block_bar = nullptr;
inline thread_local std::barrier<>* warp_bar = nullptr;
inline thread_local float* warp_buf = nullptr;  // 32 floats of this thread's warp

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "mock CUDA: %s\n", what);
    std::abort();
}
}  // namespace mock

#define threadIdx (::mock::t_thread)
#define blockIdx (::mock::t_block)

inline void __syncthreads() { mock::block_bar->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { mock::warp_bar->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
    const unsigned lane = threadIdx.x % 32;
    mock::warp_buf[lane] = v;
    mock::warp_bar->arrive_and_wait();
    const float r = mock::warp_buf[lane ^ unsigned(o)];
    mock::warp_bar->arrive_and_wait();
    return r;
}
[[noreturn]] inline void __trap() { mock::fail("__trap"); }

struct float4 {
    float x, y, z, w;
};
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }

struct __nv_bfloat16 {
    std::uint16_t bits;
};
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
inline float bf16_to_float(__nv_bfloat16 h) {
    const std::uint32_t u = std::uint32_t(h.bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {  // round to nearest even
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    if (std::isnan(f)) return {std::uint16_t((u >> 16) | 0x40)};
    u += 0x7fffu + ((u >> 16) & 1u);
    return {std::uint16_t(u >> 16)};
}
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; }

namespace nvcuda::wmma {
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision
struct matrix_a {};
struct matrix_b {};
struct accumulator {};

inline float __float_to_tf32(float f) {  // round to nearest (ties away), 10 mantissa bits
    if (!std::isfinite(f)) return f;
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    u = (u + 0x1000u) & 0xffffe000u;
    std::memcpy(&f, &u, 4);
    return f;
}

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
    static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
    float v[rows * cols];
};

template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, float x) {
    for (float& e : f.v) e = x;
}

inline float to_f(float x) { return x; }
inline float to_f(__nv_bfloat16 x) { return bf16_to_float(x); }

template <class E>
inline void check_ptr(const E* p, unsigned ldm) {
    if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0) mock::fail("wmma pointer not 256-bit aligned");
    if ((ldm * sizeof(E)) % 16 != 0) mock::fail("wmma ldm not a multiple of 16 bytes");
}

template <class Use, int M, int N, int K, class T, class L, class E>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const E* p, unsigned ldm) {
    static_assert(!std::is_same_v<Use, accumulator>);
    check_ptr(p, ldm);
    using F = fragment<Use, M, N, K, T, L>;
    for (int r = 0; r < F::rows; ++r)
        for (int c = 0; c < F::cols; ++c)
            f.v[r * F::cols + c] = to_f(std::is_same_v<L, row_major> ? p[r * ldm + c] : p[r + c * ldm]);
}

template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t lay) {
    check_ptr(p, ldm);
    if (lay != mem_row_major) mock::fail("only mem_row_major is mocked");
    if (threadIdx.x % 32 != 0) return;  // one writer; readers must __syncwarp first anyway
    for (int r = 0; r < M; ++r)
        for (int c = 0; c < N; ++c) p[r * ldm + c] = f.v[r * N + c];
}

template <int M, int N, int K, class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
                     const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
    float out[M * N];
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            float s = c.v[i * N + j];
            for (int k = 0; k < K; ++k) s += a.v[i * K + k] * b.v[k * N + j];
            out[i * N + j] = s;
        }
    std::memcpy(d.v, out, sizeof out);
}
}  // namespace nvcuda::wmma

// launch.cuh's device helpers, as host functions
namespace lcmae::backend::cuda_detail {
template <class A>
inline A neg_inf() {
    return -INFINITY;
}
inline float dev_exp(float x) { return std::exp(x); }
inline float mul_rn(float a, float b) { return a * b; }
inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
using std::min;
}  // namespace lcmae::backend::cuda_detail
