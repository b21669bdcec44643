"""The run directory: checkpoints every epoch, resume, and the final files.

RUN_DIR/
  model.keras        final model (written last, atomically)
  edgekit.json       run metadata read by export and the runtime: architecture, params,
                     preprocessing, class names, data fingerprint, history, timings
  history.csv        per-epoch metrics (appended across resumes)
  curve.png          training curves
  checkpoints/       epoch-NNN.keras (model + optimizer) and state.json, for --resume
  tensorboard/       TensorBoard logs
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import keras

CHECKPOINTS = "checkpoints"
STATE = "state.json"
KEEP = 2


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_model(model: keras.Model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_state(run_dir: Path) -> dict | None:
    path = run_dir / CHECKPOINTS / STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); remove {run_dir / CHECKPOINTS} to start again") from None


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: the model with its optimizer, then the state that points at it."""

    def __init__(self, run_dir: Path, phase: str, extra_state: dict):
        super().__init__()
        self.dir = run_dir / CHECKPOINTS
        self.phase = phase
        self.extra = extra_state

    def on_epoch_end(self, epoch, logs=None):
        path = self.dir / f"epoch-{epoch + 1:03d}.keras"
        atomic_save_model(self.model, path)
        state = {"epoch": epoch + 1, "phase": self.phase, "checkpoint": path.name, **self.extra}
        atomic_write_text(self.dir / STATE, json.dumps(state, indent=2))
        for old in sorted(self.dir.glob("epoch-*.keras"))[:-KEEP]:
            old.unlink(missing_ok=True)


def load_checkpoint(run_dir: Path, state: dict) -> keras.Model:
    path = run_dir / CHECKPOINTS / state["checkpoint"]
    if not path.is_file():
        raise ValueError(f"checkpoint {path} named in state.json is missing; cannot resume")
    return keras.models.load_model(path, compile=True, safe_mode=True)
