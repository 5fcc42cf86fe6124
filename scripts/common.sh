# shellcheck shell=bash
# Shared by scripts/test.sh and scripts/run.sh (sourced, not run): apt packages and the build.

LCMAE_APT_PACKAGES=(cmake g++ make libeigen3-dev doctest-dev libbenchmark-dev libopencv-dev
  nlohmann-json3-dev zlib1g-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist
  libopenblas-dev  # the CPU GEMM provider (lcmae::openblas); without it Eigen's kernel is used
  clang-14 libclang-rt-14-dev)  # the last two: the libFuzzer targets (fuzz/run.sh)

# Runs a command as root: directly when we are root, through sudo when it exists.
sudo_if_needed() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "error: '$*' needs root, and sudo is not available" >&2
    return 1
  fi
}

# Installs whichever of the packages are missing (dpkg -s), and nothing when all are present.
install_packages() {
  local missing=() p
  for p in "${LCMAE_APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    echo "== apt packages: all present"
    return 0
  fi
  echo "== apt packages: installing ${missing[*]}"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# Configures build/ with the release preset (Release, -O3, -march=native).
configure() {
  echo "== configure (cmake --preset release)"
  cmake --preset release
}

# Builds the given targets of build/ (everything when none is given).
build() {
  local jobs=${LCMAE_JOBS:-$(nproc)}
  echo "== build (-j${jobs})${1:+ $*}"
  if (($# == 0)); then
    cmake --build build -j"${jobs}"
  else
    cmake --build build -j"${jobs}" --target "$@"
  fi
}
