"""What is being exported: a run folder (model.keras + edgekit.json, written by ``edgekit
train``; see :mod:`edgekit.run_record`) or a bare .keras file, with its preprocessing, class
names and training data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.run_record import MODEL, RECORD, RunRecord, model_file, read_record
from edgekit.runtime.spec import PreprocessSpec

DEFAULT_MEAN_STD = 127.5


@dataclass
class ExportSource:
    model: object  # keras.Model
    name: str  # file stem of the exports
    folder: Path  # default output folder
    spec: PreprocessSpec
    class_names: tuple[str, ...] = ()
    architecture: str = ""
    data_path: str | None = None  # the run's training data, if recorded
    warnings: list[str] = field(default_factory=list)
    qat_ranges: dict | None = None  # a QAT run's learned activation ranges (edgekit.qat)


def load_source(path: str | Path, preprocess: PreprocessSpec | None = None) -> ExportSource:
    """Load MODEL (a run folder or a .keras file); ValueError for anything else."""
    path = Path(path)
    if path.is_dir():
        return _load_run(path, preprocess)
    if path.suffix != ".keras":
        raise ValueError(f"MODEL got {str(path)!r}; expected a run folder (with {MODEL}) or a .keras file")
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    model = _load_keras(path)
    warnings = []
    if preprocess is None:
        preprocess = spec_from_model(model)
        warnings.append(f"{path.name} has no {RECORD}: preprocessing taken from its input shape "
                        f"{preprocess.size[0]}x{preprocess.size[1]}x{preprocess.channels} with "
                        f"mean/std {DEFAULT_MEAN_STD}/{DEFAULT_MEAN_STD}")
    source = ExportSource(model, path.stem, path.parent, preprocess, warnings=warnings)
    _check_input(source)
    return source


def _load_run(run: Path, preprocess: PreprocessSpec | None) -> ExportSource:
    model_path = model_file(run)  # ValueError when the folder has no model.keras
    info = read_record(run, required=False) or RunRecord()
    info_path = run / RECORD
    model = _load_keras(model_path)
    warnings = []
    if preprocess is None and info.preprocess is not None:
        preprocess = info.preprocess
    elif preprocess is None:
        preprocess = spec_from_model(model)
        warnings.append(f"{info_path} records no preprocessing: using the model's input shape and "
                        f"mean/std {DEFAULT_MEAN_STD}/{DEFAULT_MEAN_STD}")
    source = ExportSource(model, run.resolve().name, run, preprocess,
                          class_names=info.class_names or (), architecture=info.architecture or "",
                          data_path=info.data_path, warnings=warnings, qat_ranges=_qat_ranges(info, info_path))
    _check_input(source)
    return source


def _qat_ranges(info: RunRecord, info_path: Path) -> dict | None:
    if "qat" not in info.extra:
        return None
    from .qat_ranges import check_ranges

    qat = info.qat
    try:
        return check_ranges(qat.get("ranges") if isinstance(qat, dict) else None)
    except ValueError as exc:
        raise ValueError(f"{str(info_path)!r}: {exc}") from None


def _load_keras(path: Path):
    from edgekit.models.safe_load import load_keras_model

    return load_keras_model(path)  # safe mode; one-line ValueError when refused or unreadable


def spec_from_model(model) -> PreprocessSpec:
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or None in shape:
        raise ValueError(f"model input shape got {shape}; expected a fixed (H, W, C)")
    h, w, c = shape
    return PreprocessSpec(size=(int(h), int(w)), channels=int(c), mean=(DEFAULT_MEAN_STD,), std=(DEFAULT_MEAN_STD,))


def _check_input(source: ExportSource) -> None:
    model = source.model
    if len(model.inputs) != 1:
        raise ValueError(f"model has {len(model.inputs)} inputs; edgekit exports single-input image models")
    shape = tuple(model.inputs[0].shape[1:])
    want = (*source.spec.size, source.spec.channels)
    if shape != want:
        raise ValueError(f"model input shape {shape} does not match the preprocessing {want} (H, W, C)")
