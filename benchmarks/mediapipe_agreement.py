"""MediaPipe Tasks' ImageClassifier against edgekit's runtime on the files ``edgekit export``
writes (issue 12): top-1 agreement and the largest score difference per file form, on real test
images given as RGB frames.

Two ways to hand over a frame: at the model's input size (resized by edgekit's preprocessing
and rounded to uint8, so both stacks see the same pixels), and at the image's own size (each
stack resizes with its own method: MediaPipe's GPU-style sampler vs TensorFlow's half-pixel
bilinear). The files are exported with the defaults plus, for comparison, int8 with
``--int8-head int8`` (uint8 scores).

    .venv/bin/python benchmarks/mediapipe_agreement.py runs/fm_i3 \
        --data /usr/share/datasets/fashion-mnist --num-images 2000 --out benchmarks/results/mediapipe_agreement
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def frames(data: str, num: int, seed: int = 0) -> list[np.ndarray]:
    """``num`` seeded test images of ``data`` as uint8 RGB frames at their own size."""
    from edgekit.data import load_split
    from edgekit.runtime import load_image

    split = load_split(data, "test")
    pick = np.sort(np.random.default_rng(seed).choice(len(split), min(num, len(split)), replace=False))
    if not split.in_memory:
        return [load_image(split.images[int(i)], 3) for i in pick]
    images = split.images[pick]
    return list(np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images)


def at_model_size(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from edgekit.runtime.preprocess import resize

    # C order: mp.Image reads the buffer as packed rows and ignores numpy strides (a strided
    # frame gives MediaPipe scrambled pixels, and chance-level agreement).
    return np.ascontiguousarray(np.clip(np.rint(resize(frame, size)), 0, 255).astype(np.uint8))


def compare(path: Path, rgb_frames: list[np.ndarray]) -> dict:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from edgekit.runtime import Model

    model = Model(path)
    out = model.outputs[0]
    step = float(out.quantization.scale) if out.dtype.kind in "iu" else None
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
    same, worst = 0, 0.0
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for frame in rgb_frames:
            (head,) = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=frame)).classifications
            theirs = {c.index: (c.category_name, c.score) for c in head.categories}
            mine = model.rank(model.predict(model.prepare(frame)[None]), top_k=len(theirs))
            top = max(theirs, key=lambda i: theirs[i][1])
            same += (top, theirs[top][0]) == mine[0][:2]
            worst = max(worst, max(abs(theirs[i][1] - p) for i, _, p in mine))
    return {"agreement": same / len(rgb_frames), "max_score_diff": worst, "output_step": step,
            "input": f"{model.inputs[0].dtype} {list(model.inputs[0].shape)}", "output": str(out.dtype)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--data", required=True)
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()

    from edgekit.export import ExportOptions, Precision, export_model

    work = Path(tempfile.mkdtemp(prefix="mp-agreement-"))
    files = {}
    report = export_model(args.run, ExportOptions(precisions=tuple(Precision), out_dir=work / "default",
                                                  num_validation=500), log=lambda line: print(line, file=sys.stderr))
    files.update({f.target.precision.value: f.path for f in report.files})
    plain = export_model(args.run, ExportOptions(precisions=(Precision.INT8,), int8_head="int8",
                                                 out_dir=work / "plain", num_validation=500), log=lambda line: None)
    files["int8 (--int8-head int8)"] = plain.files[0].path
    from edgekit.runtime import Model

    rgb = frames(args.data, args.num_images)
    size = Model(files["fp32"]).metadata.preprocess.size
    rows = []
    for name, path in files.items():
        for handed, batch in (("model size", [at_model_size(f, size) for f in rgb]), ("own size", rgb)):
            row = {"file": name, "frames": f"{handed} ({batch[0].shape[0]}x{batch[0].shape[1]})",
                   "images": len(batch), **compare(path, batch)}
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps({"run": args.run, "rows": rows}, indent=1))
        lines = ["| file | input -> output | frames | images | top-1 agreement | max score diff | output step |",
                 "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['file']} | {r['input']} -> {r['output']} | {r['frames']} | {r['images']} | "
                  f"{100 * r['agreement']:.2f}% | {r['max_score_diff']:.2g} | {r['output_step'] or '-'} |" for r in rows]
        Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
