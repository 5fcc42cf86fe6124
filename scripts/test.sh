#!/usr/bin/env bash
# Builds lcmae and runs its whole test suite on a fresh Debian 12 machine (installs the apt
# packages it needs first, when any are missing). Run from anywhere: scripts/test.sh
# Extra arguments go to ctest (e.g. scripts/test.sh -R compile_fail). LCMAE_JOBS sets -j.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh

start=$(date +%s)
install_packages
configure
build
echo "== test"
ctest --test-dir build --output-on-failure "$@"
echo "== scripts/test.sh: done in $(($(date +%s) - start)) s"
