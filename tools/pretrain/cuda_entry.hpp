// tools/pretrain/cuda_entry.hpp - the seam between the main job's two translation units:
// cmd_pretrain.cpp (host compiler) calls train_on_cuda for --device cuda; cmd_pretrain_cuda.cu
// (nvcc) defines it where CMake found a CUDA compiler (LCMAE_PRETRAIN_CUDA); without one,
// cmd_pretrain.cpp defines it as an error that says so.
#pragma once

#include "pretrain/options.hpp"

namespace lcmae::dist {
class Mpi;
}

namespace lcmae::tools::pretrain {

struct Outcome;

/// 0 when --device cuda can run here; otherwise prints why (no visible GPU: 1; a build without
/// CUDA: 2) and returns that exit status. Called before anything is written.
int check_cuda(const Args& a);

/// Trains as `a` says on this rank's GPU (one process: device 0; under mpirun, `mpi` non-null:
/// the local rank's GPU and dist::Nccl). Returns the exit status and fills `outcome` as the
/// training loop does.
int train_on_cuda(const Args& a, const dist::Mpi* mpi, Outcome* outcome);

}  // namespace lcmae::tools::pretrain
