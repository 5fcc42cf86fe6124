// lcmae/backend/cpu.hpp - the CPU backend tag: Eigen GEMMs on our buffers, OpenMP loops.
//
// A backend is a small tag type that also carries its run-time context. For the CPU that is the
// thread count (default: the cores OpenMP sees). The op catalogue (backend/ops.hpp) overloads every
// op on the backend type, so a model templated on Backend picks its implementation at compile time.
#pragma once

#include <omp.h>

#include <Eigen/Core>

#include "lcmae/core/error.hpp"

namespace lcmae::backend {

struct Cpu {
    static constexpr const char* name = "cpu";

    Cpu() : Cpu(omp_get_max_threads()) {}
    explicit Cpu(int threads) { set_threads(threads); }

    /// Sets the threads used by Eigen's GEMM and by our OpenMP loops. One level at a time: a loop
    /// that is parallel over (batch x heads) runs single-threaded GEMMs inside.
    void set_threads(int threads) {
        LCMAE_CHECK(threads >= 1, "the CPU backend needs at least 1 thread, got " << threads);
        threads_ = threads;
        omp_set_num_threads(threads);
        Eigen::setNbThreads(threads);
    }
    int threads() const noexcept { return threads_; }

private:
    int threads_ = 1;
};

}  // namespace lcmae::backend
