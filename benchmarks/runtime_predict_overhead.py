"""How much time ``edgekit.runtime.Model.predict`` adds to the bare TFLite interpreter calls.

Builds MobileNetV2 (alpha 1.0, 224x224, random weights), converts it to fp32 and full-int8
TFLite, then times, on the same interpreter and in alternating pairs of calls, the bare
``set_tensor``/``invoke``/``get_tensor`` loop against ``Model.predict`` (which adds argument
checks, int8 quantize/dequantize and the lock). Reports median milliseconds per call. The row
"int8, int8 in" gives predict the already-quantized int8 array, which it passes through: the
wrapper's own cost. "int8, both float" gives both sides the float image, and the bare loop
quantizes it and dequantizes the output itself in plain numpy, as a careful caller of the bare
interpreter must.

    .venv/bin/python benchmarks/runtime_predict_overhead.py [--calls 200] [--threads 2] [--clock wall|cpu]

``--clock cpu --threads 1`` times the calling thread's CPU time (XNNPACK then runs in that
thread): on a shared machine it is much steadier than wall time, which other jobs' load swings
by +-10% or more (raw fp32 medians from 6.7 to 14.2 ms in the wall runs below).

Recorded results, 2026-11-25: the same 2-core x86 container (Xeon, 4 MiB L2 per core), quiet
(load average about 1), ai-edge-litert 2.3 with XNNPACK, batch 1, 200 pairs; every run listed.

    cpu time, threads=1     fp32        int8    int8, int8 in   int8, both float
    run 1                   0.6%        5.3%        1.5%            -1.4%
    run 2                   0.6%        5.1%        1.8%            -1.2%
    run 3                   0.6%        5.0%        1.5%            -2.6%
    wall, threads=2
    run 1                   1.0%        7.3%        2.9%            -2.8%
    run 2                   1.2%        7.2%        3.0%            -1.2%

2026-12-01, another 2-core container (AMD EPYC, no VNNI: int8 is slower than fp32 here), cpu
time, threads=1, 200 pairs, one run, with the rows of edgekit's default int8 export (uint8
pixels in, normalisation in the graph, float head):

    fp32 1.0%   int8 3.2%   int8, int8 in 1.2%   int8, both float -2.1%
    uint8 frame 0.2%   uint8 frame, prepare 1.2%   (raw fp32 8.9 ms, int8 10.1 ms, uint8 10.6-10.8 ms)

"uint8 frame" feeds the same uint8 camera frame to both sides: predict passes it through with
no float conversion. "prepare" adds ``Model.prepare(frame)``, which returns the frame itself.

(Raw fp32 5.2-5.3 ms CPU / 2.9-3.0 ms wall, raw int8 3.2-3.4 ms / 1.9-2.0 ms.) Rows that give
both sides the same input (fp32; "int8, int8 in"; "int8, both float") are within 3%; "int8"
is not, because predict then does work the bare loop was spared. An earlier series on a
loaded machine (a training run and other jobs, load average 6-19, before the "both float"
row existed): wall fp32 -0.4/2.1/0.9%, int8 5.0/5.2/5.8%, int8 in 1.7/1.9/2.0%; cpu time
1.8/1.5/1.5%, 7.5/9.4/7.3%, 2.6/2.9/2.7%.

Where the int8 time goes (CPU time, threads=1): quantizing the 224x224x3 float input
(``clip(rint(x / scale + zero_point))``: divide, add, rint, clip and a cast, into per-thread
buffers reused from call to call) takes ~75 us with warm caches but 130-150 us right after an
invoke, which evicts the input and numpy's own code from the caches; the wrapper's Python code
(argument checks, lock, dequantizing 1000 outputs) adds ~90 us cold (~5 us warm), the
"int8, int8 in" row. Float input to an int8 model costs 5-7% over a bare loop fed int8 data:
reading and quantizing the float image, which a caller holding floats pays anyway, and the
"both float" row shows predict doing it 1-3% faster than plain numpy. Fusing the rint and the
cast (``np.rint(work, out=int8_buffer, casting="unsafe")``, after the clip) gave the same
result at the same speed (77 us warm). Quantizing straight into the
interpreter's input buffer (``interpreter.tensor()``) instead of ``set_tensor`` would save
~3 us warm (set_tensor of 150 KB: 3.0 us) but has to run under the lock, so threads sharing a
Model could no longer quantize while another one runs; multiplying by 1/scale instead of
dividing saves ~10 us but changes about one quantized value in a million.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekit.profile.latency import TimingPlan, interleaved  # noqa: E402
from edgekit.runtime import Model  # noqa: E402


# (row, file, what each side is given): "float" = predict gets floats, the bare loop the
# quantized array; "int8" = both get the quantized array (predict passes it through);
# "both float" = both get floats and the bare loop quantizes them itself in plain numpy.
# "frame" = both get the same uint8 camera frame (the default int8 export takes raw pixels);
# "prepare" = predict gets ``model.prepare(frame)``, what classify does with a frame.
ROWS = [("fp32", "fp32", "float"), ("int8", "int8", "float"), ("int8, int8 in", "int8", "int8"),
        ("int8, both float", "int8", "both float"), ("uint8 frame", "uint8", "frame"),
        ("uint8 frame, prepare", "uint8", "prepare")]


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
    paths["uint8"] = _edgekit_default_int8(model, folder)
    return paths


def _edgekit_default_int8(model, folder: Path) -> Path:
    """``edgekit export``'s default int8 file of ``model``: uint8 pixels in (normalisation in the
    graph), float head, float scores out; calibrated on the shipped sample (read as RGB)."""
    from edgekit.export import ExportOptions, Precision, export_model

    model.save(folder / "mnv2.keras")
    sample = Path(__file__).resolve().parents[1] / "calibration" / "fashion-mnist"
    report = export_model(folder / "mnv2.keras", ExportOptions(precisions=(Precision.INT8,), calibration=str(sample),
                                                               num_validation=20, out_dir=folder / "edgekit"),
                          log=lambda line: print(line, file=sys.stderr))
    return report.files[0].path


def bench(path: Path, calls: int, threads: int, feed_mode: str = "float", clock=time.perf_counter_ns):
    """Median ms per call of the bare loop and of predict, timed in alternating pairs so that
    both see the same machine load (a shared machine's load drifts over seconds): the
    interleaved mode of ``edgekit.profile.latency`` with one call per turn. ``clock`` is a
    nanosecond clock; ``feed_mode``: see ``ROWS``."""
    model = Model(path, threads=threads)
    interp = model.raw
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    x = np.random.default_rng(1).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    frame = np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    if feed_mode in ("frame", "prepare"):
        raw_input = feed = frame[None]
    else:
        raw_input = model._slots[0].convert(x).copy()  # the same (quantized) data the wrapper feeds
        feed = raw_input if feed_mode == "int8" else x
    in_index, out_index = inp["index"], out["index"]
    scale, zero_point = inp["quantization"]
    limits = np.iinfo(inp["dtype"]) if inp["dtype"] != np.float32 else None

    def raw_call() -> None:
        data = raw_input
        if feed_mode == "both float":  # what a careful caller of the bare interpreter writes
            data = np.clip(np.rint(x / scale + zero_point), limits.min, limits.max).astype(inp["dtype"])
        interp.set_tensor(in_index, data)
        interp.invoke()
        out_q = interp.get_tensor(out_index)
        if feed_mode == "both float":  # and the float output it wants back
            (out_q.astype(np.float32) - out["quantization"][1]) * out["quantization"][0]

    def predict_call() -> None:
        model.predict(model.prepare(frame)[None] if feed_mode == "prepare" else feed)

    # the first calls warm caches and the delegate (5 warm-up calls each, after the first)
    timed = interleaved({"raw": raw_call, "predict": predict_call}, TimingPlan(warmup=5, runs=calls), block=1,
                        clock=clock)
    if timed.errors:
        raise SystemExit(f"{path.name}: {timed.errors}")
    return timed.stats["raw"].p50, timed.stats["predict"].p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the calling thread's CPU time (needs --threads 1)")
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error(f"--clock cpu got --threads {args.threads}; expected 1 (other threads' CPU time is not counted)")
    clock = time.thread_time_ns if args.clock == "cpu" else time.perf_counter_ns
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(sys.stderr):  # the converter's chatter
            paths = convert(Path(tmp))
        print(f"{'model':17} {'raw ms':>8} {'predict ms':>11} {'overhead':>9}")
        for name, path, feed_mode in ROWS:
            raw, wrapped = bench(paths[path], args.calls, args.threads, feed_mode, clock)
            print(f"{name:17} {raw:8.3f} {wrapped:11.3f} {100 * (wrapped / raw - 1):8.1f}%", flush=True)


if __name__ == "__main__":
    main()
