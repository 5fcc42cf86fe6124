// lcmae/backend/cpu/gemm_provider.hpp - which library multiplies the CPU backend's matrices.
//
// Eigen's own GEMM kernel is the header-only default. Where OpenBLAS is found, CMake defines
// LCMAE_HAVE_OPENBLAS=1 through the lcmae::openblas target (link it to use it; every translation
// unit of a program must agree, which one target guarantees) and OpenBLAS's sgemm / dgemm does
// each single-threaded GEMM instead: on this project's 2-core AMD EPYC (Zen 4, AVX-512) it ran the
// training step's shapes at 1.1-1.5x Eigen's rate (bench/README.md, "GEMM provider").
//
// Threads stay ours in both cases: cpu/gemm.hpp splits a large C into panels over ctx.threads()
// and each panel is one single-threaded call. OpenBLAS is therefore told to use one thread
// (openblas_set_num_threads(1), process-wide, like Eigen::setNbThreads(1)): no nested
// parallelism, and no OpenBLAS worker threads spinning on a core another process needs.
//
// A context can still be switched to Eigen at run time (Cpu::set_gemm_provider, or LCMAE_GEMM=eigen
// in the environment for every context of a program) so that a benchmark compares both in one
// process and the tests run on both.
#pragma once

#include <cstdlib>
#include <string>

#include "lcmae/core/error.hpp"

#ifdef LCMAE_HAVE_OPENBLAS
#include <cblas.h>  // OpenBLAS's own cblas.h (the lcmae::openblas target puts its folder first)
#endif

namespace lcmae::backend::cpu {

enum class GemmProvider {
    Eigen,    ///< Eigen's GEMM kernel (always available)
    OpenBlas  ///< OpenBLAS cblas_sgemm / cblas_dgemm (only where LCMAE_HAVE_OPENBLAS is defined)
};

/// Whether this program was built with OpenBLAS (the lcmae::openblas target).
inline constexpr bool openblas_available =
#ifdef LCMAE_HAVE_OPENBLAS
    true;
#else
    false;
#endif

inline const char* gemm_provider_name(GemmProvider p) noexcept {
    return p == GemmProvider::OpenBlas ? "openblas" : "eigen";
}

/// The provider a program prefers: OpenBLAS where it was built in, else Eigen.
inline constexpr GemmProvider default_gemm_provider = openblas_available ? GemmProvider::OpenBlas : GemmProvider::Eigen;

/// The provider a new context starts with: the environment variable LCMAE_GEMM (`eigen` or
/// `openblas`) where it is set, so that a whole program or test suite can be run on either
/// provider without rebuilding; else default_gemm_provider. A value that names nothing, or
/// `openblas` in a build without it, is an error naming the value and what was expected.
inline GemmProvider initial_gemm_provider() {
    const char* env = std::getenv("LCMAE_GEMM");
    if (!env || !*env) return default_gemm_provider;
    const std::string v(env);
    if (v == "eigen") return GemmProvider::Eigen;
    LCMAE_CHECK(v == "openblas", "LCMAE_GEMM is '" << v << "'; expected 'eigen' or 'openblas' (or unset: "
                                                   << gemm_provider_name(default_gemm_provider) << ")");
    LCMAE_CHECK(openblas_available, "LCMAE_GEMM=openblas, but this program was built without OpenBLAS (link the "
                                    "lcmae::openblas CMake target; Debian: libopenblas-dev)");
    return GemmProvider::OpenBlas;
}

/// Makes the provider's own threading single-threaded (our panel split does the threading).
inline void make_provider_single_threaded() noexcept {
#ifdef LCMAE_HAVE_OPENBLAS
    openblas_set_num_threads(1);
#endif
}

}  // namespace lcmae::backend::cpu
