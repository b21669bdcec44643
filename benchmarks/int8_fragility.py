"""How many answers a model changes when its input pixels are only rounded to integers: the
float Keras model against its int8 simulation (issue 13, why QAT agreement stops near 98% on
EfficientNet-B0).

An int8 file receives uint8 pixels, so a bilinearly upsampled image (28 -> 32: pixels at
multiples of 1/64) reaches it rounded, and every later layer rounds its output to its int8 grid.
A float model barely notices a half-gray-level change; an int8 network can, because a small
change moves some activations across a rounding threshold, and the one-step jumps spread. This
script measures that directly on the 10,000 official test images, for a run and (optionally) a
QAT run's fake-quantized model (``edgekit.qat.transform.load_qat_model``: what the int8 files
compute, simulated in float):

- ``float``: top-1 agreement of the Keras model on unrounded vs rounded pixels;
- ``fake-quant``: the same for the QAT run's int8 simulation;
- ``fake-quant vs float``: agreement of the simulation with the source run on the same pixels.

    .venv/bin/python benchmarks/int8_fragility.py /work/runs/fm_b0 --qat /work/runs/fm_b0_kd \\
        --out benchmarks/results/int8_fragility_b0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"
BATCH = 500


def _pixels(run: str, limit: int):
    from edgekit.data import load_split
    from edgekit.runtime.preprocess import preprocess
    from edgekit.run_record import load_run
    from edgekit.runtime.spec import PreprocessSpec

    spec = load_run(run).record.preprocess
    as_pixels = PreprocessSpec(size=spec.size, channels=spec.channels, mean=(0.0,), std=(1.0,), resize=spec.resize)
    images = load_split(DATA, "test").sample(limit, seed=0)
    pixels = np.stack([preprocess(images.images[i], as_pixels) for i in range(len(images))])
    return pixels, spec


def _top1(model, pixels: np.ndarray, spec) -> np.ndarray:
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    x = (pixels - mean) / std
    return np.concatenate([np.asarray(model(x[i:i + BATCH], training=False)).argmax(-1)
                           for i in range(0, len(x), BATCH)])


def measure(run: str, qat: str | None, limit: int) -> dict:
    import keras

    from edgekit.run_record import model_file

    pixels, spec = _pixels(run, limit)
    rounded = np.round(pixels)
    model = keras.models.load_model(model_file(run), compile=False)
    exact, coarse = _top1(model, pixels, spec), _top1(model, rounded, spec)
    result = {"run": run, "images": len(pixels),
              "changed_pixels_fraction": float(np.mean(pixels != rounded)),
              "float_agreement_rounded_vs_exact": float(np.mean(exact == coarse))}
    if qat:
        from edgekit.qat.transform import load_qat_model

        simulated = load_qat_model(qat)
        q_exact, q_coarse = _top1(simulated, pixels, spec), _top1(simulated, rounded, spec)
        result.update({"qat_run": qat,
                       "fake_quant_agreement_rounded_vs_exact": float(np.mean(q_exact == q_coarse)),
                       "fake_quant_vs_float_exact": float(np.mean(q_exact == exact)),
                       "fake_quant_vs_float_rounded": float(np.mean(q_coarse == exact))})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a trained run folder")
    parser.add_argument("--qat", default=None, help="a QAT run fine-tuned from RUN")
    parser.add_argument("--limit", type=int, default=10000)
    parser.add_argument("--out", required=True, help="path stem for OUT.json and OUT.md")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = measure(args.run, args.qat, args.limit)
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [(k, v) for k, v in result.items() if isinstance(v, float)]
    md = "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {100 * v:.2f}% |\n" for k, v in rows)
    stem.with_suffix(".md").write_text(f"{result['images']} test images; run {result['run']}, "
                                       f"QAT run {result.get('qat_run')}\n\n{md}")
    print(md, file=sys.stderr)


if __name__ == "__main__":
    main()
