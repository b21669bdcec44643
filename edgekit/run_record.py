"""The run folder that ``edgekit train`` and ``edgekit qat`` write, in one place: its file
names, the typed record kept in its ``edgekit.json``, and loading a run (is this folder a run,
where is its model, what does its record say).

RUN_DIR/
  model.keras        the final Keras model (a Keras 3 ``.keras`` archive)
  edgekit.json       the run record (:class:`RunRecord`): architecture, params, MACs, input
                     shape, preprocessing, class names, training data, config, history, timings
  history.csv        per-epoch metrics (Keras' CSVLogger)
  curve.png          training curves
  lr_find.json/.png  the learning-rate range test of ``--lr auto``
  checkpoints/       per-epoch checkpoints and their state.json while a run is unfinished
                     (``edgekit.train.runstate``)
  tensorboard/       TensorBoard logs (``--tensorboard``)

Who reads a run: ``train`` (``--weights RUN``, ``--resume``), ``evaluate``, ``export``, ``qat``,
and ``profile`` and ``filters`` (its model only). The runtime never does: an exported file
carries its own metadata (:mod:`edgekit.runtime.spec`).

Imports the standard library only, and the runtime's :class:`PreprocessSpec` when a record is
read: never TensorFlow or Keras (nor numpy until a record is read), so any layer above the
runtime, the CLI's start-up included, can name and find a run's files without importing another.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgekit.messages import one_line
from edgekit.tempfiles import atomic_write_text

if TYPE_CHECKING:
    from edgekit.runtime.spec import PreprocessSpec

MODEL = "model.keras"
RECORD = "edgekit.json"
HISTORY = "history.csv"
CURVE = "curve.png"
LR_FIND_JSON = "lr_find.json"
LR_FIND_PNG = "lr_find.png"
CHECKPOINTS = "checkpoints"
STATE = "state.json"  # in CHECKPOINTS
TENSORBOARD = "tensorboard"

_SHOWN = 80  # characters of a received value quoted in an error message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _integer(value: Any) -> int:
    if not _is_int(value):
        raise TypeError("an integer")
    return value


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(_is_int(v) for v in value):
        raise TypeError("a list of integers")
    return tuple(value)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("a list of strings")
    return tuple(value)


def _object(value: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError("a JSON object")
    return value


def _preprocess(value: Any) -> PreprocessSpec:
    from edgekit.runtime.spec import PreprocessSpec  # numpy: imported when a record is read

    return PreprocessSpec.from_dict(value)  # ValueError naming the problem


# The typed keys of edgekit.json in the order ``edgekit train`` writes them, each with how its
# JSON value is read (TypeError: what was expected; ValueError: the whole problem).
_READERS: dict[str, Callable[[Any], Any]] = {
    "edgekit_version": _string, "architecture": _string, "params": _integer, "macs": _integer,
    "input_shape": _shape, "preprocess": _preprocess, "class_names": _names, "data": _object,
    "config": _object,
}


@dataclass
class RunRecord:
    """A run's ``edgekit.json``: the keys readers rely on, typed, and every other key in
    ``extra`` (history, final metrics, timings, transfer, epochs, lr_find, qat, ...), kept as read.

    A typed field is None when the file does not have its key (runs written by hand or by tests
    often record only ``architecture``, ``preprocess``, ``class_names`` and ``data``); such a
    field is left out when the record is written again, so reading then writing changes nothing.
    """

    edgekit_version: str | None = None
    architecture: str | None = None
    params: int | None = None
    macs: int | None = None
    input_shape: tuple[int, ...] | None = None  # (H, W, C)
    preprocess: PreprocessSpec | None = None
    class_names: tuple[str, ...] | None = None
    data: dict[str, Any] | None = None  # path, split, images, fingerprint, ... of the training data
    config: dict[str, Any] | None = None  # the training (or QAT source run's) configuration
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data_path(self) -> str | None:
        """The training data's path, if the run records one."""
        path = (self.data or {}).get("path")
        return path if isinstance(path, str) and path else None

    @property
    def qat(self) -> dict | None:
        """The ``qat`` entry of a run written by ``edgekit qat`` (None for any other run)."""
        return self.extra.get("qat")

    @classmethod
    def from_dict(cls, doc: Any, where: str = "edgekit.json") -> "RunRecord":
        """The record of the JSON object ``doc``; ValueError naming ``where`` and the key for a
        typed key of the wrong JSON type."""
        if not isinstance(doc, dict):
            raise ValueError(f"{where} got a JSON {type(doc).__name__}; expected a JSON object")
        typed = {}
        for key, read in _READERS.items():
            if key not in doc:
                continue
            try:
                typed[key] = read(doc[key])
            except TypeError as exc:
                raise ValueError(f"{where}: {key} got {_show(doc[key])}; expected {exc}") from None
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        return cls(**typed, extra={k: v for k, v in doc.items() if k not in _READERS})

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the typed keys that are set, in ``edgekit train``'s order, then ``extra``."""
        doc: dict[str, Any] = {}
        for key in _READERS:
            value = getattr(self, key)
            if value is None:
                continue
            if key == "preprocess":
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            doc[key] = value
        clash = sorted(set(_READERS) & set(self.extra))
        if clash:
            raise ValueError(f"RunRecord.extra got the typed key(s) {', '.join(clash)}; set the fields instead")
        doc.update(self.extra)
        return doc


@dataclass(frozen=True)
class Run:
    """A run folder that holds a model and a record."""

    folder: Path
    record: RunRecord

    @property
    def model(self) -> Path:
        return self.folder / MODEL


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run folder: a folder with ``model.keras`` and ``edgekit.json``."""
    p = Path(path)
    return p.is_dir() and (p / MODEL).is_file() and (p / RECORD).is_file()


def check_run(path: str | os.PathLike, label: str = "run folder") -> Path:
    """``path`` if it is a run folder; else a one-line ValueError ``LABEL 'PATH' ...`` that says
    what is missing (the folder, or which of its two files)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{label} {str(path)!r} does not exist")
    if not p.is_dir():
        raise ValueError(f"{label} {str(path)!r} is not a folder")
    missing = [name for name in (MODEL, RECORD) if not (p / name).is_file()]
    if missing:
        raise ValueError(f"{label} {str(path)!r} is a folder without {' and '.join(missing)} (not an edgekit run)")
    return p


def load_run(path: str | os.PathLike, label: str = "run folder") -> Run:
    """The run in folder ``path`` (see :func:`check_run` and :func:`read_record` for the errors)."""
    folder = check_run(path, label)
    return Run(folder, read_record(folder))


def model_file(path: str | os.PathLike) -> Path:
    """The Keras model file of ``path``: its ``model.keras`` for a folder (ValueError when it
    has none), else ``path`` itself (a .keras file, checked by whoever loads it)."""
    p = Path(path)
    if p.is_dir():
        if not (p / MODEL).is_file():
            raise ValueError(f"run folder {str(path)!r} has no {MODEL}")
        return p / MODEL
    return p


def read_record(folder: str | os.PathLike, required: bool = True) -> RunRecord | None:
    """The record in ``folder``'s ``edgekit.json``; None when there is none and not ``required``.
    A missing (when required), unreadable, truncated or mistyped file is a one-line ValueError
    naming it."""
    path = Path(folder) / RECORD
    if not path.is_file():
        if not required:
            return None
        raise ValueError(f"run folder {str(folder)!r} has no {RECORD}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the run record {str(path)!r}: {one_line(exc)}") from None
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON ({one_line(exc)}); "
                         "a truncated or hand-edited run record?") from None
    return RunRecord.from_dict(doc, repr(str(path)))


def write_record(folder: str | os.PathLike, record: RunRecord) -> Path:
    """Write ``record`` as ``folder``'s ``edgekit.json``, atomically (edgekit.tempfiles); its path."""
    path = Path(folder) / RECORD
    atomic_write_text(path, json.dumps(record.to_dict(), indent=2))
    return path
