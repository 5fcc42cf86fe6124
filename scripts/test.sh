#!/usr/bin/env bash
# Builds lcmae and runs its whole test suite on a fresh Debian 12 machine (installs the apt
# packages it needs first, when any are missing). Run from anywhere: scripts/test.sh
# Extra arguments go to ctest (e.g. scripts/test.sh -R compile_fail). LCMAE_JOBS sets -j.
# After CTest (without extra arguments only) come the robustness checks of docs/robustness.md: the
# fuzz targets, 30 s each (fuzz/run.sh; LCMAE_FUZZ_SECONDS=N or "corpus" changes it), and the
# ASan + UBSan build of the io and data tests (scripts/sanitize.sh). LCMAE_SKIP_FUZZ=1 and
# LCMAE_SKIP_SANITIZE=1 skip them on a local run; CI (CI=true) ignores both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh

start=$(date +%s)
install_packages
configure
build
echo "== test"
ctest --test-dir build --output-on-failure "$@"
if (($# == 0)); then
  # Whether to run robustness check $1, given its skip variable's value $2.
  wanted() {
    [[ $2 != 1 ]] && return 0
    if [[ ${CI:-} == true ]]; then
      echo "== $1: CI=true, so the skip request is ignored"
      return 0
    fi
    echo "== $1: skipped (unset the skip variable to run it)"
    return 1
  }
  if wanted fuzz "${LCMAE_SKIP_FUZZ:-0}"; then
    fuzz/run.sh "${LCMAE_FUZZ_SECONDS:-30}"
  fi
  if wanted sanitize "${LCMAE_SKIP_SANITIZE:-0}"; then
    scripts/sanitize.sh io data
  fi
fi
echo "== scripts/test.sh: done in $(($(date +%s) - start)) s"
