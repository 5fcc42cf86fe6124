// lcmae/backend/cpu/ops_cpu.hpp - backend::Cpu with its whole op catalogue (see ../ops.hpp).
#pragma once

#include "lcmae/backend/cpu.hpp"
#include "lcmae/backend/cpu/attention.hpp"
#include "lcmae/backend/cpu/elementwise.hpp"
#include "lcmae/backend/cpu/gemm.hpp"
#include "lcmae/backend/cpu/losses.hpp"
#include "lcmae/backend/cpu/memory.hpp"
#include "lcmae/backend/cpu/norm.hpp"
#include "lcmae/backend/cpu/optim.hpp"
#include "lcmae/backend/cpu/patches.hpp"
#include "lcmae/backend/cpu/tokens.hpp"
