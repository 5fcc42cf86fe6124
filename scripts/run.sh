#!/usr/bin/env bash
# Builds lcmae and runs the main job, `lcmae pretrain` (LC-MAE pre-training on Fashion-MNIST with
# the default settings: about 10 minutes on 2 cores, then the k-NN accuracy), on a fresh Debian 12
# machine (installs the apt packages it needs first, when any are missing).
# Arguments go to `lcmae pretrain` (docs/cli.md): scripts/run.sh --help, scripts/run.sh --steps 50
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh

install_packages
configure
exe=./build/tools/lcmae
# Only the program's target when the build defines it (much faster than the whole test suite).
if cmake --build build --target help 2>/dev/null | grep -qw lcmae_cli; then
  build lcmae_cli
else
  build
fi
if [[ -x $exe ]]; then
  echo "== $exe pretrain $*"
  exec "$exe" pretrain "$@"
fi
echo "scripts/run.sh: $exe does not exist: the lcmae program is built only where the data" >&2
echo "target exists (OpenCV, zlib: see the apt packages in scripts/common.sh). Everything else" >&2
echo "was built; the examples that exist are in build/examples/." >&2
exit 2
