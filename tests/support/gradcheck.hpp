// tests/support/gradcheck.hpp - central differences in double against the analytic backward.
//
// The dlib habit: before backward, every parameter gradient is pre-filled with a sentinel, and the
// analytic gradient is read as (grad - sentinel). A backward that overwrote instead of accumulating
// loses the sentinel, and an element it never wrote reads 0 while the numeric derivative does not:
// both fail the check.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "lcmae/core/arena.hpp"
#include "lcmae/core/rng.hpp"

namespace lcmae::test {

inline constexpr double kSentinel = 0.3711;

/// ||a - b|| / max(||a||, ||b||) (0 when both are 0).
inline double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
    double d = 0, na = 0, nb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    const double n = std::sqrt(std::max(na, nb));
    return n == 0 ? 0.0 : std::sqrt(d) / n;
}

/// Random values in [-1, 1).
inline std::vector<double> random_vector(long n, std::uint64_t seed, double scale = 1.0) {
    Rng r(seed, 99);
    std::vector<double> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = scale * r.uniform(-1.0, 1.0);
    return v;
}

/// Randomises every entry of an allocated arena (so no gradient is trivially zero).
inline void randomize(ParamArena<double>& P, std::uint64_t seed, double scale = 0.5) {
    Rng r(seed, 7);
    for (auto& v : P.values()) v = scale * r.uniform(-1.0, 1.0);
}

/// `loss()` runs the forward and returns the scalar loss; `backward()` runs the backward for that
/// loss (accumulating into P's grads). Checks every trainable parameter element by element.
inline void check_param_grads(ParamArena<double>& P, const std::function<double()>& loss,
                              const std::function<void()>& backward, double tol = 1e-6, double eps = 1e-6) {
    loss();
    P.grads().fill(kSentinel);
    backward();
    for (const auto& e : P.entries()) {
        if (e.kind != EntryKind::Parameter) continue;
        std::vector<double> analytic(e.slot.count), numeric(e.slot.count);
        for (std::size_t i = 0; i < e.slot.count; ++i) {
            analytic[i] = P.grad(e.slot)[i] - kSentinel;
            double& v = P.value(e.slot)[i];
            const double saved = v;
            v = saved + eps;
            const double lp = loss();
            v = saved - eps;
            const double lm = loss();
            v = saved;
            numeric[i] = (lp - lm) / (2 * eps);
        }
        const double err = rel_error(analytic, numeric);
        INFO("parameter " << e.name << " " << e.shape.str() << " relative error " << err);
        CHECK(err <= tol);
    }
}

/// Checks an input gradient: `x` is the input the loss reads, `dx` the analytic gradient the
/// backward produced (already computed, with any sentinel removed by the caller).
inline void check_input_grad(const std::string& what, double* x, long n, const std::vector<double>& dx,
                             const std::function<double()>& loss, double tol = 1e-6, double eps = 1e-6) {
    std::vector<double> numeric(static_cast<std::size_t>(n));
    for (long i = 0; i < n; ++i) {
        const double saved = x[i];
        x[i] = saved + eps;
        const double lp = loss();
        x[i] = saved - eps;
        const double lm = loss();
        x[i] = saved;
        numeric[i] = (lp - lm) / (2 * eps);
    }
    const double err = rel_error(dx, numeric);
    INFO("input gradient of " << what << " relative error " << err);
    CHECK(err <= tol);
}

/// sum_i y_i r_i, the probe loss whose gradient with respect to y is r.
inline double probe(const double* y, const std::vector<double>& r) {
    double s = 0;
    for (std::size_t i = 0; i < r.size(); ++i) s += y[i] * r[i];
    return s;
}

}  // namespace lcmae::test
