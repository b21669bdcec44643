#!/usr/bin/env bash
# Check edgekit's runtime and `edgekit predict` on 64-bit ARM Linux (Raspberry Pi OS 64-bit)
# under qemu user-mode emulation; how and why: scripts/arm_check.py's docstring.
# Exit 0 pass, 1 a mismatch, 2 an error, 77 skipped (the reason is printed on one line).
# The arm64 root, venv, model and pip cache are kept in .cache/arm64/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  bash scripts/setup.sh >&2
fi
# Emulation and TensorFlow are heavy: stay below interactive work and training runs.
exec nice -n "${EDGEKIT_ARM_NICE:-15}" .venv/bin/python scripts/arm_check.py "$@"
