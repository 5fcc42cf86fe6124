#!/usr/bin/env bash
# Quick GPU check of the CUDA model backend with prebuilt binaries in build-cuda (carry them): test_cuda
# (all parity tests, logs under $OUT), bench_cuda_step --small, then (FULL=1, the default) the ViT-B/16
# batch-128 step; prints the worst error per check. Run from the repository root on the GPU machine.
OUT=${OUT:-out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
B=build-cuda
timeout 120 $B/tests/cuda/test_cuda > $OUT/test.log 2>&1; echo "test_cuda rc=$?"
grep -E "relative error|worst tensor|identical|DIFFERENT" $OUT/test.log | sed -E 's/^.*MESSAGE: //' > $OUT/errors.txt
echo "== failures"; grep -B4 -A8 -E "ERROR|FATAL|exception" $OUT/test.log | head -60
echo "== worst per check"; awk -F'relative error ' '/relative error/ { split($2,a," "); v=(a[1] ~ /inf|nan/)?1e300:a[1]+0; k=$1; gsub(/ R[0-9]+ D[0-9]+| B[0-9]+| rows [0-9]+| step [0-9]/,"",k); if(!(k in w)||v>w[k]){w[k]=v;t[k]=a[1]" "a[2]" "a[3]}} END{for(k in w) print k ": " t[k]}' $OUT/errors.txt | sort | cut -c1-140 | head -90
tail -3 $OUT/test.log
timeout 60 $B/bench/cuda/bench_cuda_step --small --json $OUT/small.json > $OUT/bench_small.log 2>&1; echo "bench small rc=$?"; tail -12 $OUT/bench_small.log
if [[ "${FULL:-1}" == 1 ]]; then
  timeout 120 $B/bench/cuda/bench_cuda_step --json $OUT/step.json > $OUT/bench_step.log 2>&1; echo "bench ViT-B/16 rc=$?"; tail -14 $OUT/bench_step.log
fi
