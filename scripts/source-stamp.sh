#!/usr/bin/env bash
# scripts/source-stamp.sh - one hash of every source file the GPU check's binaries are built from
# (the library, the CUDA tests and benchmarks, the CMake files). scripts/gpu-prebuild.sh writes it
# next to the binaries it builds; scripts/gpu-check.sh uses carried binaries only when the
# checkout's stamp is the same (git may not travel with the checkout, so no commit id).
set -euo pipefail
cd "$(dirname "$0")/.."
find include tests/cuda tests/support bench/cuda CMakeLists.txt tests/CMakeLists.txt bench/CMakeLists.txt \
     -type f \( -name '*.hpp' -o -name '*.cuh' -o -name '*.cu' -o -name '*.cpp' -o -name '*.h' -o -name 'CMakeLists.txt' \) \
     -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
