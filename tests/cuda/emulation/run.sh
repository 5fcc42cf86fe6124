#!/usr/bin/env bash
# Builds and runs the CPU emulation of the fused attention kernels (no GPU, no CUDA toolkit needed):
#   tests/cuda/emulation/run.sh [build-dir]   (default /tmp/lcmae-fused-emulation)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-/tmp/lcmae-fused-emulation}"
mkdir -p "$out"
python3 "$here/extract.py" "$root/include/lcmae/backend/cuda/fused_attention.cuh" "$out/extracted.hpp"
${CXX:-g++} -std=c++20 -O1 -g -fno-omit-frame-pointer -ffp-contract=off -fsanitize=address,undefined \
    -I"$here" -I"$out" "$here/emulate_fused_attention.cpp" -o "$out/emulate_fused_attention" -pthread
"$out/emulate_fused_attention"
