#!/usr/bin/env bash
# Builds module test executables with AddressSanitizer + UndefinedBehaviorSanitizer (g++, -O1 -g,
# no -march=native) in build-sanitize/ and runs them through CTest; any sanitizer report fails.
#
#   scripts/sanitize.sh                 io and data (what scripts/test.sh runs in CI)
#   scripts/sanitize.sh io data models  any modules (tests/<module>/); models costs most, see
#                                       docs/robustness.md for the measured times
# Environment: LCMAE_JOBS (parallel build jobs, default nproc), CXX (default g++).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

modules=("$@")
((${#modules[@]})) || modules=(io data)
jobs=${LCMAE_JOBS:-$(nproc)}
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
dir=build-sanitize

start=$(date +%s)
echo "== sanitize: configure ${dir}/ (ASan + UBSan, -O1 -g)"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
  -DCMAKE_CXX_FLAGS="$san" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" -DLCMAE_NATIVE=OFF \
  -DLCMAE_BUILD_EXAMPLES=OFF -DLCMAE_BUILD_BENCHMARKS=OFF -DLCMAE_BUILD_CUDA_TESTS=OFF >/dev/null

tests=() targets=()
for m in "${modules[@]}"; do
  targets+=("test_$m")
  tests+=("$m")
  [[ $m == data ]] && tests+=(data_fashion_mnist)
done
for m in "${modules[@]}"; do
  t0=$(date +%s)
  echo "== sanitize: build test_$m (-j${jobs})"
  cmake --build "$dir" -j"$jobs" --target "test_$m"
  echo "== sanitize: test_$m built in $(($(date +%s) - t0)) s"
done

regex="^($(IFS='|'; echo "${tests[*]}"))\$"
echo "== sanitize: run ${tests[*]}"
t0=$(date +%s)
# halt_on_error: a UBSan report is fatal like an ASan one. Leak checking stays on (ASan's default).
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  ctest --test-dir "$dir" --output-on-failure -R "$regex"
echo "== sanitize: tests ran in $(($(date +%s) - t0)) s; done in $(($(date +%s) - start)) s"
