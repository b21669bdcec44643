"""``edgekit latency fit`` / ``edgekit latency predict``: a latency model per device (see ``edgekit.latency``)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import CliError, emit_json, quiet_tensorflow, run_checked, stdout_to_stderr

SCHEMA = "edgekit.latency.predict/1"


@click.group("latency")
def latency_command() -> None:
    """Fit a latency model on a device, and predict latencies with it without running the model."""


@latency_command.command("fit")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="The model file to write (JSON).")
@click.option("--format", "formats", default="tflite", show_default=True, help="tflite, onnx or both (comma-separated).")
@click.option("--precision", "precisions", default="fp32,int8", show_default=True, help="fp32, int8 or both.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="Inference threads to time at.")
@click.option("--minutes", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="Time budget for exporting and timing configurations.")
@click.option("--remote", default=None, metavar="USER@HOST", help="Time the files on this device over SSH "
              "(edgekit profile --remote; EDGEKIT_SSH_OPTS adds ssh options).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the configuration sample.")
@click.option("--grid", type=click.Choice(["zoo", "tiny"]), default="zoo", show_default=True,
              help="Configurations to sample: the zoo's (MobileNet v1/v2, EfficientNet-Lite/B) or a few tiny ones (tests).")
@click.option("--min-time", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True, metavar="S",
              help="Seconds of timed runs per file.")
@click.option("--target", default="host", show_default=True, metavar="NAME",
              help="Device target the files are exported for (its ONNX int8 flavour); use the device's with --remote.")
@click.option("--json", "as_json", is_flag=True, help="Print the model's summary as one JSON document.")
def fit_command(out: Path, formats: str, precisions: str, threads: int, minutes: float, remote, seed: int, grid: str,
                min_time: float, target: str, as_json: bool) -> None:
    """Export and time sampled zoo configurations here (or on --remote) and fit per-kernel regressors.

    int8 files are calibrated on random images: only their latency is measured."""
    from edgekit.devices import get_device
    from edgekit.latency.fit import check_choices

    fmts, precs = run_checked(check_choices, formats.split(","), precisions.split(","))
    run_checked(get_device, target)
    quiet_tensorflow()
    from edgekit.latency import fit

    with stdout_to_stderr(True):
        model = run_checked(fit, fmts, precs, threads=threads, minutes=minutes, remote=remote, seed=seed,
                            configs=grid, min_time_s=min_time, target=target)
    run_checked(model.save, out)
    summary = {"schema": "edgekit.latency.fit/1", "out": str(out), "device": model.device, "threads": model.threads,
               "predictors": {k: {"configurations": len(p.samples), "fit_rmspe": p.fit_rmspe,
                                  "within_10pct": p.within_10pct} for k, p in model.predictors.items()}}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"wrote {out}: fitted on {model.device['target']} ({model.device['cpu_model']}), {threads} thread(s)")
    for key, p in summary["predictors"].items():
        click.echo(f"  {key}: {p['configurations']} configurations, fit RMSPE {p['fit_rmspe']}%, "
                   f"{100 * p['within_10pct']:.0f}% within +-10%")


@latency_command.command("predict")
@click.argument("latency_model", type=click.Path(path_type=Path))
@click.argument("model")
@click.option("--format", "fmt", default=None, help="tflite or onnx (zoo MODEL; default tflite; a file's own suffix otherwise).")
@click.option("--precision", default=None, help="fp32 or int8 (zoo MODEL: default int8; a file: from its metadata).")
@click.option("--alpha", type=float, default=None, help="MobileNet width multiplier.")
@click.option("--width", type=float, default=None, help="EfficientNet width coefficient.")
@click.option("--depth", type=float, default=None, help="EfficientNet depth coefficient.")
@click.option("--input-size", type=click.IntRange(1), default=None, help="Input resolution (default: the architecture's).")
@click.option("--target", default="host", show_default=True, metavar="NAME",
              help="The device to predict for; must be the one the latency model was fitted on.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def predict_command(latency_model: Path, model: str, fmt, precision, alpha, width, depth, input_size, target: str,
                    as_json: bool) -> None:
    """Predict the latency of MODEL (a .tflite/.onnx file or a zoo architecture name) from LATENCY_MODEL."""
    from edgekit.latency import load_latency_model

    lm = run_checked(load_latency_model, latency_model)
    is_file = Path(model).suffix.lower() in (".tflite", ".onnx", ".ort")
    overrides = {k: v for k, v in (("alpha", alpha), ("width", width), ("depth", depth)) if v is not None}
    if is_file:
        if overrides or input_size is not None:
            raise CliError("--alpha/--width/--depth/--input-size describe a zoo model; MODEL is a file")
        suffix = Path(model).suffix.lower().lstrip(".")
        if fmt is not None and fmt != suffix:
            raise CliError(f"--format {fmt} contradicts MODEL's suffix .{suffix}")
        fmt = suffix
        if precision is None:
            from edgekit.latency.model import file_precision

            precision = run_checked(file_precision, Path(model)) if Path(model).is_file() else "fp32"
    else:
        quiet_tensorflow()  # importing the zoo's registry imports Keras: its start-up chatter stays off stderr
        from edgekit.models.registry import get_spec

        run_checked(get_spec, model)
        fmt, precision = fmt or "tflite", precision or "int8"
    run_checked(lm.check, target, fmt, precision)
    if is_file:
        with stdout_to_stderr(as_json):
            prediction = run_checked(lm.explain_file, model, precision)
        described = {"model": model}
    else:
        quiet_tensorflow()
        from edgekit.models import get_spec

        spec = get_spec(model)
        size = input_size or spec.default_input_shape()[0]
        with stdout_to_stderr(as_json):
            prediction = run_checked(lm.explain_config, model, overrides, size, fmt, precision)
        described = {"model": model, "overrides": overrides, "input_size": size}
    doc = {"schema": SCHEMA, **described, "format": fmt, "precision": precision, "device": lm.device["target"],
           "threads": lm.threads, **prediction.to_dict()}
    if as_json:
        emit_json(doc)
        return
    click.echo(f"{model}: {prediction.latency_ms:.3f} ms predicted ({fmt}/{precision}, {lm.device['target']}, "
               f"{lm.threads} thread(s))")
    for kernel_type, ms in sorted(prediction.per_type_ms.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {kernel_type:12s} {ms:9.3f} ms")
