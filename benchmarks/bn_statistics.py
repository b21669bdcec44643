"""Which images should precise BN take its statistics from? (edgekit/train/precise_bn.py)

For each finished training run: the accuracy of its model on the validation and test images
with BN statistics recomputed (the run's own weights, ``recompute_batchnorm``) from

* ``clean``: the first 2,048 training images, unaugmented (what precise BN used before), and
* ``augmented``: 2,048 training images as training saw them (the run's augmentation and
  mixing, ``EpochData.calibration``: what precise BN uses now).

Only the statistics differ; a model without BN layers scores the same both ways. Writes
OUT.json and OUT.md (default benchmarks/results/bn_statistics):

    .venv/bin/python benchmarks/bn_statistics.py RUN [RUN ...] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMAGES = 2048


def accuracy(model, batches) -> float:
    """Top-1 accuracy of a Keras model on (images, labels) batches (also benchmarks/tail_average.py)."""
    import numpy as np

    correct = total = 0
    for x, y in batches:
        correct += int((np.asarray(model(x, training=False)).argmax(1) == np.asarray(y)).sum())
        total += len(y)
    return correct / total


def measure(run: Path) -> dict:
    import keras
    import numpy as np

    from edgekit.data import load_split, parse_augment
    from edgekit.run_record import MODEL, read_record
    from edgekit.train.dataset import EpochData
    from edgekit.train.mixing import MixConfig
    from edgekit.train.precise_bn import recompute_batchnorm

    record = read_record(run)
    cfg, spec = record.config, record.preprocess
    model = keras.models.load_model(run / MODEL, compile=False)
    train = load_split(cfg["data"], "train", val_fraction=cfg["val_fraction"], seed=cfg["seed"])
    splits = {"val": load_split(cfg["data"], "val", val_fraction=cfg["val_fraction"], seed=cfg["seed"]),
              "test": load_split(cfg["data"], "test")}
    feeds = {
        "clean": EpochData(train.subset(np.arange(min(len(train), IMAGES))), spec, min(cfg["batch_size"], 256)).once(),
        "augmented": EpochData(train, spec, cfg["batch_size"], parse_augment(cfg["augment"]), None, cfg["seed"],
                               MixConfig(cfg.get("mixup", 0.0), cfg.get("cutmix", 0.0))).calibration(IMAGES),
    }
    row = {"run": str(run), "command": f"edgekit train {record.architecture} ...", "config": {
        k: cfg.get(k) for k in ("alpha", "input_size", "batch_size", "augment", "ema", "mixup", "cutmix", "epochs")}}
    for name, feed in feeds.items():
        recompute_batchnorm(model, (x for x, _ in feed))
        for split, data in splits.items():
            row[f"{name}_{split}"] = accuracy(model, EpochData(data, spec, 256).once())
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bn_statistics")
    args = p.parse_args()
    rows = []
    for run in args.runs:
        rows.append(measure(run))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    doc = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "images": IMAGES, "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    lines = ["# Precise BN statistics from clean or augmented training images (benchmarks/bn_statistics.py)", "",
             f"Each finished run's model with its BN statistics recomputed from {IMAGES} training images, unaugmented "
             "(`clean`) or as training saw them (`augmented`); everything else unchanged.", "",
             "| run | augment | ema | mixup / cutmix | val clean | val augmented | test clean | test augmented |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["config"]
        lines.append(f"| {Path(r['run']).parent.name}/{Path(r['run']).name} | {c['augment']} | {c['ema']} | "
                     f"{c.get('mixup') or 0:g} / {c.get('cutmix') or 0:g} | {r['clean_val'] * 100:.2f}% | "
                     f"{r['augmented_val'] * 100:.2f}% | {r['clean_test'] * 100:.2f}% | {r['augmented_test'] * 100:.2f}% |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
