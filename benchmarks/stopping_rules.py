"""Which epoch each early-stopping rule keeps, and what those weights score on the test set.

Replays ``edgekit.train.epochs.BestWeights`` (the class training uses) on finished runs of
benchmarks/epoch_curve.py: a run trained to its planned last epoch with the weights of every
epoch kept (from ``--from-epoch``) and scored on the test split. For each epoch the replay
feeds the run's validation loss (history.csv) and which validation images those weights get
right (recomputed from the kept weights, on the run's own seeded validation hold-out); early
stopping's plan (patience, first watched epoch) is the one ``--epochs auto`` makes for the
data, so the run must have been trained for the epochs auto plans (``--epochs N`` with N the
auto count, as epoch_curve.py's usage shows). A stop only truncates the run, so the replay is
what the rule gives when training (the trajectories are deterministic on one machine).

    .venv/bin/python benchmarks/stopping_rules.py RUN [RUN ...] --data DIR [--data DIR ...] \
        --out benchmarks/results/stopping_rules

``--data`` is given once per RUN, or once for all. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from edgekit.stopping import RESTORE_RULES as RULES  # noqa: E402 (after the path insert; imports no Keras)


def _val_correct(run: Path, record: dict, data: str, epochs: list[int]) -> dict[int, np.ndarray]:
    """{epoch: which validation images that epoch's kept weights get right}."""
    import keras

    from edgekit.data import load_split
    from edgekit.runtime.spec import PreprocessSpec
    from edgekit.train.dataset import EpochData

    cfg = record["config"]
    val = EpochData(load_split(data, "val", val_fraction=cfg["val_fraction"], seed=cfg["seed"]),
                    PreprocessSpec.from_dict(record["preprocess"]), 256).once()
    batches = [(x, np.asarray(y)) for x, y in val]
    model = keras.models.load_model(run / "model.keras", compile=False)
    out = {}
    for epoch in epochs:
        model.load_weights(run.parent / f"{run.name}.epochs" / f"{epoch:03d}.weights.h5")
        out[epoch] = np.concatenate([np.asarray(model(x, training=False)).argmax(1) == y for x, y in batches])
    return out


def replay(run: Path, data: str) -> dict:
    """What each rule of RULES (RESTORE_RULES) keeps on RUN (an epoch_curve.py output folder)."""
    import csv

    import keras

    from edgekit.train.epochs import AUTO, BestWeights, plan_epochs

    record = json.loads((run / "edgekit.json").read_text())
    curve = {r["epoch"]: r for r in json.loads((run / "epoch_curve.json").read_text())["rows"]}
    history = list(csv.DictReader(open(run / "history.csv")))
    plan = plan_epochs(AUTO, 0, record["data"]["images"], record["batch_size"]["batch_size"], True)
    if plan.epochs != len(history):
        sys.exit(f"stopping_rules: {run} trained {len(history)} epochs; --epochs auto plans {plan.epochs} for its data")
    watched = list(range(plan.watch_from + 1, plan.epochs + 1))
    missing = [e for e in watched if e not in curve]
    if missing:
        sys.exit(f"stopping_rules: {run} has no test score for epochs {missing[:5]}...; rerun epoch_curve.py "
                 f"with --from-epoch {plan.watch_from + 1} or lower")
    correct = _val_correct(run, record, data, watched)
    result = {"run": str(run), "data": data, "command": json.loads((run / "epoch_curve.json").read_text())["command"],
              "patience": plan.patience, "watch_from": plan.watch_from, "epochs": plan.epochs,
              "last_epoch_test_accuracy": curve[plan.epochs]["test_accuracy"], "rules": {}}
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    for rule in RULES:
        now = {}
        with tempfile.TemporaryDirectory() as tmp:
            best = BestWeights(Path(tmp), plan.patience, None, plan.watch_from, rule, lambda: now.get("correct"))
            best.set_model(model)
            model.stop_training = False
            for i, h in enumerate(history):
                now["correct"] = correct.get(i + 1)
                best.on_epoch_end(i, {"val_loss": float(h["val_loss"])})
                if model.stop_training:
                    break
        kept = best.kept_epoch
        result["rules"][rule] = {"stopped_at": best.stopped_at, "best_epoch": best.best_epoch, "kept_epoch": kept,
                                 "differ": best.differ, "val_accuracy": curve[kept]["val_accuracy"],
                                 "test_accuracy": curve[kept]["test_accuracy"]}
    return result


def markdown(results: list[dict]) -> str:
    lines = ["# What each early-stopping rule keeps (benchmarks/stopping_rules.py)", "",
             "Replays of `BestWeights` on runs trained to their last epoch with every epoch's weights scored "
             "on the test set (benchmarks/epoch_curve.py). `best`: the lowest smoothed validation loss's epoch "
             "(classic early stopping, `--restore best`); `significant`: that epoch only when McNemar's test on "
             "the validation images says it is better than the current one (the default). differ: validation "
             "images only the lowest-loss epoch got right / only the kept-or-stopped epoch got right.", "",
             "| run | rule | stopped at | lowest-loss epoch | kept epoch | differ | val accuracy | test accuracy | "
             "last epoch's test accuracy |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for rule, k in r["rules"].items():
            differ = "-" if not k["differ"] else f"{k['differ'][0]} / {k['differ'][1]}"
            lines.append(f"| {r['command']} | {rule} | {k['stopped_at'] or '-'} | {k['best_epoch']} | {k['kept_epoch']} "
                         f"| {differ} | {k['val_accuracy'] * 100:.2f}% | {k['test_accuracy'] * 100:.2f}% | "
                         f"{r['last_epoch_test_accuracy'] * 100:.2f}% |")
    lines += ["", "Mean test accuracy per data set and rule:", "", "| data | runs | " +
              " | ".join(RULES) + " | last epoch |", "|---|---|" + "---|" * (len(RULES) + 1)]
    by_data: dict[str, list[dict]] = {}
    for r in results:
        by_data.setdefault(r["data"], []).append(r)
    for data, runs in by_data.items():
        means = [np.mean([r["rules"][rule]["test_accuracy"] for r in runs]) * 100 for rule in RULES]
        last = np.mean([r["last_epoch_test_accuracy"] for r in runs]) * 100
        lines.append(f"| {data} | {len(runs)} | " + " | ".join(f"{m:.2f}%" for m in means) + f" | {last:.2f}% |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "stopping_rules")
    args = p.parse_args()
    if len(args.data) not in (1, len(args.runs)):
        p.error(f"--data given {len(args.data)} times; expected once or once per RUN ({len(args.runs)})")
    data = args.data * len(args.runs) if len(args.data) == 1 else args.data
    results = [replay(run, d) for run, d in zip(args.runs, data)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(results, indent=1)), (".md", markdown(results))):
        tmp = args.out.with_name(args.out.name + suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out.with_name(args.out.name + suffix))
    print(markdown(results))


if __name__ == "__main__":
    main()
