// lcmae/backend/precision.hpp - the precision option of a backend's float GEMMs, shared by the CPU
// (cpu.hpp) and GPU (cuda/context.cuh) contexts so one enum names both.
//
//   Fp32 - strict FP32: the parity mode and the default on every backend.
//   Tf32 - tensor-core TF32 (GPU only; the CPU context rejects it).
//   Bf16 - GEMM operands rounded to bf16, FP32 accumulation, FP32 output; activations, weights and
//          the optimiser stay FP32 (CPU: AVX512-BF16 kernel in cpu/gemm_bf16.hpp).
#pragma once

namespace lcmae::backend {

enum class Precision { Fp32, Tf32, Bf16 };

inline const char* precision_name(Precision p) noexcept {
    switch (p) {
        case Precision::Fp32: return "fp32";
        case Precision::Tf32: return "tf32";
        case Precision::Bf16: return "bf16";
    }
    return "?";
}

}  // namespace lcmae::backend
