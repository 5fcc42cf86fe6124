// lcmae/backend/cuda.cuh - the CUDA backend: backend::Cuda and every op of the catalogue
// (backend/ops.hpp) overloaded on it in namespace lcmae::ops. Include from .cu files only (nvcc);
// the CPU build never sees this. Pointers passed to the ops are device pointers.
// backend::Cuda satisfies backend::Backend<Cuda, float> and <Cuda, double> (checked below), so
// models::LcmaeModel<T, backend::Cuda> and train::Trainer<T, backend::Cuda> run on it.
#pragma once

#include "lcmae/backend/cuda/check.cuh"
#include "lcmae/backend/cuda/context.cuh"
#include "lcmae/backend/cuda/launch.cuh"
#include "lcmae/backend/cuda/memory.cuh"
#include "lcmae/backend/cuda/gemm.cuh"
#include "lcmae/backend/cuda/elementwise.cuh"
#include "lcmae/backend/cuda/norm.cuh"
#include "lcmae/backend/cuda/attention.cuh"
#include "lcmae/backend/cuda/tokens.cuh"
#include "lcmae/backend/cuda/reduce.cuh"
#include "lcmae/backend/cuda/patches.cuh"
#include "lcmae/backend/cuda/losses.cuh"
#include "lcmae/backend/cuda/optim.cuh"
#include "lcmae/backend/cuda/graph.cuh"

#include "lcmae/backend/backend.hpp"
static_assert(lcmae::backend::Backend<lcmae::backend::Cuda, float>, "backend::Cuda must provide every catalogue op (float)");
static_assert(lcmae::backend::Backend<lcmae::backend::Cuda, double>, "backend::Cuda must provide every catalogue op (double)");
