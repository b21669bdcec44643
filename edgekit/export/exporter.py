"""``export_model``: one Keras model (run folder or .keras file) to every requested target.

Order of work: check options and destinations, load the model and the data (calibration and
validation, materialised up front so bad data fails before any file is written), run each
target through ``writer.export_target``, then the optional int8 sensitivity report.

Each target gets the input form it needs (``inputs.InputForm``: raw uint8 pixels for int8
TFLite by default, RGB for a grayscale model): one conversion context per form, holding the
model behind its input adapter and the calibration and validation images in that form, with
the Keras reference computed from what edgekit's preprocessing gives for the same images.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from edgekit import __version__
from edgekit.messages import stderr
from edgekit.runtime.spec import ModelMetadata

from . import datasets, sensitivity
from .context import ConversionContext
from .inputs import InputForm, IoType, embedding_model
from .options import TFLITE_INT8, ExportOptions, Format, Precision
from .source import ExportSource, load_source
from .targets import Target, select_targets
from .tflite_metadata import write_standard_metadata
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
    target: dict | None = None  # the device target the files were made for (DeviceTarget.to_dict)
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
            "target": self.target,
            "onnx_quant_default": self.onnx_quant_default,
            "sensitivity_report": str(self.sensitivity_csv) if self.sensitivity_csv else None,
            "ok": self.ok,
        }


def output_paths(source_name: str, out: Path, targets: list[Target]) -> dict[str, Path]:
    return {t.key: out / f"{source_name}_{t.precision.value}{t.suffix}" for t in targets}


def sidecar_paths(paths: dict[str, Path], targets: list[Target]) -> list[Path]:
    return [s.path_for(paths[t.key]) for t in targets for s in t.sidecars]


def export_model(model: str | Path, options: ExportOptions = ExportOptions(),
                 log: Callable[[str], None] = stderr) -> ExportReport:
    """Export ``model`` as ``options`` asks; ValueError (ExportError, DataError) for bad input.

    An fp32 file that disagrees with Keras beyond tolerance is not written and is reported
    with ``error`` set (``report.ok`` is False); other targets still run.
    """
    targets, skipped = select_targets(options.formats, options.precisions)
    _check_options(options, targets)
    source = load_source(model, options.preprocess)
    if source.qat_ranges is not None and options.calibration is not None:
        raise ExportError(f"{model} is a QAT run: its int8 activation ranges come from training; "
                          "--calibration does not apply")
    if options.embedding:
        source.model, source.class_names = _embedding(source), ()
    _check_class_names(source)
    out = Path(options.out_dir) if options.out_dir is not None else source.folder
    paths = output_paths(source.name, out, targets)
    csv_path = out / f"{source.name}_int8_report.csv" if options.report else None
    written = [*paths.values(), *sidecar_paths(paths, targets), *([csv_path] if csv_path else [])]
    check_destinations(written, options.force)

    report = ExportReport(model=str(model), skipped=skipped, warnings=list(source.warnings),
                          target=options.target.to_dict())
    for w in source.warnings:
        log(f"warning: {w}")
    base = _context(source, options, targets, report)
    contexts = {form: _form_context(base, form) for form in {_form(t, source, options) for t in targets}}
    out.mkdir(parents=True, exist_ok=True)  # only once the data is known to be usable
    stale = remove_stale_partials(written)
    if stale:
        log(f"removed {len(stale)} partial file(s) left by an interrupted export, e.g. {stale[0].name}")
    try:
        for target in targets:
            form = _form(target, source, options)
            ctx = contexts[form]
            finish = _finisher(target, source, ctx, options, form)
            report.files.append(export_target(target, ctx, paths[target.key], finish,
                                              strict=target.precision is Precision.FP32, log=log))
        if options.report:
            int8 = next(t for t in targets if t.key == TFLITE_INT8)
            ctx = contexts[_form(int8, source, options)]
            layers = sensitivity.layer_errors(ctx)
            write_atomic(csv_path, sensitivity.report_csv(layers))
            report.sensitivity_csv, report.sensitivity_table = csv_path, sensitivity.format_table(layers)
            log(f"[tflite/int8] wrote per-layer report {csv_path}")
    finally:
        for ctx in {id(c): c for c in (base, *contexts.values())}.values():
            ctx.close()
    return report


def _check_options(options: ExportOptions, targets: list[Target]) -> None:
    """Options that no requested file can take: one-line errors before any work."""
    wants_int8_tflite = any(t.key == TFLITE_INT8 for t in targets)
    if options.report and not wants_int8_tflite:
        raise ExportError("--report applies to tflite int8; add tflite to --format and int8 to --quantize")
    if (options.io is not IoType.AUTO or options.float_io) and not wants_int8_tflite:
        kinds = ", ".join(t.key for t in targets)
        raise ExportError(f"--io {options.int8_io.value} sets the input/output types of tflite int8 files; "
                          f"this export writes {kinds}, whose inputs are float (add tflite to --format and int8 to --quantize)")


def _embedding(source: ExportSource):
    try:
        return embedding_model(source.model)
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def _check_class_names(source: ExportSource) -> None:
    outputs = source.model.outputs
    if len(outputs) != 1:
        raise ExportError(f"model has {len(outputs)} outputs; edgekit exports single-output image models")
    size = outputs[0].shape[-1]
    if source.class_names and len(source.class_names) != size:
        raise ExportError(f"the run lists {len(source.class_names)} class names but the model outputs {size} scores")


def _form(target: Target, source: ExportSource, options: ExportOptions) -> InputForm:
    """Raw pixels for uint8 int8 TFLite, and for every file of a model normalised per channel
    with different values (MediaPipe refuses per-channel NormalizationOptions: "Per-channel image
    normalization is not available"; in the graph the adapter does it exactly)."""
    per_channel = len(set(source.spec.mean)) > 1 or len(set(source.spec.std)) > 1
    pixels = per_channel or (target.key == TFLITE_INT8 and options.int8_io is IoType.UINT8)
    return InputForm.choose(source.spec, options.input_color, pixels)


def _form_context(base: ConversionContext, form: InputForm) -> ConversionContext:
    """The conversion context of one input form: the model behind its adapter, the images in
    that form, and the Keras reference for what edgekit's preprocessing makes of them."""
    if not form.needs_adapter:
        return base
    validation = base.validation
    inputs = form.from_native(validation.inputs) if validation.pixels is None else form.from_pixels(validation.pixels)
    reference = base.reference
    if form.converts_color:  # the luma of an RGB-repeated gray image is 0.9999 of it: recompute
        reference = keras_reference(base.model, replace(validation, inputs=form.to_native(inputs)))
    return ConversionContext(form.wrap(base.model), base.options,
                             None if base.calibration is None else form.from_native(base.calibration),
                             validation=replace(validation, inputs=inputs), reference=reference,
                             learned_ranges=base.learned_ranges)


def _context(source: ExportSource, options: ExportOptions, targets: list[Target],
             report: ExportReport) -> ConversionContext:
    given = options.calibration is not None and not isinstance(options.calibration, str)
    data_path = source.data_path if given else (options.calibration or source.data_path)
    # An embedding has no classes: its validation compares features, with no labels.
    num_classes = -1 if options.embedding else int(source.model.outputs[0].shape[-1])
    calibration = None
    if any(t.needs_calibration for t in targets):
        if given:
            calibration, report.calibration_source = datasets.given_calibration(options.calibration, source.spec)
        elif data_path is None:
            raise ExportError("int8 export needs calibration data: pass --calibration DATA "
                              "(the model records no training data)")
        else:
            calibration, report.calibration_source = datasets.load_calibration(
                data_path, source.spec, options.num_calibration)
    if data_path is not None:
        validation = datasets.load_validation(data_path, source.spec, options.num_validation, num_classes)
    else:
        validation = datasets.random_validation(source.spec, options.num_validation)
        report.warnings.append("no data known: validation compares outputs on random images only")
    if not source.class_names:  # a bare .keras file: the data's names, when they fit the model
        source.class_names = validation.class_names
    reference = keras_reference(source.model, validation)
    report.validation_source, report.keras_accuracy = validation.source, reference.accuracy
    if any(t.format.from_onnx and t.precision is Precision.INT8 for t in targets):
        report.onnx_quant_default = options.target.onnx_int8.reason
    return ConversionContext(source.model, options, calibration, validation=validation, reference=reference,
                             learned_ranges=source.qat_ranges)


def _finisher(target: Target, source: ExportSource, ctx: ConversionContext, options: ExportOptions,
              form: InputForm):
    layout = "NCHW" if target.format.from_onnx and options.nchw else "NHWC"

    def finish(path: Path):
        from edgekit.runtime import Model, write_metadata

        probe = Model(path)
        meta = ModelMetadata(
            preprocess=form.spec(), class_names=source.class_names, architecture=source.architecture,
            layout=layout, precision=target.precision.value, edgekit_version=__version__,
            extra={"format": target.format.value,
                   "target": options.target.metadata(),
                   "output": "embedding" if options.embedding else "scores",
                   "input": form.describe(),
                   "quantization": {"input": [_tensor(t) for t in probe.inputs],
                                    "output": [_tensor(t) for t in probe.outputs]},
                   **({"export": ctx.notes[target.key]} if target.key in ctx.notes else {})},
        )
        write_metadata(path, meta)
        if target.format is Format.TFLITE:  # what MediaPipe Tasks and the LiteRT support libraries read
            try:
                write_standard_metadata(path, meta, embedding=options.embedding)
            except ValueError as exc:  # ExportError is a ValueError too
                raise ExportError(f"{path.name}: cannot write TFLite Model Metadata: {exc}") from None
        return validate_file(path, ctx.validation, ctx.reference, layout)

    return finish


def _tensor(info) -> dict:
    q = info.quantization if info.dtype.kind in "iu" else None
    return {"name": info.name, "dtype": str(info.dtype),
            "scale": None if q is None else float(q.scale),
            "zero_point": None if q is None else int(q.zero_point)}
