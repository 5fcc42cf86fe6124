#!/usr/bin/env bash
# Builds lcmae and runs the main job, LC-MAE pre-training (examples/lcmae_pretrain), on a fresh
# Debian 12 machine (installs the apt packages it needs first, when any are missing).
# Arguments go to lcmae_pretrain: scripts/run.sh --help
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh

install_packages
configure
exe=./build/examples/lcmae_pretrain
# Only the main job's target when the build defines it (much faster than the whole test suite).
if cmake --build build --target help 2>/dev/null | grep -qw lcmae_pretrain; then
  build lcmae_pretrain
else
  build
fi
if [[ -x $exe ]]; then
  echo "== $exe $*"
  exec "$exe" "$@"
fi
echo "scripts/run.sh: $exe does not exist: the LC-MAE pre-training example has not landed in" >&2
echo "this tree yet. Everything else was built; the examples that exist are in build/examples/" >&2
echo "(e.g. ./build/examples/show_views)." >&2
exit 2
