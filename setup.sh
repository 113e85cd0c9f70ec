#!/usr/bin/env bash
# Set up pwtool on a fresh Debian/Ubuntu machine and build the hello-world plugin.
#
#   ./setup.sh              system packages (apt-get), .venv, pwtool, runtime, plugins/hello
#   ./setup.sh --no-system  skip apt-get (the registry/skopeo/wrk tests then cannot run)
#
# System packages are only needed by the tests and benchmarks: a real OCI registry
# (docker-registry), a registry client we did not write (skopeo), htpasswd for registry
# auth (apache2-utils), a load generator (wrk) and an instruction counter (valgrind).
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(docker-registry skopeo apache2-utils wrk valgrind)

if [[ "${1:-}" != "--no-system" ]]; then
  missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}"
    SUDO=""
    [[ "$(id -u)" != 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "==> pip install -e '.[test]'"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "==> pwtool build plugins/hello (the first build also builds the runtime, once)"
.venv/bin/pwtool build plugins/hello
echo
echo "Ready. Activate with: source .venv/bin/activate"
