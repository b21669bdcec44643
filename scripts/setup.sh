#!/usr/bin/env bash
# Set up edgekit on a fresh machine: the Fashion-MNIST files (Debian package, when apt is
# available) and the project's environment in .venv/ with every extra installed.
# Idempotent: a second run only re-installs when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

if [ ! -d /usr/share/datasets/fashion-mnist ] || [ ! -x /usr/sbin/sshd ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
    log "installing Debian's dataset-fashion-mnist (the official Fashion-MNIST files) and openssh-server/-client (the loopback test of 'edgekit profile --remote')"
    if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist openssh-server openssh-client; } >&2; then
      log "could not install dataset-fashion-mnist/openssh-server; tests that need them will skip, training on Fashion-MNIST will say so"
    fi
  else
    log "no apt-get: Fashion-MNIST files not installed; the shipped sample in calibration/ still works"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { log "edgekit needs Python >= 3.10, found $("$PY" --version)"; exit 1; }
  log "creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.edgekit-setup
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing edgekit[dev] into .venv (TensorFlow, ONNX, LiteRT, pytest; scikit-learn and mlxtend for the benchmarks)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]" >&2
  echo "$want" > "$stamp"
fi
