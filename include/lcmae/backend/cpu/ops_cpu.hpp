// lcmae/backend/cpu/ops_cpu.hpp - the CPU implementation of the op catalogue (see ../ops.hpp).
#pragma once

#include "lcmae/backend/cpu/attention.hpp"
#include "lcmae/backend/cpu/elementwise.hpp"
#include "lcmae/backend/cpu/gemm.hpp"
#include "lcmae/backend/cpu/norm.hpp"
#include "lcmae/backend/cpu/tokens.hpp"
