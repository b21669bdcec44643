"""A run folder for a benchmark's own model (a zoo architecture with seeded random or cached
weights), written and read through ``edgekit.run_record`` as ``edgekit train`` writes its runs,
so that ``edgekit export``, ``profile`` and ``benchmark`` take it like any other run."""

from __future__ import annotations

from pathlib import Path

from edgekit.run_record import MODEL, RunRecord, read_record, write_record
from edgekit.runtime import PreprocessSpec


def save_run(folder: Path, model, architecture: str, spec: PreprocessSpec, data_path: Path, note: str) -> Path:
    """Save ``model`` (a Keras model) and its record into ``folder``; the folder. ``data_path`` is
    the run's data (calibration and validation of its exports); ``note`` says what the model is."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / MODEL)
    write_record(folder, RunRecord(architecture=architecture, preprocess=spec,
                                   data={"path": str(data_path), "split": "train"}, extra={"note": note}))
    return folder


def run_note(folder: Path) -> str:
    """What the run's model is (the ``note`` :func:`save_run` recorded); "" for another folder."""
    record = read_record(folder, required=False) if folder.is_dir() else None
    return str(record.extra.get("note", "")) if record is not None else ""
