// Helpers of the CUDA model-op and model tests (test_cuda_model_ops.cu, test_cuda_model.cu): device
// buffers from host vectors and back, NaN poisoning, fresh random inputs, error measures. These TUs
// include both backends (nvcc compiles the CPU backend's Eigen code too), so the reference is the
// CPU op itself, called on backend::Cpu.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "lcmae/backend/cuda.cuh"
#include "lcmae/core/rng.hpp"

#define LCMAE_SKIP_WITHOUT_CUDA()                   \
    do {                                            \
        if (!::lcmae::backend::Cuda::available()) { \
            MESSAGE("skipped: no CUDA device");     \
            return;                                 \
        }                                           \
    } while (false)

namespace lcmae::test::cuda {

using backend::Cuda;
template <class T>
using DBuf = backend::CudaBuffer<T>;

/// (a std::string: doctest's MESSAGE prints a const char* as a pointer)
template <class T>
std::string type_name() {
    return std::is_same_v<T, float> ? "float" : (std::is_same_v<T, double> ? "double" : "int64");
}

template <class T>
DBuf<T> to_device(const Cuda& ctx, const std::vector<T>& h) {
    DBuf<T> d(h.size());
    if (!h.empty()) ops::upload(ctx, long(h.size()), h.data(), d.data());
    return d;
}

template <class T>
std::vector<T> to_host(const Cuda& ctx, const DBuf<T>& d) {
    std::vector<T> h(d.size());
    if (!h.empty()) ops::download(ctx, long(h.size()), d.data(), h.data());
    else ctx.synchronize();
    return h;
}

/// n device values, all NaN (float/double): an output the op leaves unwritten fails its comparison.
template <class T>
DBuf<T> poisoned(const Cuda& ctx, long n) {
    DBuf<T> d(static_cast<std::size_t>(n));
    ops::fill(ctx, n, std::numeric_limits<T>::quiet_NaN(), d.data());
    return d;
}

inline std::uint64_t& stream_counter() {
    static std::uint64_t s = 1000;  // every tensor draws from its own Philox stream
    return s;
}

template <class T>
std::vector<T> random(long n, double lo = -1, double hi = 1) {
    Rng r(4711, stream_counter()++);
    std::vector<T> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = T(r.uniform(lo, hi));
    return v;
}

/// 0/1 values with P(1) = p.
template <class T>
std::vector<T> random_mask(long n, double p) {
    Rng r(4711, stream_counter()++);
    std::vector<T> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = r.uniform(0.0, 1.0) < p ? T(1) : T(0);
    return v;
}

/// Per sample, the first K ids of a random permutation of [0, L).
inline std::vector<std::int64_t> random_keep(long B, long L, long K) {
    Rng r(4711, stream_counter()++);
    std::vector<std::int64_t> out;
    for (long b = 0; b < B; ++b) {
        std::vector<std::int64_t> perm(static_cast<std::size_t>(L));
        for (long i = 0; i < L; ++i) perm[i] = i;
        for (long i = L - 1; i > 0; --i) std::swap(perm[i], perm[long(r.below(std::uint64_t(i + 1)))]);
        out.insert(out.end(), perm.begin(), perm.begin() + K);
    }
    return out;
}

/// ||a - ref|| / ||ref|| (or ||a - ref|| when ref is 0); infinity when a has a non-finite value
/// where ref is finite (an unwritten, poisoned element).
template <class T>
double rel_err(const std::vector<T>& a, const std::vector<T>& ref) {
    REQUIRE(a.size() == ref.size());
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(double(a[i])) && std::isfinite(double(ref[i]))) return std::numeric_limits<double>::infinity();
        const double d = double(a[i]) - double(ref[i]);
        num += d * d;
        den += double(ref[i]) * double(ref[i]);
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

/// Number of elements that differ (bitwise for values; NaN vs anything counts).
template <class T>
long mismatches(const std::vector<T>& a, const std::vector<T>& ref) {
    REQUIRE(a.size() == ref.size());
    long n = 0;
    for (std::size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &ref[i], sizeof(T)) != 0 && !(a[i] == ref[i]);
    return n;
}

template <class T>
void expect_close(const std::string& what, const std::vector<T>& gpu, const std::vector<T>& ref, double tol) {
    const double e = rel_err(gpu, ref);
    MESSAGE(what << " <" << type_name<T>() << ">: relative error " << e << " (tolerance " << tol
                 << "; elements differing " << mismatches(gpu, ref) << " of " << ref.size() << ")");
    CHECK(e <= tol);
}

template <class T>
void expect_exact(const std::string& what, const std::vector<T>& gpu, const std::vector<T>& ref) {
    const long m = mismatches(gpu, ref);
    MESSAGE(what << " <" << type_name<T>() << ">: relative error " << (m == 0 ? 0.0 : rel_err(gpu, ref))
                 << " (tolerance 0, exact; elements differing " << m << " of " << ref.size() << ")");
    CHECK(m == 0);
}

inline void expect_close_scalar(const std::string& what, double gpu, double ref, double tol) {
    const double e = ref != 0 ? std::abs(gpu - ref) / std::abs(ref) : std::abs(gpu - ref);
    const double shown = std::isfinite(gpu) ? e : std::numeric_limits<double>::infinity();
    MESSAGE(what << ": relative error " << shown << " (tolerance " << tol << "; gpu " << gpu << ", cpu " << ref << ")");
    CHECK(shown <= tol);
}

/// Per-precision tolerance: f for float, d for double.
template <class T>
double tol(double f, double d = 1e-12) {
    return std::is_same_v<T, float> ? f : d;
}

/// Downloads one device double.
inline double device_scalar(const Cuda& ctx, const DBuf<double>& d, long i = 0) {
    double h = 0;
    ops::download(ctx, 1, d.data() + i, &h);
    return h;
}

}  // namespace lcmae::test::cuda
