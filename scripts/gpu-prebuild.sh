#!/usr/bin/env bash
# scripts/gpu-prebuild.sh - builds, on this (CPU) machine, the executables the GPU check runs, for
# sm_90 and without -march=native, into prebuilt/ (git-ignored) with the source stamp they were
# built from (prebuilt/SOURCE_STAMP, scripts/source-stamp.sh). Carry `prebuilt` with the GPU
# check's run: the lease is then spent on the GPU, not on compiling. scripts/gpu-check.sh refuses
# binaries whose stamp differs from the checkout's (it builds from source then).
#
#   bash scripts/gpu-prebuild.sh            # ~5-10 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${GPU_PREBUILD_DIR:-build-cuda}
OUTDIR=${GPU_CHECK_PREBUILT:-prebuilt}
command -v nvcc >/dev/null || { echo "gpu-prebuild: nvcc not found on PATH" >&2; exit 1; }
CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DLCMAE_NATIVE=OFF >/dev/null
targets=(test_cuda bench_cuda_ops bench_cuda_step)
cmake --build "$BUILD" --target help | grep -q "test_nccl" && targets+=(test_nccl)
nice cmake --build "$BUILD" --target "${targets[@]}"
mkdir -p "$OUTDIR"
for t in "${targets[@]}"; do cp "$(find "$BUILD" -type f -name "$t" -perm -u+x | head -n 1)" "$OUTDIR/$t"; done
nvcc -O3 -arch=sm_90 -o "$OUTDIR/cublas_rate" bench/cuda/cublas_rate.cu -lcublas -Xlinker -rpath -Xlinker "$CUDA_HOME/lib64"
bash scripts/source-stamp.sh > "$OUTDIR/SOURCE_STAMP"
echo "gpu-prebuild: ${targets[*]} cublas_rate in $OUTDIR, source stamp $(cat "$OUTDIR/SOURCE_STAMP")"
