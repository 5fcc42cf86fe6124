#!/usr/bin/env bash
# The CUDA ops check for the lent GPU machine (no network there; see shared/GPU.md): runs test_cuda
# (CPU-vs-GPU parity of every op, errors printed per op) and bench_cuda_ops, logs under $OUT (or
# out/ when unset). Uses prebuilt binaries in BUILD_DIR (default build-no-native, the portable
# preset, so the host code also runs on the GPU machine's CPU): build them on the CPU machine with
#   cmake --preset no-native && cmake --build build-no-native -j2 --target test_cuda bench_cuda_ops
# and carry build-no-native/tests/cuda/test_cuda and build-no-native/bench/cuda/bench_cuda_ops;
# without them it configures and builds that preset there (a few minutes on 16 cores).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=${BUILD_DIR:-build-no-native}
out=${OUT:-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
if [[ ! -x $build/tests/cuda/test_cuda || ! -x $build/bench/cuda/bench_cuda_ops ]]; then
  echo "== building $build (not carried)"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLCMAE_NATIVE=OFF >"$out/configure.log" 2>&1 &&
    cmake --build "$build" -j"$(nproc)" --target test_cuda bench_cuda_ops >"$out/build.log" 2>&1 ||
    { tail -40 "$out/build.log" "$out/configure.log"; exit 1; }
fi
echo "== test_cuda"
timeout 300 "$build/tests/cuda/test_cuda" >"$out/test_cuda.log" 2>&1
test_rc=$?
grep -E "relative error|MESSAGE: (bad|absurd)" "$out/test_cuda.log" | sed -E 's/^.*MESSAGE: //' | sort | uniq >"$out/errors.txt"
echo "== bench_cuda_ops"
timeout 200 "$build/bench/cuda/bench_cuda_ops" >"$out/bench.log" 2>&1
bench_rc=$?
echo "== failures (test_cuda rc $test_rc)"
grep -B3 -A6 -E "ERROR|FATAL|exception" "$out/test_cuda.log" | head -80
echo "== worst errors per op"
awk -F'relative error ' '/relative error/ { split($2, a, " "); v = (a[1] ~ /inf|nan/) ? 1e300 : a[1] + 0; key = $1
  if (!(key in w) || v > w[key]) { w[key] = v; t[key] = $2 } }
  END { for (k in w) print k "relative error " t[k] }' "$out/errors.txt" | sort | cut -c1-150
echo "== fused attention: did its kernels run (or the batched fallback)?"
grep -hoE "device compute capability.*|fused kernels run.*" "$out/test_cuda.log" | sort | uniq -c
tail -3 "$out/test_cuda.log"
echo "== bench (rc $bench_rc)"
cat "$out/bench.log"
exit $((test_rc != 0 || bench_rc != 0))
