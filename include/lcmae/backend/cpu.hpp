// lcmae/backend/cpu.hpp - the CPU backend context: Eigen GEMMs on our buffers, OpenMP loops.
//
// A backend is a small context type (a value: threads here; stream and handles on the GPU) that
// names its memory handle `ptr<T>` and its owning buffer `buffer<T>`. Every op is a free function
// in namespace lcmae::ops whose first argument is the context (backend/ops.hpp lists them and the
// Backend concept in backend/backend.hpp checks them). On the CPU a handle is a plain pointer and a
// buffer is a 64-byte aligned host array, so CPU code and tests can also read tensors directly.
#pragma once

#include <omp.h>

#include <Eigen/Core>

#include "lcmae/backend/cpu/gemm_provider.hpp"
#include "lcmae/backend/tag.hpp"
#include "lcmae/core/buffer.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::backend {

struct Cpu : ops::BackendTag {
    static constexpr const char* name = "cpu";
    /// Handles are host pointers: generic code may not dereference them (backend::Strict in the
    /// tests proves it does not), CPU-only code and tests may.
    template <class T>
    using ptr = T*;
    /// One owning allocation (zeroed on resize): arenas and every per-step tensor live in these.
    template <class T>
    using buffer = AlignedBuffer<T>;
    /// Host code may read this backend's memory without a download.
    static constexpr bool host_memory = true;

    Cpu() : Cpu(omp_get_max_threads()) {}
    explicit Cpu(int threads) {
        // Eigen's thread count is process-global; ours is per context. Our GEMM threads by panels
        // (cpu/gemm.hpp), so Eigen itself always runs one thread: the same value for every context.
        Eigen::setNbThreads(1);
        cpu::make_provider_single_threaded();  // OpenBLAS too, where it is the provider
        set_threads(threads);
        gemm_provider_ = cpu::initial_gemm_provider();  // LCMAE_GEMM, else OpenBLAS where built in
    }

    /// The threads our OpenMP loops and GEMM panels use. The count is this context's own value:
    /// every parallel region names it (num_threads), so two contexts never change each other.
    /// Eigen's own thread count is set to 1 once: our GEMM splits panels itself.
    void set_threads(int threads) {
        LCMAE_CHECK(threads >= 1, "the CPU backend needs at least 1 thread, got " << threads);
        threads_ = threads;
    }
    int threads() const noexcept { return threads_; }
    /// Who runs each single-threaded GEMM (cpu/gemm_provider.hpp): OpenBLAS where the program
    /// links lcmae::openblas, else Eigen. Switching changes speed, not the contract; the last bits
    /// of a float result may differ between providers (another summation order).
    cpu::GemmProvider gemm_provider() const noexcept { return gemm_provider_; }
    void set_gemm_provider(cpu::GemmProvider p) {
        LCMAE_CHECK(p == cpu::GemmProvider::Eigen || cpu::openblas_available,
                    "the OpenBLAS GEMM provider was asked for, but this program was built without it "
                    "(link the lcmae::openblas CMake target; Debian: libopenblas-dev)");
        gemm_provider_ = p;
    }
    /// Work is done when an op returns.
    void synchronize() const noexcept {}

private:
    int threads_ = 1;
    cpu::GemmProvider gemm_provider_ = cpu::default_gemm_provider;
};

}  // namespace lcmae::backend
