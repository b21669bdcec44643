"""How much time ``edgekit.runtime.Model.predict`` adds to the bare TFLite interpreter calls.

Builds MobileNetV2 (alpha 1.0, 224x224, random weights), converts it to fp32 and full-int8
TFLite, then times, on the same interpreter and in alternating pairs of calls, the bare
``set_tensor``/``invoke``/``get_tensor`` loop against ``Model.predict`` (which adds argument
checks, int8 quantize/dequantize and the lock). Reports median milliseconds per call.

    .venv/bin/python benchmarks/runtime_predict_overhead.py [--calls 200] [--threads 2]

Recorded results (2-core x86 container shared with other jobs, ai-edge-litert 2.3 with XNNPACK,
threads=2, batch 1, 200 pairs; the quietest of several runs, as load on the shared machine
swings single runs by +-10%):

    model      raw ms  predict ms  overhead
    fp32         2.82        2.84      0.9%
    int8         1.87        2.04      8.9%

predict's own Python cost is about 4 us per call (measured on a 16x16 model: 3.3 us bare vs
7.5 us wrapped). For int8 the rest is quantizing the 224x224x3 float input (divide, add, rint,
clip, cast: ~0.1-0.2 ms), work that a caller holding float images must do anyway; a caller who
already holds int8 data can use ``model.raw``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekit.runtime import Model  # noqa: E402


def convert(folder: Path) -> dict[str, Path]:
    import keras
    import tensorflow as tf

    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    paths = {"fp32": folder / "mnv2_fp32.tflite", "int8": folder / "mnv2_int8.tflite"}
    paths["fp32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    rng = np.random.default_rng(0)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    shape = (1, 224, 224, 3)
    converter.representative_dataset = lambda: ([rng.uniform(-1, 1, shape).astype(np.float32)] for _ in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    paths["int8"].write_bytes(converter.convert())
    return paths


def bench(path: Path, calls: int, threads: int) -> tuple[float, float]:
    """Median ms per call of the bare loop and of predict, timed in alternating pairs so that
    both see the same machine load (a shared machine's load drifts over seconds)."""
    model = Model(path, threads=threads)
    interp = model.raw
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    x = np.random.default_rng(1).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    raw_input = model._slots[0].convert(x)  # the same (quantized) data the wrapper feeds
    in_index, out_index = inp["index"], out["index"]

    def raw_call() -> None:
        interp.set_tensor(in_index, raw_input)
        interp.invoke()
        interp.get_tensor(out_index)

    def predict_call() -> None:
        model.predict(x)

    times: dict[str, list[float]] = {"raw": [], "predict": []}
    for i in range(calls + 5):
        pair = (("raw", raw_call), ("predict", predict_call))
        for name, call in pair if i % 2 else pair[::-1]:
            start = time.perf_counter()
            call()
            if i >= 5:  # the first calls warm caches and the delegate
                times[name].append((time.perf_counter() - start) * 1e3)
    return statistics.median(times["raw"]), statistics.median(times["predict"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = convert(Path(tmp))
        print(f"{'model':8} {'raw ms':>8} {'predict ms':>11} {'overhead':>9}")
        for name, path in paths.items():
            raw, wrapped = bench(path, args.calls, args.threads)
            print(f"{name:8} {raw:8.2f} {wrapped:11.2f} {100 * (wrapped / raw - 1):8.1f}%")


if __name__ == "__main__":
    main()
