#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp) with clang and runs each one.
#
#   fuzz/run.sh            30 seconds per target (what CI runs)
#   fuzz/run.sh 3600       an hour per target
#   fuzz/run.sh corpus     each target once over its seed corpus only (a few seconds)
#   fuzz/run.sh 600 idx    only the named targets (json, safetensors, idx, cifar)
#
# Each target starts from a scratch copy of fuzz/corpus/<reader>/ (the committed seeds never
# change); what it finds goes to build-fuzz/findings/<reader>/ (crash-*, oom-*, timeout-*) and the
# script fails. Reproduce a finding with: build-fuzz/fuzz_<reader> build-fuzz/findings/<reader>/crash-...
# Environment: CXX (default clang++-14, else clang++), LCMAE_FUZZ_JOBS (parallel builds, 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

budget=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(json safetensors idx cifar)
if [[ $budget != corpus && ! $budget =~ ^[0-9]+$ ]]; then
  echo "usage: fuzz/run.sh [seconds|corpus] [target...]" >&2
  exit 2
fi

if [[ -z ${CXX:-} ]]; then
  CXX=$(command -v clang++-14 || command -v clang++ || true)
fi
[[ -n $CXX ]] || { echo "fuzz/run.sh: no clang++ (Debian: apt-get install clang-14)" >&2; exit 1; }

out=build-fuzz
mkdir -p "$out"
# shellcheck disable=SC2054  # -fsanitize takes a comma list
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
  -fno-omit-frame-pointer -Iinclude -isystem /usr/include/opencv4)
declare -A libs=([json]="" [safetensors]="" [idx]="-lz -lopencv_core" [cifar]="-lopencv_core")

start=$(date +%s)
echo "== fuzz: build (${CXX})"
pids=()
for t in "${targets[@]}"; do
  [[ -v "libs[$t]" ]] || { echo "fuzz/run.sh: unknown target '$t'" >&2; exit 2; }
  # shellcheck disable=SC2086  # the library list splits on purpose
  "$CXX" "${flags[@]}" "fuzz/fuzz_$t.cpp" -o "$out/fuzz_$t" ${libs[$t]} &
  pids+=($!)
  if ((${#pids[@]} >= ${LCMAE_FUZZ_JOBS:-2})); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
echo "== fuzz: built in $(($(date +%s) - start)) s"

failed=()
for t in "${targets[@]}"; do
  work="$out/corpus/$t" findings="$out/findings/$t"
  rm -rf "$work" "$findings"
  mkdir -p "$work" "$findings"
  cp fuzz/corpus/"$t"/* "$work"/
  common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -artifact_prefix="$findings/" -print_final_stats=1)
  if [[ $budget == corpus ]]; then
    echo "== fuzz: $t over its corpus"
    run=("$out/fuzz_$t" "${common[@]}" -runs=0 "$work")
  else
    echo "== fuzz: $t for $budget s"
    run=("$out/fuzz_$t" "${common[@]}" -max_total_time="$budget" "$work")
  fi
  if ! "${run[@]}" >"$out/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "$out/$t.log"
    echo "== fuzz: $t FAILED; findings in $findings/, log $out/$t.log"
  else
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$out/$t.log" | tail -n 2 || true
  fi
done
echo "== fuzz: done in $(($(date +%s) - start)) s"
if ((${#failed[@]})); then
  echo "== fuzz: findings in: ${failed[*]}" >&2
  exit 1
fi
