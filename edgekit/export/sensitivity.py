"""Per-layer int8 quantization sensitivity of a TFLite model, and selective quantization.

Uses TFLite's QuantizationDebugger (https://ai.google.dev/edge/litert/models/quantization_debugger):
it runs the float and the int8 model side by side on calibration samples and reports, per
quantized op output, the error of the int8 tensor against the float op fed the same inputs.
The report ranks layers by RMSE / scale (the error in units of the quantization step: about
0.29 is the rounding floor, much more means the range is badly served by 8 bits), worst first.

The accuracy budget ranks them by SQNR instead (signal-to-quantization-noise ratio of the op's
output, dB, lowest first): RMSE / scale is about 0.29 for almost every layer and says nothing
of how much of the signal the rounding destroys. Measured on an EfficientNet-B0 (2 epochs on
Fashion-MNIST, 254 quantized ops): ranked by RMSE / scale, the layer that decided the accuracy
(the global average pool feeding the classifier, whose few large swish outputs stretch the
range) came 249th, so the search kept 249 layers float; by SQNR it comes near the top.

``ranked_tensors`` is the order in which the accuracy budget (``edgekit.export.budget``) keeps
layers float (the converter's ``denylisted_nodes``).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .context import ConversionContext
from .options import Int8Head
from .tflite_convert import int8_converter, representative_dataset

DEBUG_SAMPLES = 100  # calibration samples the debugger compares float and int8 on
CSV_COLUMNS = ("rank", "op_name", "tensor_name", "rmse_over_scale", "rmse", "max_abs_error", "mean_error",
               "scale", "zero_point", "num_elements", "sqnr_db")


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
    sqnr_db: float = math.inf


def _debugger(ctx: ConversionContext):
    return ctx.once("debugger", lambda: _run_debugger(ctx))


def _run_debugger(ctx: ConversionContext):
    import tensorflow as tf

    sample = ctx.require_calibration()[:DEBUG_SAMPLES]
    with warnings.catch_warnings():  # the debugger uses tf.lite.Interpreter, deprecated in TF 2.20
        warnings.simplefilter("ignore", UserWarning)
        options = tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={"sqnr_db": sqnr_db})
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=int8_converter(ctx, float_io=True), debug_dataset=representative_dataset(sample),
            debug_options=options)
        debugger.run()
    return debugger


def sqnr_db(float_values, quantized_values, scale: float, zero_point: int) -> float:
    """SQNR (dB) of an op's int8 output against the float op fed the same inputs; the
    debugger passes the raw int8 values, dequantized here."""
    x = np.concatenate([np.ravel(v) for v in float_values]).astype(np.float64)
    q = (np.concatenate([np.ravel(v) for v in quantized_values]).astype(np.int64) - int(zero_point)) * float(scale)
    signal, noise = float(np.sum(x * x)), float(np.sum((x - q) ** 2))
    return 10 * math.log10(max(signal, 1e-30) / max(noise, 1e-30))


def layer_errors(ctx: ConversionContext) -> list[LayerError]:
    """Per-layer int8 error of the TFLite int8 model, worst (largest RMSE/scale) first."""
    return ctx.once("layers", lambda: _layer_errors(ctx))


def _layer_errors(ctx: ConversionContext) -> list[LayerError]:
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
                         num_elements=int(float(row["num_elements"])),
                         sqnr_db=float(row.get("sqnr_db") or math.inf)))
    rows.sort(key=lambda r: -r["rmse_over_scale"])
    return [LayerError(rank=i + 1, **r) for i, r in enumerate(rows)]


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


def ranked_tensors(ctx: ConversionContext) -> list[str]:
    """Output tensor names of the quantized ops, most sensitive first, without those the export
    keeps float anyway (the float head's fully connected and softmax ops)."""
    from .float_head import DENYLIST_OPS

    skip = set(DENYLIST_OPS) if ctx.options.int8_head is Int8Head.FLOAT else set()
    from .keras_sensitivity import keras_flips, rank

    layers = sorted(layer_errors(ctx), key=lambda layer: layer.sqnr_db)
    names = [layer.tensor_name for layer in layers if layer.op_name not in skip]
    return rank(names, keras_flips(ctx))
