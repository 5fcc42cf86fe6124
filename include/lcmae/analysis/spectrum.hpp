// lcmae/analysis/spectrum.hpp - the singular value spectrum of representations (SPEC 5; the
// paper's Fig. 3, after DirectCLR): one feature per image (the mean of its patch tokens at a
// block's output), the D x D covariance (1 / N) sum_n (z_n - mean)(z_n - mean)^T, and its singular
// values sorted descending. Host code (Eigen, double precision).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Dense>

#include "lcmae/core/error.hpp"

namespace lcmae::analysis {

/// Singular values of m, descending.
inline std::vector<double> singular_values(const Eigen::MatrixXd& m) {
    const Eigen::BDCSVD<Eigen::MatrixXd> svd(m);
    const Eigen::VectorXd s = svd.singularValues();
    std::vector<double> out(s.data(), s.data() + s.size());
    std::sort(out.begin(), out.end(), std::greater<>());
    return out;
}

/// The covariance (1 / n, centred) of n feature rows of width dim (row-major).
template <class T>
Eigen::MatrixXd covariance(const T* feats, long n, long dim) {
    LCMAE_CHECK(n >= 1 && dim >= 1, "covariance: needs n >= 1 rows of width >= 1, got " << n << " x " << dim);
    Eigen::MatrixXd z(n, dim);
    for (long i = 0; i < n; ++i)
        for (long k = 0; k < dim; ++k) z(i, k) = double(feats[i * dim + k]);
    z.rowwise() -= z.colwise().mean();
    return (z.transpose() * z) / double(n);
}

/// SPEC 5's spectrum: the singular values of covariance(feats), descending (dim values).
template <class T>
std::vector<double> covariance_spectrum(const T* feats, long n, long dim) {
    return singular_values(covariance(feats, n, dim));
}

/// log10 of a singular value, floored at 1e-12 (a rank-deficient covariance has exact zeros).
inline double log_sigma(double s) { return std::log10(std::max(s, 1e-12)); }

}  // namespace lcmae::analysis
