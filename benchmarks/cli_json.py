"""Run one ``edgekit`` CLI command with ``--json`` from a benchmark script; return its document.

The benchmark scripts measure what a user's command line gives, so they call the CLI (the
repo's .venv entry point when there is one, else ``python -m edgekit.cli``) rather than the
library. ``--json`` puts exactly one document on stdout; stderr (logs, progress) streams
through to the script's own stderr, so a long run can be followed and logged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_VENV_EDGEKIT = REPO / ".venv" / "bin" / "edgekit"


def edgekit_command() -> list[str]:
    return [str(_VENV_EDGEKIT)] if _VENV_EDGEKIT.is_file() else [sys.executable, "-m", "edgekit.cli"]


def edgekit_json(*args: str, ok: tuple[int, ...] = (0,), who: str = "benchmark") -> dict:
    """``edgekit ARGS --json``'s document; exits the script with one line if the command fails
    (an exit code outside ``ok``; export exits 1 when a file misses its accuracy budget)."""
    cmd = [*edgekit_command(), *args, "--json"]
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode not in ok or not done.stdout.strip():
        sys.exit(f"{who}: edgekit {' '.join(args[:2])} failed with exit {done.returncode}")
    return json.loads(done.stdout)
