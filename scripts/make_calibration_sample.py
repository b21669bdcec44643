"""Regenerate calibration/fashion-mnist/: a small real sample of the official Fashion-MNIST.

Takes, for each class, the first ``--train-per-class`` images of the train files and the first
``--test-per-class`` images of the t10k files (in file order), and writes them as PNGs to
``<out>/train/<k>_<name>/<split>_<index>.png`` and ``<out>/test/...``, where ``index`` is the
image's index in the official file. The class folders carry a numeric prefix so that their
sorted order is the label order 0..9; ``class_names.txt`` gives the official names.

    python scripts/make_calibration_sample.py \
        --source /usr/share/datasets/fashion-mnist --out calibration/fashion-mnist

The output is byte-for-byte reproducible (Pillow's PNG writer, fixed order, no timestamps).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from edgekit.data.idx import read_idx  # noqa: E402
from edgekit.data.sources import FASHION_MNIST_CLASSES  # noqa: E402

FILES = {"train": "train", "test": "t10k"}


def folder_name(label: int, name: str) -> str:
    """``0_tshirt_top``: a numeric prefix keeps sorted order = label order."""
    return f"{label}_{re.sub(r'[^a-z0-9]+', '_', name.lower().replace('-', '')).strip('_')}"


def first_per_class(labels: np.ndarray, per_class: int) -> dict[int, np.ndarray]:
    picked = {}
    for c in range(len(FASHION_MNIST_CLASSES)):
        members = np.flatnonzero(labels == c)[:per_class]
        if len(members) < per_class:
            raise SystemExit(f"class {c} has only {len(members)} images; wanted {per_class}")
        picked[c] = members
    return picked


def write_split(source: Path, out: Path, split: str, per_class: int) -> None:
    prefix = FILES[split]
    images = read_idx(source / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(source / f"{prefix}-labels-idx1-ubyte.gz")
    for c, indices in first_per_class(labels, per_class).items():
        folder = out / split / folder_name(c, FASHION_MNIST_CLASSES[c])
        folder.mkdir(parents=True, exist_ok=True)
        for i in indices:
            Image.fromarray(images[i]).save(folder / f"{split}_{i:05d}.png", optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--out", type=Path, default=Path("calibration/fashion-mnist"))
    parser.add_argument("--train-per-class", type=int, default=30)
    parser.add_argument("--test-per-class", type=int, default=20)
    args = parser.parse_args()
    for split in FILES:
        shutil.rmtree(args.out / split, ignore_errors=True)
    write_split(args.source, args.out, "train", args.train_per_class)
    write_split(args.source, args.out, "test", args.test_per_class)
    (args.out / "class_names.txt").write_text("\n".join(FASHION_MNIST_CLASSES) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
