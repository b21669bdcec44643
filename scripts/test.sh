#!/usr/bin/env bash
# Set up, then run the default test suite (heavy tests are marked slow: add -m slow for them).
# Two worker processes (pytest-xdist), each test file on one worker so that its module fixtures
# are built once: 10 min instead of 19.5 on the 2-core CI box. EDGEKIT_TEST_WORKERS sets the
# count (0: one process); each worker holds its own TensorFlow (up to ~3.5 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -rs --durations=30 -n "${EDGEKIT_TEST_WORKERS:-2}" --dist loadfile "$@"
