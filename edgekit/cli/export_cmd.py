"""``edgekit export``: a trained model to .tflite/.onnx/.ort files (see ``edgekit.export``)."""

from __future__ import annotations

from pathlib import Path

import click

from edgekit.messages import first_line

from .common import CliError, InternalError, emit_json, quiet_tensorflow, run_checked, stdout_to_stderr, target_option
from .tables import print_table

from edgekit.export.inputs import InputColor, IoType
from edgekit.export.options import (ONNX_INT8, ORT_INT8, ActivationType, CalibrationMethod, Format, Int8Head,
                                    OnnxQuantFormat, Precision)


def _values(enum) -> list[str]:
    """click.Choice's choices from an Enum (edgekit.export.options imports no TensorFlow)."""
    return [member.value for member in enum]


@click.command("export")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--format", "formats", default="tflite", show_default=True,
              help=f"Comma-separated: {', '.join(_values(Format))} (ort: ONNX Runtime Mobile; written with a "
                   "NAME.required_operators.config for a reduced onnxruntime build).")
@click.option("--quantize", "precisions", default="fp32", show_default=True,
              help=f"Comma-separated: {', '.join(_values(Precision))}.")
@click.option("--calibration", default=None, help="Calibration data (image folder, IDX folder or .npz); "
              "default: the run's training data.")
@click.option("--num-calibration", type=click.IntRange(1), default=None,
              help="Calibration images  [default: up to 300]")
@click.option("--calibration-method", type=click.Choice(_values(CalibrationMethod)), default=None,
              help="Activation range method for ONNX int8 (TFLite always uses min/max)  [default: percentile "
                   "when the calibration activations fit in 2 GiB, else minmax]")
@click.option("--io", "io", type=click.Choice(_values(IoType)), default="auto", show_default=True,
              help="TFLite int8 input/output types. auto = uint8: raw camera pixels 0..255 in (the normalisation "
                   "is in the graph), float scores out (uint8 with --int8-head int8); int8: int8 in and out, "
                   "quantized from normalised values; float: float32 in and out.")
@click.option("--input-color", type=click.Choice(_values(InputColor)), default="rgb", show_default=True,
              help="rgb: a model trained on grayscale images takes RGB images, converted to gray inside the "
                   "file with edgekit's luma weights (what MediaPipe and phone cameras need); native: the "
                   "channels it was trained on.")
@click.option("--embedding", is_flag=True,
              help="Export the pooled features instead of the classifier (for MediaPipe's ImageEmbedder).")
@click.option("--float-io", is_flag=True, help="TFLite int8: float32 input and output (the same as --io float).")
@click.option("--int8-head", type=click.Choice(_values(Int8Head)), default="float", show_default=True,
              help="int8: run the classifier (fully connected + softmax) on float activations with int8 "
                   "weights (TFLite hybrid ops; ONNX float nodes), or fully in int8.")
@click.option("--nchw", is_flag=True, help="ONNX and ORT: take NCHW input (a transpose is added).")
@target_option("The device the files are for (see 'edgekit targets'): it sets the ONNX int8 format, "
               "activation type and reduce_range, and is recorded in each file's metadata; host: this machine.")
@click.option("--onnx-quant-format", type=click.Choice(_values(OnnxQuantFormat)), default=None,
              help="ONNX int8 format  [default: the --target's]")
@click.option("--onnx-activation-type", type=click.Choice(_values(ActivationType)), default=None,
              help="ONNX int8 activation type  [default: the --target's]")
@click.option("--num-validation", type=click.IntRange(1), default=1000, show_default=True,
              help="Held-out images each file is checked on.")
@click.option("--report", is_flag=True, help="Per-layer int8 quantization error table (TFLite) to OUT/<name>_int8_report.csv.")
@click.option("--max-accuracy-drop", default=None, metavar="PP|none",
              help="int8 accuracy budget: when an int8 file (TFLite, ONNX, ORT) loses more than PP percentage "
                   "points of accuracy against the Keras model on the validation images (top-1 agreement "
                   "without labels), keep its most sensitive layers float until it fits; none: no budget  "
                   "[default: 0.5]")
@click.option("--min-agreement", default=None, metavar="PCT|none",
              help="int8 accuracy budget, second condition: at least PCT percent of the validation images get "
                   "the Keras model's top-1 class; none: accuracy only  [default: 98.5]")
@click.option("--strict", is_flag=True, help="Exit 1 when an int8 file still misses the accuracy budget "
              "(it is written either way, with the miss in the report).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Output folder  [default: the run folder or the .keras file's folder]")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def export_command(model: Path, formats: str, precisions: str, calibration, num_calibration,
                   calibration_method: str, io: str, input_color: str, embedding: bool, float_io: bool, int8_head: str, nchw: bool, target, onnx_quant_format, onnx_activation_type,
                   num_validation: int, report: bool, max_accuracy_drop, min_agreement, strict: bool, out_dir, force: bool, as_json: bool) -> int:
    """Export MODEL (a run folder or a .keras file) to TFLite, ONNX and/or ORT, validated.

    Every file carries edgekit metadata (and, for .tflite, the standard TFLite Model Metadata
    that MediaPipe Tasks and the LiteRT support libraries read) and is checked against the Keras
    model on held-out images; an fp32 file that disagrees beyond tolerance fails the command
    (exit 1). By default files take camera-ready input: RGB (a grayscale model converts to gray
    inside the file), and raw uint8 pixels for int8 TFLite (see --io, --input-color).
    """
    quiet_tensorflow()
    for name, value in (("--max-accuracy-drop", max_accuracy_drop), ("--min-agreement", min_agreement)):
        if value is not None and embedding:
            raise CliError(f"{name} needs class scores; an --embedding file has none")
    with stdout_to_stderr(as_json):
        from ..export import (DEFAULT_MAX_DROP_PP, DEFAULT_MIN_AGREEMENT, ActivationType, CalibrationMethod,
                              ConverterError, ExportOptions, Format, OnnxQuantFormat, Precision, export_model,
                              parse_choices)

        options = run_checked(lambda: ExportOptions(
            formats=parse_choices(formats, Format, "--format"),
            precisions=parse_choices(precisions, Precision, "--quantize"),
            out_dir=out_dir, calibration=calibration, num_calibration=num_calibration,
            calibration_method=CalibrationMethod(calibration_method) if calibration_method else None, float_io=float_io, io=io, input_color=input_color, embedding=embedding,
            int8_head=int8_head, nchw=nchw, target=target,
            onnx_quant_format=OnnxQuantFormat(onnx_quant_format) if onnx_quant_format else None,
            onnx_activation_type=ActivationType(onnx_activation_type) if onnx_activation_type else None,
            num_validation=num_validation, force=force, report=report,
            max_accuracy_drop=DEFAULT_MAX_DROP_PP if max_accuracy_drop is None else max_accuracy_drop,
            min_agreement=DEFAULT_MIN_AGREEMENT if min_agreement is None else min_agreement))
        try:
            result = run_checked(export_model, model, options)
        except ConverterError as exc:  # a converter raised: not the user's input (names tool and target)
            raise InternalError(str(exc)) from None
        except RuntimeError as exc:  # any other failure after the input was accepted
            raise InternalError(f"export failed: {first_line(exc)}") from None
    if as_json:
        emit_json(result.to_dict())
    else:
        _print(result)
    if not result.ok:
        for f in result.files:
            if f.error:
                click.echo(f"edgekit: error: {f.error}", err=True)
        return 1
    missed = report_budget_misses(result.files, "error" if strict else "warning")
    return 1 if strict and missed else 0


def report_budget_misses(files, level: str = "warning") -> list:
    """One stderr line per int8 file that still misses the accuracy budget; those files."""
    missed = [f for f in files if f.notes.get("budget", {}).get("reached") is False]
    for f in missed:
        click.echo(f"edgekit: {level}: {f.path.name}: {f.notes['budget']['summary']}", err=True)
    return missed


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _print(result) -> None:
    rows = []
    for f in result.files:
        v = f.validation
        rows.append([f.target.format.value, f.target.precision.value, str(f.path) if not f.error else "(not written)",
                     f"{f.size_bytes / 1024:.1f} KiB", _pct(v.agreement), f"{v.max_abs_diff:.2g}",
                     _pct(v.accuracy), f"{f.seconds:.1f}s"])
    print_table(f"edgekit export of {result.model} for target {result.target['name']} (Keras accuracy "
                f"{_pct(result.keras_accuracy)}; validated on {result.validation_source})",
                ["format", "precision", "file", "size", "agreement", "max diff", "accuracy", "time"], rows)
    for key, reason in result.skipped:
        click.echo(f"skipped {key}: {reason}")
    for f in result.files:
        if f.target.key in (ONNX_INT8, ORT_INT8):
            n = f.notes
            click.echo(f"{f.target.format.value} int8: {n['quant_format']} with {n['activation_type']} "
                       f"activations ({n['why']})")
        if f.notes.get("budget", {}).get("applied"):
            click.echo(f"{f.target.format.value} {f.notes['budget']['summary']}")
    if result.sensitivity_table:
        click.echo(f"per-layer int8 error, worst first (full table: {result.sensitivity_csv}):")
        click.echo(result.sensitivity_table)
