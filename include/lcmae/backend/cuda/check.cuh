// lcmae/backend/cuda/check.cuh - turning CUDA runtime and cuBLAS failures into lcmae::Error.
//
// Every CUDA/cuBLAS call in the backend goes through one of these macros, and every kernel launch is
// followed by LCMAE_CUDA_CHECK_LAUNCH: a failed call throws lcmae::Error whose message names the
// source location, the call as written, the numeric code and the library's own string for it.
//
// Why the runtime's last error is cleared before throwing: a non-sticky failure (a cudaMalloc that
// ran out of memory, a bad launch configuration) is also recorded as the runtime's "last error",
// which the NEXT launch check would read back and blame on an innocent kernel. A caller that catches
// our Error and carries on must find the runtime clean. (Sticky errors - a kernel that faulted -
// cannot be cleared; every later call then throws too, which is the truth.)
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <sstream>
#include <string>

#include "lcmae/core/error.hpp"

namespace lcmae::backend::cuda_detail {

[[noreturn]] inline void throw_cuda(const char* file, int line, const char* call, cudaError_t code) {
    (void)cudaGetLastError();  // clear a non-sticky error (see above)
    std::ostringstream os;
    os << call << " failed with CUDA error " << int(code) << " (" << cudaGetErrorName(code) << ": "
       << cudaGetErrorString(code) << ')';
    ::lcmae::detail::throw_error(file, line, "", os.str());
}

[[noreturn]] inline void throw_cublas(const char* file, int line, const char* call, cublasStatus_t code) {
    (void)cudaGetLastError();
    std::ostringstream os;
    os << call << " failed with cuBLAS status " << int(code) << " (" << cublasGetStatusName(code) << ": "
       << cublasGetStatusString(code) << ')';
    ::lcmae::detail::throw_error(file, line, "", os.str());
}

}  // namespace lcmae::backend::cuda_detail

/// Throws lcmae::Error when a CUDA runtime call does not return cudaSuccess.
#define LCMAE_CUDA_CHECK(call)                                                                   \
    do {                                                                                         \
        const cudaError_t lcmae_cuda_err_ = (call);                                              \
        if (lcmae_cuda_err_ != cudaSuccess)                                                      \
            ::lcmae::backend::cuda_detail::throw_cuda(__FILE__, __LINE__, #call, lcmae_cuda_err_); \
    } while (false)

/// Throws lcmae::Error when a cuBLAS (or cuBLASLt) call does not return CUBLAS_STATUS_SUCCESS.
#define LCMAE_CUBLAS_CHECK(call)                                                                     \
    do {                                                                                             \
        const cublasStatus_t lcmae_cublas_st_ = (call);                                              \
        if (lcmae_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                               \
            ::lcmae::backend::cuda_detail::throw_cublas(__FILE__, __LINE__, #call, lcmae_cublas_st_); \
    } while (false)

/// After a <<<...>>> launch: a bad configuration is reported here, naming the kernel. (Faults inside
/// the kernel surface later, at the next synchronising call, as a sticky error.)
#define LCMAE_CUDA_CHECK_LAUNCH(kernel_name)                                                           \
    do {                                                                                               \
        const cudaError_t lcmae_cuda_err_ = cudaGetLastError();                                        \
        if (lcmae_cuda_err_ != cudaSuccess)                                                            \
            ::lcmae::backend::cuda_detail::throw_cuda(__FILE__, __LINE__, "launch of " kernel_name,    \
                                                      lcmae_cuda_err_);                                \
    } while (false)
