"""``export_model``: one Keras model (run folder or .keras file) to every requested target.

Order of work: check options and destinations, load the model and the data (calibration and
validation, materialised up front so bad data fails before any file is written), run each
target through ``writer.export_target``, then the optional int8 sensitivity report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgekit import __version__
from edgekit.runtime.spec import ModelMetadata

from . import datasets, sensitivity
from .context import ConversionContext
from .cpu import default_onnx_quant
from .options import ExportOptions, Precision
from .source import ExportSource, load_source
from .targets import Target, select_targets
from .validate import keras_reference, validate_file
from .writer import ExportError, FileResult, check_destinations, export_target, remove_stale_partials, write_atomic


@dataclass
class ExportReport:
    model: str
    files: list[FileResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    calibration_source: str | None = None
    validation_source: str = ""
    keras_accuracy: float | None = None
    onnx_quant_default: str | None = None
    sensitivity_csv: Path | None = None
    sensitivity_table: str | None = None

    @property
    def ok(self) -> bool:
        return all(f.error is None for f in self.files)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "files": [f.to_dict(self.keras_accuracy) for f in self.files],
            "skipped": [{"target": k, "reason": r} for k, r in self.skipped],
            "warnings": self.warnings,
            "calibration": self.calibration_source,
            "validation": self.validation_source,
            "keras_accuracy": self.keras_accuracy,
            "onnx_quant_default": self.onnx_quant_default,
            "sensitivity_report": str(self.sensitivity_csv) if self.sensitivity_csv else None,
            "ok": self.ok,
        }


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def output_paths(source_name: str, out: Path, targets: list[Target]) -> dict[str, Path]:
    return {t.key: out / f"{source_name}_{t.precision.value}{t.suffix}" for t in targets}


def sidecar_paths(paths: dict[str, Path], targets: list[Target]) -> list[Path]:
    return [s.path_for(paths[t.key]) for t in targets for s in t.sidecars]


def export_model(model: str | Path, options: ExportOptions = ExportOptions(),
                 log: Callable[[str], None] = _stderr) -> ExportReport:
    """Export ``model`` as ``options`` asks; ValueError (ExportError, DataError) for bad input.

    An fp32 file that disagrees with Keras beyond tolerance is not written and is reported
    with ``error`` set (``report.ok`` is False); other targets still run.
    """
    targets, skipped = select_targets(options.formats, options.precisions)
    wants_int8_tflite = any(t.key == "tflite/int8" for t in targets)
    if (options.report or options.max_accuracy_drop is not None) and not wants_int8_tflite:
        raise ExportError("--report and --max-accuracy-drop apply to tflite int8; add tflite to --format and int8 to --quantize")
    source = load_source(model, options.preprocess)
    out = Path(options.out_dir) if options.out_dir is not None else source.folder
    paths = output_paths(source.name, out, targets)
    csv_path = out / f"{source.name}_int8_report.csv" if options.report else None
    written = [*paths.values(), *sidecar_paths(paths, targets), *([csv_path] if csv_path else [])]
    check_destinations(written, options.force)

    report = ExportReport(model=str(model), skipped=skipped, warnings=list(source.warnings))
    for w in source.warnings:
        log(f"warning: {w}")
    ctx = _context(source, options, targets, report)
    out.mkdir(parents=True, exist_ok=True)  # only once the data is known to be usable
    stale = remove_stale_partials(written)
    if stale:
        log(f"removed {len(stale)} partial file(s) left by an interrupted export, e.g. {stale[0].name}")
    try:
        for target in targets:
            finish = _finisher(target, source, ctx, options)
            report.files.append(export_target(target, ctx, paths[target.key], finish,
                                              strict=target.precision is Precision.FP32, log=log))
        if options.report:
            layers = sensitivity.layer_errors(ctx)
            write_atomic(csv_path, sensitivity.report_csv(layers))
            report.sensitivity_csv, report.sensitivity_table = csv_path, sensitivity.format_table(layers)
            log(f"[tflite/int8] wrote per-layer report {csv_path}")
    finally:
        ctx.close()
    return report


def _context(source: ExportSource, options: ExportOptions, targets: list[Target],
             report: ExportReport) -> ConversionContext:
    data_path = options.calibration or source.data_path
    num_classes = int(source.model.outputs[0].shape[-1])
    calibration = None
    if any(t.needs_calibration for t in targets):
        if data_path is None:
            raise ExportError("int8 export needs calibration data: pass --calibration DATA "
                              "(the model records no training data)")
        calibration, report.calibration_source = datasets.load_calibration(
            data_path, source.spec, options.num_calibration)
    if data_path is not None:
        validation = datasets.load_validation(data_path, source.spec, options.num_validation, num_classes)
    else:
        validation = datasets.random_validation(source.spec)
        report.warnings.append("no data known: validation compares outputs on random images only")
    if not source.class_names:  # a bare .keras file: the data's names, when they fit the model
        source.class_names = validation.class_names
    reference = keras_reference(source.model, validation)
    report.validation_source, report.keras_accuracy = validation.source, reference.accuracy
    if any(t.format.from_onnx and t.precision is Precision.INT8 for t in targets):
        report.onnx_quant_default = default_onnx_quant().reason
    return ConversionContext(source.model, options, calibration, validation=validation, reference=reference)


def _finisher(target: Target, source: ExportSource, ctx: ConversionContext, options: ExportOptions):
    layout = "NCHW" if target.format.from_onnx and options.nchw else "NHWC"

    def finish(path: Path):
        from edgekit.runtime import Model, write_metadata

        probe = Model(path)
        meta = ModelMetadata(
            preprocess=source.spec, class_names=source.class_names, architecture=source.architecture,
            layout=layout, precision=target.precision.value, edgekit_version=__version__,
            extra={"format": target.format.value,
                   "quantization": {"input": [_tensor(t) for t in probe.inputs],
                                    "output": [_tensor(t) for t in probe.outputs]},
                   **({"export": ctx.notes[target.key]} if target.key in ctx.notes else {})},
        )
        write_metadata(path, meta)
        return validate_file(path, ctx.validation, ctx.reference, layout)

    return finish


def _tensor(info) -> dict:
    q = info.quantization if info.dtype.kind in "iu" else None
    return {"name": info.name, "dtype": str(info.dtype),
            "scale": None if q is None else float(q.scale),
            "zero_point": None if q is None else int(q.zero_point)}
