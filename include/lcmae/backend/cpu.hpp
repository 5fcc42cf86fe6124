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

#include "lcmae/backend/precision.hpp"
#include "lcmae/backend/cpu/gemm_provider.hpp"
#include "lcmae/backend/tag.hpp"
#include "lcmae/core/buffer.hpp"
#include "lcmae/core/error.hpp"

namespace lcmae::backend {

/// Whether this CPU executes AVX512-BF16 (vdpbf16ps), asked of CPUID at run time: the library is
/// built without -march flags, so the instruction set is never assumed from the compiler.
inline bool cpu_has_avx512_bf16() noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
    return false;
#endif
}

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
    explicit Cpu(int threads, Precision precision = Precision::Fp32) {
        // Eigen's thread count is process-global; ours is per context. Our GEMM threads by panels
        // (cpu/gemm.hpp), so Eigen itself always runs one thread: the same value for every context.
        Eigen::setNbThreads(1);
        cpu::make_provider_single_threaded();  // OpenBLAS too, where it is the provider
        set_threads(threads);
        set_precision(precision);
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

    /// Float GEMMs (gemm, gemm_batched, so attention too): Fp32 (the default, the parity mode) or
    /// Bf16 (operands rounded to bf16, FP32 accumulation and output; cpu/gemm_bf16.hpp). Double
    /// GEMMs and every other op stay in their own type. Bf16 needs AVX512-BF16: on a CPU without it
    /// this throws here, at set-up, rather than running a slow emulation that would only mislead a
    /// benchmark. Tf32 is a GPU mode and is rejected.
    void set_precision(Precision p) {
        LCMAE_CHECK(p != Precision::Tf32, "the CPU backend has no TF32 precision (use fp32 or bf16)");
        LCMAE_CHECK(p != Precision::Bf16 || cpu_has_avx512_bf16(),
                    "this CPU has no AVX512-BF16 (vdpbf16ps), so the CPU backend cannot run bf16 GEMMs; "
                    "use fp32");
        precision_ = p;
    }
    Precision precision() const noexcept { return precision_; }
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
    Precision precision_ = Precision::Fp32;
    cpu::GemmProvider gemm_provider_ = cpu::default_gemm_provider;
};

}  // namespace lcmae::backend
