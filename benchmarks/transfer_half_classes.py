"""Does transfer learning help? Fine-tune from one half of Fashion-MNIST's classes to the other.

The experiment of issue 3 (transfer learning, Yosinski et al. 2014, "How transferable are
features in deep neural networks?", which splits ImageNet's classes into two halves A and B):

1. split the official Fashion-MNIST files into half A (classes 0-4: T-shirt/top, Trouser,
   Pullover, Dress, Coat) and half B (classes 5-9: Sandal, Shirt, Sneaker, Bag, Ankle boot),
   each an IDX folder with its own train and test files and ``class_names.txt``;
2. ``edgekit train`` a model on A from scratch;
3. on B, at the same budget (same epochs, images, batch size, learning-rate schedule and seed):
   train from scratch, and fine-tune from the A run (``--weights RUN_A``: every layer but the
   classifier is copied, the classifier is new);
4. ``edgekit evaluate`` both on B's official test images (5,000).

B can be cut to ``--b-per-class`` training images per class: the small-data regime where
pretrained features matter most. Every step runs the real CLI in a subprocess.

    .venv/bin/python benchmarks/transfer_half_classes.py --out runs/transfer \
        [--epochs-a 5] [--epochs-b 5] [--b-per-class 1000] [--input-size 32] [--alpha 0.35]

Writes ``OUT/transfer.json`` and ``benchmarks/results/transfer_half_classes.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cli_json import edgekit_json  # noqa: E402
from edgekit.data.idx import read_idx, write_idx  # noqa: E402
from edgekit.data.sources import FASHION_MNIST_CLASSES  # noqa: E402

FMNIST = Path("/usr/share/datasets/fashion-mnist")
HALVES = {"A": (0, 1, 2, 3, 4), "B": (5, 6, 7, 8, 9)}
RESULTS = REPO / "benchmarks" / "results"


def write_half(src: Path, dst: Path, classes: tuple[int, ...], per_class: int | None, seed: int) -> dict:
    """An IDX folder with only ``classes`` (relabelled 0..k-1); train cut to per_class each."""
    dst.mkdir(parents=True, exist_ok=True)
    counts = {}
    for prefix in ("train", "t10k"):
        images = read_idx(src / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(src / f"{prefix}-labels-idx1-ubyte.gz")
        keep = np.flatnonzero(np.isin(labels, classes))
        if prefix == "train" and per_class:
            rng = np.random.default_rng(seed)
            keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                           for c in classes]))
        remap = np.full(10, 255, np.uint8)
        remap[list(classes)] = np.arange(len(classes), dtype=np.uint8)
        write_idx(dst / f"{prefix}-images-idx3-ubyte", images[keep])
        write_idx(dst / f"{prefix}-labels-idx1-ubyte", remap[labels[keep]])
        counts[prefix] = int(keep.size)
    (dst / "class_names.txt").write_text("".join(FASHION_MNIST_CLASSES[c] + "\n" for c in classes))
    return counts


def edgekit(*args: str) -> dict:
    return edgekit_json(*args, who="transfer benchmark")


def train(arch: str, data: Path, out: Path, epochs: int, common: list[str], *extra: str) -> dict:
    start = time.perf_counter()
    edgekit("train", arch, "--data", str(data), "--out", str(out), "--epochs", str(epochs), *common, *extra)
    seconds = time.perf_counter() - start
    result = edgekit("evaluate", str(out), "--data", str(data), "--split", "test")
    return {"run": str(out), "train_seconds": round(seconds, 1), "test_accuracy": result["accuracy"]}


def markdown(doc: dict) -> str:
    cfg = doc["config"]
    rows = [f"| {name} | {r['test_accuracy'] * 100:.2f}% | {r['train_seconds']:.0f} s |"
            for name, r in doc["runs"].items()]
    return "\n".join([
        "# Transfer learning across Fashion-MNIST class halves", "",
        f"{cfg['arch']} alpha {cfg['alpha']}, {cfg['input_size']}x{cfg['input_size']}; "
        f"A = classes 0-4 ({doc['images']['A']['train']} train images, {cfg['epochs_a']} epochs); "
        f"B = classes 5-9 ({doc['images']['B']['train']} train images, {cfg['epochs_b']} epochs, "
        f"test on {doc['images']['B']['t10k']} official test images); "
        f"{doc['machine']}.", "",
        "| run on B | B test accuracy | wall time |", "|---|---|---|", *rows, "",
        f"Fine-tuning from A minus scratch: {doc['gain_pp']:+.2f} percentage points.", ""])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "transfer")
    p.add_argument("--arch", default="mobilenet_v2")
    p.add_argument("--alpha", default="0.35")
    p.add_argument("--input-size", default="32")
    p.add_argument("--epochs-a", type=int, default=5)
    p.add_argument("--epochs-b", type=int, default=5)
    p.add_argument("--b-per-class", type=int, default=1000, help="B training images per class (0: all)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if not FMNIST.is_dir():
        sys.exit(f"transfer benchmark: {FMNIST} is missing (install Debian's dataset-fashion-mnist)")
    images = {"A": write_half(FMNIST, args.out / "data-A", HALVES["A"], None, args.seed),
              "B": write_half(FMNIST, args.out / "data-B", HALVES["B"], args.b_per_class or None, args.seed)}
    common = ["--alpha", args.alpha, "--input-size", args.input_size, "--seed", str(args.seed)]
    run_a = train(args.arch, args.out / "data-A", args.out / "run-A", args.epochs_a, common)
    runs = {
        "scratch": train(args.arch, args.out / "data-B", args.out / "run-B-scratch", args.epochs_b, common),
        "fine-tuned from A": train(args.arch, args.out / "data-B", args.out / "run-B-from-A",
                                   args.epochs_b, common, "--weights", str(args.out / "run-A")),
    }
    doc = {
        "config": {"arch": args.arch, "alpha": args.alpha, "input_size": args.input_size,
                   "epochs_a": args.epochs_a, "epochs_b": args.epochs_b,
                   "b_per_class": args.b_per_class, "seed": args.seed},
        "images": images, "run_A": run_a, "runs": runs,
        "gain_pp": round((runs["fine-tuned from A"]["test_accuracy"] - runs["scratch"]["test_accuracy"]) * 100, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    text = json.dumps(doc, indent=2)
    (args.out / "transfer.json").write_text(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transfer_half_classes.json").write_text(text)
    (RESULTS / "transfer_half_classes.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
