#!/usr/bin/env bash
# The whole GPU check in one run, for the lent GPU machine (see bench/README.md, "GPU check"):
# card info, cuBLAS rates (bench/cuda/cublas_rate.cu), lcmae's CUDA tests and benchmarks (built
# here from source), and the PyTorch figures to beat (bench/compare_pytorch_gpu.py); ONE summary
# table last. Every stage has its own `timeout` and the whole run a budget (GPU_CHECK_BUDGET,
# 450 s), so it ends in under 8 minutes even if something hangs; a failing stage does not stop
# the others. Run from the repository root:
#
#   OUT=/some/dir bash scripts/gpu-check.sh     # logs and JSON under $OUT (default ./gpu-check-out)
#   bash scripts/gpu-check.sh --dry-run         # print the plan, run nothing
#
# Exit code: 0 all ran and passed; 1 a test, the configure or the build failed; 2 only a
# benchmark stage failed (or timed out); 3 no GPU was found (a rehearsal: GPU stages skipped).
# Knobs (environment): GPU_CHECK_BUDGET (s), GPU_CHECK_ARCH (90), GPU_CHECK_BUILD_DIR (build-gpu),
# GPU_CHECK_TEST_TARGET (test_cuda), GPU_CHECK_CTEST_REGEX (cuda), GPU_CHECK_BENCH_TARGETS
# ("bench_cuda_ops bench_cuda_step"), GPU_CHECK_BENCH_ARGS and GPU_CHECK_PYTORCH_ARGS (extra
# arguments for those), GPU_CHECK_NO_GPU_OK=1 (run the GPU stages even without a GPU: for
# rehearsals with CPU stand-ins, e.g. GPU_CHECK_TEST_TARGET=test_core GPU_CHECK_CTEST_REGEX=core).
set -uo pipefail   # not -e: a failing stage must not stop the others
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

DRY_RUN=0
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "usage: bash scripts/gpu-check.sh [--dry-run]" >&2; exit 64 ;;
esac

OUT=${OUT:-$PWD/gpu-check-out}
BUDGET=${GPU_CHECK_BUDGET:-450}
ARCH=${GPU_CHECK_ARCH:-90}
BUILD=${GPU_CHECK_BUILD_DIR:-build-gpu}
PREBUILT=${GPU_CHECK_PREBUILT:-prebuilt}   # carried executables (see bench/README.md, "GPU check")
# Carried binaries count only when they were built from this checkout's sources (scripts/
# gpu-prebuild.sh writes $PREBUILT/SOURCE_STAMP); stale ones would test yesterday's code.
# GPU_CHECK_PREBUILT_ANY=1 uses them regardless.
PREBUILT_NOTE=""
if [[ -d $PREBUILT && ${GPU_CHECK_PREBUILT_ANY:-0} != 1 ]]; then
  _want=$(bash "$(dirname "$0")/source-stamp.sh" 2>/dev/null || echo none)
  _have=$(cat "$PREBUILT/SOURCE_STAMP" 2>/dev/null || echo missing)
  if [[ $_want != "$_have" ]]; then
    PREBUILT_NOTE="ignored $PREBUILT/: built from sources $_have, the checkout is $_want (run scripts/gpu-prebuild.sh)"
    PREBUILT=/nonexistent-prebuilt
  fi
fi
TEST_TARGET=${GPU_CHECK_TEST_TARGET:-test_cuda}
CTEST_REGEX=${GPU_CHECK_CTEST_REGEX:-cuda}
read -r -a BENCH_TARGETS <<< "${GPU_CHECK_BENCH_TARGETS:-bench_cuda_ops bench_cuda_step}"
read -r -a BENCH_ARGS <<< "${GPU_CHECK_BENCH_ARGS:-}"
read -r -a PYTORCH_ARGS <<< "${GPU_CHECK_PYTORCH_ARGS:-}"
NO_GPU_OK=${GPU_CHECK_NO_GPU_OK:-0}
PYTORCH_RESERVE=100   # seconds kept free for the PyTorch stage while the stages before it run
JOBS=$(nproc 2>/dev/null || echo 4)
START=$(date +%s)
DEADLINE=$((START + BUDGET))
mkdir -p "$OUT" || { echo "error: cannot create $OUT" >&2; exit 1; }
((DRY_RUN)) || mkdir -p "$BUILD" || { echo "error: cannot create $BUILD" >&2; exit 1; }
OUT=$(cd "$OUT" && pwd)

# ---- the tools -------------------------------------------------------------------------------
NVCC=$(command -v nvcc || true)
if [[ -z $NVCC ]]; then
  for c in /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc; do
    [[ -x $c ]] && { NVCC=$c; break; }
  done
fi
if [[ -n $NVCC ]]; then
  CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
  export PATH="$CUDA_HOME/bin:$PATH"
fi
# The toolkit's lib64 goes on LD_LIBRARY_PATH for our C++ stages only (their binaries carry an
# rpath anyway); never for PyTorch, which brings its own CUDA libraries.
CXX_LD_PATH="${CUDA_HOME:+$CUDA_HOME/lib64}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
HAVE_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 &&
   [[ -n $(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null) ]]; then
  HAVE_GPU=1
fi
GPU_OK=$HAVE_GPU
[[ $NO_GPU_OK == 1 || $DRY_RUN == 1 ]] && GPU_OK=1   # a dry run shows every stage's command

# ---- stages ----------------------------------------------------------------------------------
NAMES=() RESULTS=() TIMES=() NOTES=()
FAIL_TEST=0 FAIL_BENCH=0

record() {  # name result seconds note
  NAMES+=("$1") RESULTS+=("$2") TIMES+=("$3") NOTES+=("${4:-}")
  printf '== %s: %s (%s s)%s\n' "$1" "$2" "$3" "${4:+ - $4}"
}

# run_stage NAME KIND CAP TAIL CMD...: runs CMD under `timeout` into $OUT/NAME.log, prints the
# log's last TAIL lines (all when 0), records PASS / FAIL / TIMEOUT. KIND: test (a failure makes
# the exit code 1) or bench (2). The cap shrinks to what the budget has left (minus the PyTorch
# reserve for stages before it); a stage left with under 5 s is skipped.
run_stage() {
  local name=$1 kind=$2 cap=$3 tail_n=$4
  shift 4
  local reserve=$PYTORCH_RESERVE
  [[ $name == pytorch ]] && reserve=0
  local left=$((DEADLINE - $(date +%s) - reserve))
  ((cap > left)) && cap=$left
  if ((cap < 5)); then
    record "$name" skipped 0 "no time left in the ${BUDGET} s budget"
    return 1
  fi
  echo
  echo "== $name (cap ${cap} s): $*"
  if ((DRY_RUN)); then
    record "$name" planned 0
    return 0
  fi
  local t0 rc log="$OUT/$name.log"
  t0=$(date +%s)
  if [[ $name == pytorch ]]; then
    timeout -k 10 "$cap" "$@" >"$log" 2>&1
  else
    LD_LIBRARY_PATH=$CXX_LD_PATH timeout -k 10 "$cap" "$@" >"$log" 2>&1
  fi
  rc=$?
  local dt=$(($(date +%s) - t0))
  if ((tail_n > 0)) && (($(wc -l <"$log") > tail_n)); then
    echo "   ... (last $tail_n lines; all in $log)"
    tail -n "$tail_n" "$log"
  else
    cat "$log"
  fi
  if ((rc == 0)); then
    record "$name" PASS "$dt"
    return 0
  fi
  if ((rc == 124 || rc == 137)); then
    record "$name" TIMEOUT "$dt" "killed at the ${cap} s cap"
  else
    record "$name" FAIL "$dt" "exit code $rc"
  fi
  if [[ $kind == test ]]; then FAIL_TEST=1; else FAIL_BENCH=1; fi
  return 1
}

have_target() {  # the target exists in the configured build tree
  grep -qE "^(\.\.\. )?$1(: | |$)" "$OUT/targets.txt" 2>/dev/null
}

find_exe() {  # path of a built executable: a carried prebuilt one first, else the build tree
  if [[ -x $PREBUILT/$1 ]]; then echo "$PREBUILT/$1"; return; fi
  find "$BUILD" -type f -name "$1" -perm -u+x 2>/dev/null | head -n 1
}

# ---- 0. the machine --------------------------------------------------------------------------
info() {
  echo "== gpu-check: $(date '+%Y-%m-%d %H:%M:%S %Z'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
       "budget ${BUDGET} s, logs in $OUT"
  if command -v nvidia-smi >/dev/null 2>&1; then
    timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv ||
      echo "nvidia-smi failed"
    ((DRY_RUN)) || timeout 20 nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
  else
    echo "nvidia-smi: not found"
  fi
  if [[ -n $NVCC ]]; then
    echo "nvcc: $NVCC: $("$NVCC" --version | grep -i release)"
  else
    echo "nvcc: not found (looked on PATH and in /usr/local/cuda*/bin)"
  fi
  echo "cmake: $(cmake --version 2>/dev/null | head -n 1 || echo 'not found'); ninja: $(ninja --version 2>/dev/null || echo 'not found')"
  echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1), $JOBS cores"
  [[ -n $PREBUILT_NOTE ]] && echo "prebuilt: $PREBUILT_NOTE"
  echo "python: $(timeout 60 python3 -c 'import torch, sys; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -n 1)"
  if ((HAVE_GPU == 0)); then
    echo
    echo "!! NO GPU FOUND (nvidia-smi missing or lists no GPU): the stages that need one are skipped;"
    echo "!! this run is a rehearsal of the others. Exit code 3 unless something failed."
  fi
}

# ---- the plan --------------------------------------------------------------------------------
main() {
  info
  local bin=$BUILD/cublas_rate
  ((DRY_RUN)) && echo && echo "== DRY RUN: the plan (nothing is run)"

  # 1. cuBLAS rates: standalone, so they come even if the lcmae build breaks.
  if [[ -x $PREBUILT/cublas_rate ]] && ((DRY_RUN == 0)); then
    bin=$PREBUILT/cublas_rate
    record cublas-build skipped 0 "prebuilt"
  elif [[ -z $NVCC ]]; then
    record cublas-build skipped 0 "no nvcc"
  else
    run_stage cublas-build bench 90 20 "$NVCC" -O3 -arch=sm_"$ARCH" -o "$bin" bench/cuda/cublas_rate.cu -lcublas \
      -Xlinker -rpath -Xlinker "$CUDA_HOME/lib64"
  fi
  if ((GPU_OK == 0)); then
    record cublas-run skipped 0 "no GPU"
  elif [[ -x $bin ]] || ((DRY_RUN)); then
    run_stage cublas-run bench 60 0 "$bin" --json "$OUT/cublas_rate.json"
  else
    record cublas-run skipped 0 "not built"
  fi

  # 2. lcmae: configure, build only the check's targets (those that exist and were not carried
  # prebuilt: executables built ahead on the CPU machine with nvcc for sm_90, in $PREBUILT), test,
  # benchmark.
  local configured=0 need=0 t
  # test_nccl (issue 11: dist::Nccl on one GPU, one rank) exists where CMake found MPI and NCCL
  local extra_tests=(test_nccl)
  for t in "$TEST_TARGET" "${BENCH_TARGETS[@]}"; do [[ -x $PREBUILT/$t ]] || need=1; done
  if ((need == 0)) && ((DRY_RUN == 0)); then
    record configure skipped 0 "all targets prebuilt in $PREBUILT"
  elif run_stage configure test 90 15 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
       -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DLCMAE_NATIVE=ON; then
    configured=1
    ((DRY_RUN)) || cmake --build "$BUILD" --target help >"$OUT/targets.txt" 2>&1
  fi
  local targets=()
  for t in "$TEST_TARGET" "${extra_tests[@]}" "${BENCH_TARGETS[@]}"; do
    if [[ -x $PREBUILT/$t ]] && ((DRY_RUN == 0)); then
      echo "== $t: prebuilt ($PREBUILT/$t)"
    elif ((DRY_RUN)) || have_target "$t"; then
      targets+=("$t")
    elif ((configured)); then
      echo "== target $t does not exist in this tree: skipped"
    fi
  done
  if ((need == 0)) && ((DRY_RUN == 0)); then
    record build skipped 0 "prebuilt"
  elif ((!configured)); then
    record build skipped 0 "configure failed"
  elif ((${#targets[@]} == 0)); then
    record build skipped 0 "none of $TEST_TARGET ${BENCH_TARGETS[*]} exists yet"
  else
    # One Ninja run that keeps going (-k 0): a target that fails to build does not stop the others,
    # and each later stage runs if its own executable came out (stale ones are removed first).
    ((DRY_RUN)) || for t in "${targets[@]}"; do rm -f "$(find_exe "$t")"; done
    run_stage build test 210 25 cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]}" -- -k 0
  fi

  local exe
  exe=$(find_exe "$TEST_TARGET")
  if ((DRY_RUN)) || [[ -n $exe ]]; then
    if ((GPU_OK == 0)); then
      record ctest skipped 0 "no GPU"
      record "$TEST_TARGET" skipped 0 "no GPU"
    else
      # (no separate ctest pass: it would run the same executable twice on the lease's time)
      # doctest: --duration lists every test case with its time; the summary line closes it.
      # (doctest's -s means --success, every passing assertion: too much output for this log.)
      run_stage "$TEST_TARGET" test 90 40 "${exe:-$BUILD/tests/$TEST_TARGET}" --duration=true
    fi
  else
    record ctest skipped 0 "$TEST_TARGET not built"
  fi

  # dist::Nccl (issue 11): the NCCL unique id over MPI, a single-GPU ncclAllReduce / ncclBroadcast on
  # the compute stream checked against the input, and SyncBatchNorm's CUDA ops against a double
  # reference. One rank (mpirun -np 1; as root it needs --allow-run-as-root).
  exe=$(find_exe test_nccl)
  if ((DRY_RUN)) || [[ -n $exe ]]; then
    if ((GPU_OK == 0)); then
      record test_nccl skipped 0 "no GPU"
    else
      local launch=()
      if command -v mpirun >/dev/null 2>&1; then
        launch=(mpirun -np 1)
        [[ $(id -u) -eq 0 ]] && launch+=(--allow-run-as-root)
      fi
      run_stage test_nccl test 60 30 "${launch[@]}" "${exe:-$BUILD/tests/cuda/test_nccl}" --duration=true
    fi
  else
    record test_nccl skipped 0 "not built (this tree found no MPI or NCCL)"
  fi

  for t in "${BENCH_TARGETS[@]}"; do
    exe=$(find_exe "$t")
    if ! ((DRY_RUN)) && [[ -z $exe ]]; then
      record "$t" skipped 0 "not built"
      continue
    fi
    if ((GPU_OK == 0)); then
      record "$t" skipped 0 "no GPU"
      continue
    fi
    exe=${exe:-$BUILD/bench/$t}
    # A Google Benchmark binary names benchmark:: symbols (linked statically or not).
    if [[ $t == bench_cuda_step ]]; then
      run_stage "$t" bench 120 0 "$exe" --json "$OUT/lcmae_step.json" "${BENCH_ARGS[@]}"
      # the same steps with the fused attention (AttentionPath::Fused: TF32 / BF16 only; Fp32 falls back)
      run_stage "bench_cuda_step_fused" bench 90 0 "$exe" --attention fused --precision tf32,bf16 \
        --json "$OUT/lcmae_step_fused.json" "${BENCH_ARGS[@]}"
      # and with the step's forward + backward replayed as a CUDA graph (backend/cuda/graph.cuh)
      run_stage "bench_cuda_step_graph" bench 60 0 "$exe" --graph --precision tf32 \
        --json "$OUT/lcmae_step_graph.json" "${BENCH_ARGS[@]}"
    elif ((DRY_RUN)) || grep -qa _ZN9benchmark "$exe" 2>/dev/null; then
      run_stage "$t" bench 60 0 "$exe" --benchmark_counters_tabular=true \
        --benchmark_out="$OUT/$t.json" --benchmark_out_format=json "${BENCH_ARGS[@]}"
    else
      run_stage "$t" bench 60 0 "$exe" "${BENCH_ARGS[@]}"
    fi
  done

  # 3. PyTorch: the figures to beat (five configurations; its own --budget inside the cap).
  local dev=cuda a
  for a in "${PYTORCH_ARGS[@]}"; do [[ $a == cpu ]] && dev=cpu; done
  if [[ $dev == cuda ]] && ((GPU_OK == 0)); then
    record pytorch skipped 0 "no GPU"
  elif ! timeout 60 python3 -c 'import torch' >/dev/null 2>&1; then
    record pytorch skipped 0 "python3 cannot import torch"
  else
    local cap=240 left=$((DEADLINE - $(date +%s)))
    ((cap > left)) && cap=$left
    run_stage pytorch bench "$cap" 0 python3 -u bench/compare_pytorch_gpu.py --json "$OUT/pytorch_gpu.json" \
      --budget $((cap > 40 ? cap - 20 : 20)) "${PYTORCH_ARGS[@]}"
  fi

  summary
}

# ---- the summary, last -----------------------------------------------------------------------
summary() {
  local total=$(($(date +%s) - START)) card i
  card=$(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
  {
    echo
    echo "## GPU check summary ($(date '+%Y-%m-%d %H:%M'), ${total} s in all)"
    echo
    echo "| item | result | s |"
    echo "|---|---|---:|"
    echo "| card | ${card:-no GPU found} | |"
    for i in "${!NAMES[@]}"; do
      echo "| ${NAMES[$i]} | ${RESULTS[$i]}${NOTES[$i]:+ (${NOTES[$i]})} | ${TIMES[$i]} |"
    done
    if ((!DRY_RUN)) && command -v python3 >/dev/null 2>&1; then
      python3 - "$OUT" <<'PY' || echo "| key numbers | (could not be read; see the JSON files in $OUT) | |"
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
c = load("cublas_rate.json")
if c:
    for mode in ("BF16", "TF32", "FP32"):
        rs = [r for r in c["results"] if r["mode"] == mode]
        cells = ", ".join(f"{r['shape']} {r['tflops']:.0f}" + ("" if r["ok"] else " (check FAILED)") for r in rs)
        print(f"| cuBLAS {mode} TFLOP/s | {cells} | |")
p = load("pytorch_gpu.json")
if p:
    for r in sorted(p["results"], key=lambda r: r["id"]):
        if r.get("images_per_s"):
            mem = r.get("peak_mem_gib")
            val = (f"{r['images_per_s']:,.0f} images/s, {r['s_per_step']:.4f} s/step, "
                   f"{r['tflops']:.0f} TFLOP/s" + (f", {mem:.1f} GiB peak" if mem is not None else ""))
        else:
            val = "-"
        st = "" if r["status"] == "ok" else f" [{r['status']}]"
        print(f"| PyTorch ({r['id']}) {r['name']} | {val}{st} | |")
for fn, tag in (("lcmae_step.json", ""), ("lcmae_step_fused.json", ", fused attention"),
                ("lcmae_step_graph.json", ", CUDA graph")):
    s = load(fn)
    if not s:
        continue
    for r in s.get("rows", []):
        print(f"| lcmae {r['model']} {r['precision']} (batch {r['batch']}{tag}) | {r['images_per_s']:,.0f} images/s, "
              f"{r['s_per_step']:.4f} s/step, {r['tflops']:.0f} TFLOP/s, {r['peak_gpu_gib']:.1f} GiB peak | |")
std = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
       "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit", "aggregate_name",
       "aggregate_unit", "label", "error_occurred", "error_message"}
for fn in sorted(os.listdir(out)):
    if not (fn.startswith("bench_") and fn.endswith(".json")):
        continue
    b = load(fn)
    if not b:
        continue
    rows = [r for r in b.get("benchmarks", []) if r.get("run_type") != "aggregate"]
    for r in rows[:12]:
        extra = ", ".join(f"{k} {v:.4g}" for k, v in r.items() if k not in std and isinstance(v, (int, float)))
        err = f" ERROR {r.get('error_message', '')}" if r.get("error_occurred") else ""
        print(f"| lcmae {r['name']} | {r['real_time']:.4g} {r['time_unit']}{', ' + extra if extra else ''}{err} | |")
    if len(rows) > 12:
        print(f"| lcmae {fn} | ... {len(rows) - 12} more in {fn} | |")
PY
    fi
    echo
    if ((DRY_RUN)); then
      echo "dry run: nothing was run"
    elif ((FAIL_TEST)); then
      echo "RESULT: FAILED (a test, the configure or the build failed) - exit 1"
    elif ((FAIL_BENCH)); then
      echo "RESULT: a benchmark stage failed or timed out (tests fine) - exit 2"
    elif ((HAVE_GPU == 0)); then
      echo "RESULT: no GPU found; rehearsal only - exit 3"
    else
      echo "RESULT: all stages that ran passed - exit 0"
    fi
  } | tee "$OUT/summary.md"
}

exit_code() {
  if ((DRY_RUN)); then echo 0
  elif ((FAIL_TEST)); then echo 1
  elif ((FAIL_BENCH)); then echo 2
  elif ((HAVE_GPU == 0)); then echo 3
  else echo 0
  fi
}

# Everything also goes to $OUT/gpu-check.log; the pipe keeps the exit code of main's last word.
run_all() { main; return "$(exit_code)"; }
run_all 2>&1 | tee "$OUT/gpu-check.log"
exit "${PIPESTATUS[0]}"
