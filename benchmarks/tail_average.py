"""Would averaging the last epochs' weights (stochastic weight averaging, Izmailov et al. 2018,
"Averaging weights leads to wider optima and better generalization") beat the weights a run
ends with? Issue 14: on a 3,000-image MNIST sample the default's test accuracy peaks in the
middle of the anneal and ends 0.3 pp lower (benchmarks/results/stopping_rules.md); a longer
average than ``--ema auto``'s (a time constant of 5% of the steps) might keep that peak.

For each run of benchmarks/epoch_curve.py (every epoch's checkpointed weights kept in
RUN.epochs/): the uniform average of the last k epochs' weights (each already ``--ema``'s
average), BN statistics recomputed as precise BN does (2,048 augmented training images), then
validation and test accuracy. k = 1 is the run's own last epoch. Appends one JSON line per
(run, k) to OUT.jsonl and writes the table OUT.md (default benchmarks/results/tail_average):

    .venv/bin/python benchmarks/tail_average.py RUN [RUN ...] [--out PATH] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bn_statistics import IMAGES, accuracy  # noqa: E402 (after the path insert; precise BN's image count)

WINDOWS = (1, 3, 5, 10, 15, 20, 25, 30)


def measure(run: Path):
    """Yield one row per window k: the run, k, the epochs averaged, validation and test accuracy."""
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
    val = list(EpochData(load_split(cfg["data"], "val", val_fraction=cfg["val_fraction"], seed=cfg["seed"]),
                         spec, 256).once())
    test = list(EpochData(load_split(cfg["data"], "test"), spec, 256).once())

    def calibration():
        return (x for x, _ in EpochData(train, spec, cfg["batch_size"], parse_augment(cfg["augment"]), None,
                                        cfg["seed"], MixConfig(cfg.get("mixup", 0.0), cfg.get("cutmix", 0.0))
                                        ).calibration(IMAGES))

    snapshots = sorted((run.parent / f"{run.name}.epochs").glob("*.weights.h5"))
    if not snapshots:
        sys.exit(f"tail_average: {run.parent / (run.name + '.epochs')} holds no epoch weights (run epoch_curve.py)")
    weights = {}
    for path in snapshots:
        model.load_weights(path)
        weights[int(path.name.split(".")[0])] = [w.numpy().copy() for w in model.weights]
    last = max(weights)
    for k in WINDOWS:
        epochs = [e for e in range(last - k + 1, last + 1) if e in weights]
        if len(epochs) < k:
            continue
        for i, w in enumerate(model.weights):
            w.assign(np.mean([weights[e][i] for e in epochs], axis=0))
        recompute_batchnorm(model, calibration())
        yield {"run": run.name, "k": k, "from": epochs[0], "to": epochs[-1], "val": accuracy(model, val),
               "test": accuracy(model, test)}


def table(rows: list[dict]) -> str:
    runs = list(dict.fromkeys(r["run"] for r in rows))
    ks = sorted({r["k"] for r in rows})
    cell = {(r["run"], r["k"]): r for r in rows}
    lines = ["# Averaging the last k epochs' weights (benchmarks/tail_average.py)", "",
             "Test accuracy (validation accuracy) of the uniform average of each run's last k epoch checkpoints, "
             f"BN statistics recomputed from {IMAGES} augmented training images; k = 1 is the run's last epoch. "
             "Runs: benchmarks/epoch_curve.py, `mobilenet_v2 --alpha 0.35 --input-size 32`, defaults otherwise.", "",
             "| run | " + " | ".join(f"k = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for run in runs:
        lines.append(f"| {run} | " + " | ".join(
            f"{cell[run, k]['test'] * 100:.2f}% ({cell[run, k]['val'] * 100:.1f}%)" if (run, k) in cell else "-"
            for k in ks) + " |")
    for name in dict.fromkeys(run.rsplit("_s", 1)[0] for run in runs):
        seeds = [run for run in runs if run.rsplit("_s", 1)[0] == name]
        if len(seeds) > 1:
            means = [[cell[run, k]["test"] for run in seeds if (run, k) in cell] for k in ks]
            lines.append(f"| {name}, mean of {len(seeds)} seeds | " + " | ".join(
                f"{100 * sum(m) / len(m):.2f}%" if len(m) == len(seeds) else "-" for m in means) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", type=Path)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "tail_average")
    p.add_argument("--table-only", action="store_true", help="rewrite OUT.md from OUT.jsonl, measuring nothing")
    args = p.parse_args()
    jsonl = args.out.with_suffix(".jsonl")
    if not args.table_only:
        for run in args.runs:
            for row in measure(run):
                with jsonl.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), file=sys.stderr, flush=True)
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    args.out.with_suffix(".md").write_text(table(rows))


if __name__ == "__main__":
    main()
