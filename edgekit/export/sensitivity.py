"""Per-layer int8 quantization sensitivity of a TFLite model, and selective quantization.

Uses TFLite's QuantizationDebugger (https://ai.google.dev/edge/litert/models/quantization_debugger):
it runs the float and the int8 model side by side on calibration samples and reports, per
quantized op output, the error of the int8 tensor. Layers are ranked by RMSE / scale (the
error in units of the quantization step: about 0.29 is the rounding floor, much more means the
range is badly served by 8 bits), worst first.

``selective_int8`` keeps the worst layers in float one at a time (the debugger's
``denylisted_nodes``) until the file is within ``max_accuracy_drop`` percentage points of the
Keras model on the validation data.
"""

from __future__ import annotations

import csv
import warnings
import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .context import ConversionContext
from .tflite_convert import int8_converter, quantize_calibrated, representative_dataset
from .validate import compare, run_file

DEBUG_SAMPLES = 100  # calibration samples the debugger compares float and int8 on
CSV_COLUMNS = ("rank", "op_name", "tensor_name", "rmse_over_scale", "rmse", "max_abs_error", "mean_error",
               "scale", "zero_point", "num_elements")


@dataclass(frozen=True)
class LayerError:
    rank: int
    op_name: str
    tensor_name: str
    rmse_over_scale: float
    rmse: float
    max_abs_error: float
    mean_error: float
    scale: float
    zero_point: int
    num_elements: int


def _debugger(ctx: ConversionContext):
    if "debugger" not in ctx.cache:
        import tensorflow as tf

        sample = ctx.require_calibration()[:DEBUG_SAMPLES]
        with warnings.catch_warnings():  # the debugger uses tf.lite.Interpreter, deprecated in TF 2.20
            warnings.simplefilter("ignore", UserWarning)
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=int8_converter(ctx, float_io=True), debug_dataset=representative_dataset(sample))
            debugger.run()
        ctx.cache["debugger"] = debugger
    return ctx.cache["debugger"]


def layer_errors(ctx: ConversionContext) -> list[LayerError]:
    """Per-layer int8 error of the TFLite int8 model, worst (largest RMSE/scale) first."""
    if "layers" in ctx.cache:
        return ctx.cache["layers"]
    dump = io.StringIO()
    _debugger(ctx).layer_statistics_dump(dump)
    rows = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"])
        rmse = math.sqrt(float(row["mean_squared_error"]))
        rows.append(dict(op_name=row["op_name"], tensor_name=row["tensor_name"],
                         rmse_over_scale=rmse / scale if scale else float("inf"), rmse=rmse,
                         max_abs_error=float(row["max_abs_error"]), mean_error=float(row["mean_error"]),
                         scale=scale, zero_point=int(float(row["zero_point"])),
                         num_elements=int(float(row["num_elements"]))))
    rows.sort(key=lambda r: -r["rmse_over_scale"])
    ctx.cache["layers"] = [LayerError(rank=i + 1, **r) for i, r in enumerate(rows)]
    return ctx.cache["layers"]


def report_csv(layers: list[LayerError]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for layer in layers:
        writer.writerow(asdict(layer))
    return out.getvalue().encode()


def format_table(layers: list[LayerError], top: int = 10) -> str:
    lines = [f"{'#':>3}  {'op':<18} {'rmse/scale':>10} {'max abs err':>11}  tensor"]
    for layer in layers[:top]:
        name = layer.tensor_name.split(";")[0]
        lines.append(f"{layer.rank:>3}  {layer.op_name:<18} {layer.rmse_over_scale:>10.3f} "
                     f"{layer.max_abs_error:>11.4g}  {name}")
    if len(layers) > top:
        lines.append(f"     ... {len(layers) - top} more layers in the CSV")
    return "\n".join(lines)


def _quantize(ctx: ConversionContext, denylist: list[str]) -> bytes:
    # The public debugger quantizes with float I/O only; mlir_quantize (what it calls) takes
    # the I/O types too, so the selective file keeps the I/O of a plain int8 export.
    return quantize_calibrated(ctx, _debugger(ctx).calibrated_model, denylisted_nodes=denylist)


def _score(ctx: ConversionContext, model: bytes) -> tuple[float, Path]:
    """Accuracy in percent (agreement with Keras when labels are unknown) of ``model``."""
    path = ctx.workdir / "probe.tflite"
    path.write_bytes(model)
    v = compare(run_file(path, ctx.validation), ctx.validation, ctx.reference)
    return 100 * (v.accuracy if v.accuracy is not None else v.agreement), path


def _latency_ms(model: bytes, ctx: ConversionContext, runs: int = 30) -> float:
    from edgekit.runtime import Model

    path = ctx.workdir / "latency.tflite"
    path.write_bytes(model)
    m = Model(path, threads=1)
    x = ctx.validation.inputs[:1]
    m.predict(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        m.predict(x)
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def selective_int8(ctx: ConversionContext) -> bytes:
    """int8 TFLite with the most sensitive layers kept float until within max_accuracy_drop."""
    limit = float(ctx.options.max_accuracy_drop)
    ref = ctx.reference.accuracy
    ref_score = 100.0 if ref is None else 100 * ref
    layers = layer_errors(ctx)
    kept: list[str] = []
    plain = model = _quantize(ctx, kept)
    score, _ = _score(ctx, model)
    steps = [{"kept": 0, "score": round(score, 2)}]
    for layer in layers:
        if ref_score - score <= limit:
            break
        kept.append(layer.tensor_name)
        model = _quantize(ctx, kept)
        score, _ = _score(ctx, model)
        steps.append({"kept": len(kept), "layer": layer.tensor_name, "score": round(score, 2)})
    ctx.notes.setdefault("tflite/int8", {}).update({
        "max_accuracy_drop_pp": limit,
        "metric": "accuracy" if ref is not None else "top-1 agreement with Keras",
        "reference_percent": round(ref_score, 2),
        "reached": ref_score - score <= limit,
        "kept_float": kept,
        "steps": steps,
        "plain_int8_size_bytes": len(plain),
        "size_cost_bytes": len(model) - len(plain),
        "plain_int8_latency_ms": round(_latency_ms(plain, ctx), 4),
        "latency_ms": round(_latency_ms(model, ctx), 4),
    })
    return model
