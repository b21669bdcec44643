"""The run directory while ``edgekit train`` (and ``edgekit qat``) writes it: a checkpoint every
epoch, resume, and the writers of its files. The folder's layout, file names and its
``edgekit.json`` record (who reads it, what it holds) live in :mod:`edgekit.run_record`.

checkpoints/ holds epoch-NNN.keras (model + optimizer, the last KEEP epochs) and state.json, for
``--resume``, and best-NNN.weights.h5, the weights of the best epoch so far when the run stops
early on the validation loss (see epochs.py).

Every file is written under a hidden temporary name (``.NAME.<random>.tmp``, or
``.STEM.tmp.keras`` and ``.STEM.tmp.weights.h5`` for models and weights), flushed to disk and
renamed onto its final name (:mod:`edgekit.tempfiles`' policy), so a run killed at any point
leaves complete files or none. ``state.json`` is the commit point of an epoch: it is written
after the epoch's checkpoint and removed first when the run finishes, so a run directory whose
``state.json`` names epoch N holds a complete checkpoint of epoch N.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras

from edgekit.models.safe_load import load_keras_model
from edgekit.run_record import CHECKPOINTS, HISTORY, STATE
from edgekit.tempfiles import atomic_write_bytes, atomic_write_text, atomic_write_with

KEEP = 2
TEMP_PATTERNS = (".*.tmp", ".*.tmp.keras", ".*.tmp.weights.h5")  # what the writers below leave when killed
BEST_PATTERN = "best-*.weights.h5"


def atomic_save_model(model: keras.Model, path: Path) -> None:
    _save_then_rename(model.save, path, path.with_name(f".{path.stem}.tmp.keras"))


def best_weights_name(epoch: int) -> str:
    return f"best-{epoch:03d}.weights.h5"


def atomic_save_weights(model: keras.Model, path: Path) -> None:
    _save_then_rename(model.save_weights, path, path.with_name(f".{path.name[:-len('.weights.h5')]}.tmp.weights.h5"))


def _save_then_rename(save, path: Path, tmp: Path) -> None:
    """``save(tmp)`` (Keras picks the format from the suffix, hence a named temporary), then
    publish it as ``path`` (edgekit.tempfiles); a failed save leaves no temporary behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_with(path, save, temp=lambda _: tmp)


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temporary files a killed run left in RUN_DIR and its checkpoints (one process
    writes a run directory at a time, so none of them is still being written)."""
    stale = [p for folder in (run_dir, run_dir / CHECKPOINTS) for pattern in TEMP_PATTERNS
             for p in folder.glob(pattern) if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _row_epoch(line: bytes, width: int) -> int | None:
    try:
        row = next(csv.reader([line.decode("utf-8")]))
        return int(row[0]) if len(row) == width else None
    except (UnicodeDecodeError, ValueError, IndexError, StopIteration, csv.Error):
        return None


def trim_history(run_dir: Path, epochs: int) -> None:
    """Keep only the history.csv rows of epochs ``0 .. epochs - 1``.

    Keras' CSVLogger appends an epoch's row before that epoch's checkpoint is written, so a run
    killed in between has a row for an epoch that ``--resume`` trains again; a line the kill cut
    short (no line end) is dropped as well. ``epochs=0`` (a fresh start) removes the file.
    """
    path = run_dir / HISTORY
    if not path.is_file():
        return
    if epochs == 0:
        path.unlink()
        return
    data = path.read_bytes()
    lines = [line for line in data.splitlines(keepends=True) if line.endswith(b"\n")]
    if not lines:
        path.unlink()
        return
    width = len(next(csv.reader([lines[0].decode("utf-8", "replace")])))
    kept = lines[:1] + [line for line in lines[1:] if _row_epoch(line, width) in range(epochs)]
    if b"".join(kept) != data:
        atomic_write_bytes(path, b"".join(kept))


def read_state(run_dir: Path) -> dict | None:
    path = run_dir / CHECKPOINTS / STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); remove {run_dir / CHECKPOINTS} to start again") from None


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: the model with its optimizer, then the state that points at it.
    ``live`` (key -> callable) adds state that changes every epoch, such as early stopping's;
    a best-weights file that state.json no longer names is removed once the state is written."""

    def __init__(self, run_dir: Path, phase: str, extra_state: dict, live: dict | None = None):
        super().__init__()
        self.dir = run_dir / CHECKPOINTS
        self.phase = phase
        self.extra = extra_state
        self.live = live or {}

    def on_epoch_end(self, epoch, logs=None):
        path = self.dir / f"epoch-{epoch + 1:03d}.keras"
        atomic_save_model(self.model, path)
        live = {key: get() for key, get in self.live.items()}
        state = {"epoch": epoch + 1, "phase": self.phase, "checkpoint": path.name, **self.extra, **live}
        atomic_write_text(self.dir / STATE, json.dumps(state, indent=2))
        for old in sorted(self.dir.glob("epoch-*.keras"))[:-KEEP]:
            old.unlink(missing_ok=True)
        named = {v.get("file") for v in live.values() if isinstance(v, dict)}
        for old in self.dir.glob(BEST_PATTERN):
            if old.name not in named:
                old.unlink(missing_ok=True)


def load_checkpoint(run_dir: Path, state: dict) -> keras.Model:
    path = run_dir / CHECKPOINTS / state["checkpoint"]
    if not path.is_file():
        raise ValueError(f"checkpoint {path} named in state.json is missing; cannot resume")
    return load_keras_model(path, compile=True)
