#!/usr/bin/env bash
# Prepare this machine for the test-bed (idempotent):
#   .venv with PyTorch and the project (host extras: invoke, docker SDK, pandas, ...).
#   --dev  adds the test tools, and the system packages the container, browser and Slurm tests
#          use (docker.io, debootstrap, chromium, chromium-driver, slurm-wlm, munge; installed
#          when run as root) and starts the Docker engine if it is not running.
# TORCH_SPEC picks the PyTorch build (default torch==2.13.0: on the dev machines a local CPU
# wheel; elsewhere pip resolves it from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    *) echo "usage: scripts/setup.sh [--dev]" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v 'is ignored: it is neither' >&2); }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  pip_install "$TORCH_SPEC"
fi
if [ "$dev" = 1 ]; then extras='.[dev]'; else extras='.[host]'; fi
echo "setup: installing the project ($extras)"
pip_install -e "$extras"
if [ "$dev" = 1 ]; then
  scripts/system-deps.sh
fi
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
