"""Test accuracy after every epoch of one training run: what early stopping could have kept.

Early stopping picks an epoch from the validation loss; whether that was a good pick shows
only against the test accuracy the weights of every epoch would have scored. This script
trains one run through the library (the same ``train`` the CLI calls, same defaults), keeps
the weights each epoch checkpoints (what early stopping would keep: the weight average under
``--ema``, precise BN statistics), then scores each on the test split and writes
OUT/epoch_curve.json and OUT/epoch_curve.md: epoch, learning rate, smoothed validation loss,
validation accuracy, test accuracy.

    .venv/bin/python benchmarks/epoch_curve.py --data DIR --out RUN [--from-epoch 30] -- \
        mobilenet_v2 --alpha 0.35 --input-size 32 --ema auto --epochs 75

The arguments after ``--`` are ``edgekit train``'s (ARCH and options; not --data/--out).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SMOOTHING = 0.5  # as edgekit.train.epochs.SMOOTHING


def _train_config(train_args: list[str], data: str, out: str):
    """The TrainConfig that ``edgekit train TRAIN_ARGS --data DATA --out OUT`` would build."""
    import click

    from edgekit.cli.train_cmd import train_command
    from edgekit.train import config as train_config

    captured = {}
    original = train_config.TrainConfig.__init__

    def capture(self, *args, **kwargs):
        original(self, *args, **kwargs)
        captured["cfg"] = self
        raise SystemExit(0)

    train_config.TrainConfig.__init__ = capture
    try:
        train_command.main([*train_args, "--data", data, "--out", out], standalone_mode=False)
    except (SystemExit, click.exceptions.Exit):
        pass
    finally:
        train_config.TrainConfig.__init__ = original
    if "cfg" not in captured:
        sys.exit(f"epoch_curve: edgekit train {' '.join(train_args)} did not build a config")
    return captured["cfg"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="test", help="the split scored after each epoch")
    p.add_argument("--from-epoch", type=int, default=1, help="score epochs from this one (counted from 1)")
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    args = p.parse_args()
    train_args = [a for a in args.train_args if a != "--"]
    out = Path(args.out)
    weights_dir = out.parent / f"{out.name}.epochs"
    weights_dir.mkdir(parents=True, exist_ok=True)

    import keras
    import numpy as np

    from edgekit.data import load_split
    from edgekit.run_record import read_record
    from edgekit.train import runstate, train
    from edgekit.train.dataset import EpochData

    cfg = _train_config(train_args, args.data, str(out))
    original = runstate.EpochCheckpoint.on_epoch_end

    def keep_weights(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch + 1 >= args.from_epoch:
            self.model.save_weights(weights_dir / f"{epoch + 1:03d}.weights.h5")

    runstate.EpochCheckpoint.on_epoch_end = keep_weights
    if not (out / "edgekit.json").is_file():
        train(cfg)
    runstate.EpochCheckpoint.on_epoch_end = original

    record = read_record(out)
    model = keras.models.load_model(out / "model.keras", compile=False)
    test = EpochData(load_split(args.data, args.split), record.preprocess, 256).once()
    batches = [(x, np.asarray(y)) for x, y in test]
    history = list(csv.DictReader(open(out / "history.csv")))
    rows, smoothed = [], None
    for i, h in enumerate(history):
        val_loss = float(h["val_loss"])
        smoothed = val_loss if smoothed is None else SMOOTHING * smoothed + (1 - SMOOTHING) * val_loss
        path = weights_dir / f"{i + 1:03d}.weights.h5"
        if not path.is_file():
            continue
        model.load_weights(path)
        correct = sum(int((np.asarray(model(x, training=False)).argmax(1) == y).sum()) for x, y in batches)
        total = sum(len(y) for _, y in batches)
        rows.append({"epoch": i + 1, "val_loss": val_loss, "smoothed_val_loss": smoothed,
                     "val_accuracy": float(h["val_accuracy"]), "train_accuracy": float(h["accuracy"]),
                     "test_accuracy": correct / total})
        print(f"epoch {i + 1}: test {correct / total:.4f}", file=sys.stderr)
    doc = {"command": " ".join(["edgekit train", *train_args, "--data", args.data]), "split": args.split,
           "written_model_epochs": record.extra.get("epochs"), "rows": rows}
    (out / "epoch_curve.json").write_text(json.dumps(doc, indent=1))
    lines = [f"# Test accuracy after each epoch: `{doc['command']}`", "",
             "| epoch | val loss (smoothed) | val accuracy | train accuracy | test accuracy |", "|---|---|---|---|---|"]
    lines += [f"| {r['epoch']} | {r['val_loss']:.4f} ({r['smoothed_val_loss']:.4f}) | {r['val_accuracy']:.4f} | "
              f"{r['train_accuracy']:.4f} | {r['test_accuracy']:.4f} |" for r in rows]
    (out / "epoch_curve.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
