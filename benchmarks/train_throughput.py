"""Training throughput of ``edgekit train``'s input pipeline and model, and which one limits it.

Same code paths as ``edgekit train`` (edgekit/train/run.py): TrainConfig, the data loading,
preprocessing spec, model build and compile of run.py, the EpochData pipeline, the seeds and
op determinism that ``train()`` turns on. Model: MobileNetV2 alpha 0.35 at 32x32x1, batch
128, on Fashion-MNIST's training split. For each augmentation setting (none; the default
flip; flip,crop; all six) it measures, in images per second:

* pipeline - iterating ``EpochData.epochs()`` alone (decode, augmentation, normalisation,
  batching, prefetch), no model;
* train - ``model.fit`` on that pipeline, as ``edgekit train`` runs it;
* model - ``model.fit`` on one prepared batch repeated (no pipeline work): the model's own
  ceiling; measured once, as augmentation does not change it.

After one warm-up round of everything (graph tracing, autotuning, caches) the subjects take
turns for ``--rounds`` rounds (``--steps`` batches of training, ``--pipeline-steps`` batches of
the pipeline alone), the order rotating each round, so that load drifting on a shared machine
hits all of them alike; each figure is the median over its rounds. If pipeline >> train and
train ~ model, the model bounds training; if train falls with heavier augmentation towards
pipeline, the pipeline does. On a CPU-only machine the pipeline and the model share the same
cores, so pipeline work slows training even when it is fast enough on its own.

    nice -n 15 .venv/bin/python benchmarks/train_throughput.py [--steps 40] [--pipeline-steps 400] \\
        [--rounds 5] [--note "quiet 8-core box"]

Writes benchmarks/results/train_throughput.json and .md (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from edgekit.data import fit_colour_pca, parse_augment  # noqa: E402
from edgekit.train.config import TrainConfig  # noqa: E402
from edgekit.train.dataset import EpochData  # noqa: E402
from edgekit.train.run import _build, _enter_phase, _load_data, _spec  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
RESULTS = Path(__file__).resolve().parent / "results"
# (row name, --augment value)
AUGMENT_SETTINGS = [("none", "none"), ("default", "flip"), ("flip,crop", "flip,crop"),
                    ("all", "flip,crop,rotate,shear,color,pca")]


def _config(augment: str, batch_size: int) -> TrainConfig:
    return TrainConfig(arch="mobilenet_v2", data=DATA, out="(not written)", input_size=32, alpha=0.35,
                       batch_size=batch_size, augment=augment, tensorboard=False)


class _EpochTimer(keras.callbacks.Callback):
    """Times each epoch where edgekit train's own images_per_second is measured."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.t0)


def fit_round(model: keras.Model, ds: tf.data.Dataset, steps: int):
    """One round: a fit call of one epoch of ``steps`` batches; returns its seconds. A model
    keeps its traced train function across fit calls, so only the first round traces."""
    def run() -> float:
        timer = _EpochTimer()
        model.fit(ds, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[timer])
        return timer.seconds[0]
    return run


def pipeline_round(ds: tf.data.Dataset, steps: int):
    """One round: ``steps`` batches from one iterator that lives across rounds."""
    it = iter(ds)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            x, _ = next(it)
        x.numpy()  # the last batch really exists
        return time.perf_counter() - start
    return run


def _model(cfg: TrainConfig, spec, num_classes: int, steps: int) -> keras.Model:
    model, _ = _build(cfg, spec, num_classes)
    _enter_phase(model, cfg, "train", steps)  # compiles as train() does (loss, optimizer, schedule)
    return model


def _feed(train_data, spec, augment: str, batch_size: int) -> tuple[TrainConfig, EpochData]:
    cfg = _config(augment, batch_size)
    config = parse_augment(cfg.augment)
    pca = fit_colour_pca(train_data, spec, seed=cfg.seed) if config.pca else None
    return cfg, EpochData(train_data, spec, cfg.batch_size, config, pca, cfg.seed)


def subjects(steps: int, pipeline_steps: int, rounds: int, batch_size: int) -> tuple[dict, list]:
    """(what, augment, batches per round, run_round) for everything measured."""
    keras.utils.set_random_seed(0)  # as train() does
    tf.config.experimental.enable_op_determinism()
    base = _config("none", batch_size)
    train_data, _ = _load_data(base)
    spec = _spec(base, train_data, None)
    n_classes = len(train_data.class_names)
    setup = {"images": len(train_data), "input": [*spec.size, spec.channels]}
    print(f"{len(train_data)} images, input {spec.size[0]}x{spec.size[1]}x{spec.channels}", file=sys.stderr)
    total = steps * (rounds + 1)
    out = []
    for name, augment in AUGMENT_SETTINGS:
        cfg, feed = _feed(train_data, spec, augment, batch_size)
        if name == "none":
            one = tf.data.Dataset.from_tensors(next(iter(feed.batches(0, shuffle=True)))).repeat()
            out.append(("model", "-", steps, fit_round(_model(cfg, spec, n_classes, total), one, steps)))
        out.append(("pipeline", name, pipeline_steps, pipeline_round(feed.epochs(0, 10**6), pipeline_steps)))
        out.append(("train", name, steps, fit_round(_model(cfg, spec, n_classes, total), feed.epochs(0, 10**6),
                                                    steps)))
    return setup, out


def measure(steps: int, pipeline_steps: int, rounds: int, batch_size: int) -> tuple[dict, list[dict]]:
    """One warm-up round of everything, then ``rounds`` rounds in turn (the order rotating
    each round), so that load drifting on a shared machine hits every subject alike."""
    setup, subs = subjects(steps, pipeline_steps, rounds, batch_size)
    seconds: list[list[float]] = [[] for _ in subs]
    for r in range(rounds + 1):
        order = list(range(len(subs)))
        order = order[r % len(order):] + order[:r % len(order)]
        for i in order:
            t = subs[i][3]()
            if r:
                seconds[i].append(t)
        print(f"round {r}{' (warm-up)' if not r else ''} done", file=sys.stderr, flush=True)
    rows = [_row(what, augment, [n * batch_size / t for t in ts])
            for (what, augment, n, _), ts in zip(subs, seconds)]
    return setup, rows


def _row(what: str, augment: str, rates: list[float]) -> dict:
    row = {"what": what, "augment": augment, "images_per_second_median": round(statistics.median(rates), 1),
           "images_per_second_rounds": [round(r, 1) for r in rates]}
    print(f"{what:9} {augment:8} {row['images_per_second_median']:9.1f} img/s  rounds {row['images_per_second_rounds']}",
          file=sys.stderr, flush=True)
    return row


def machine(note: str) -> dict:
    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or "cpu", "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "note": note}


def write(doc: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    m = doc["machine"]
    by = {(r["what"], r["augment"]): r["images_per_second_median"] for r in doc["rows"]}
    spread = {(r["what"], r["augment"]): f"{min(r['images_per_second_rounds']):.0f}-"
              f"{max(r['images_per_second_rounds']):.0f}" for r in doc["rows"]}
    lines = [
        "# Training throughput: MobileNetV2 alpha 0.35, 32x32x1, batch "
        f"{doc['batch_size']}, Fashion-MNIST ({doc['setup']['images']} training images)", "",
        f"{m['machine']}, {m['cpus']} CPUs, TF {m['tensorflow']}, Keras {m['keras']}; load average at start "
        f"{m['load_average_at_start']}, at end {doc['load_average_at_end']}. {m['note']}", "",
        f"Median images/s over {doc['rounds']} rounds of {doc['steps']} batches ({doc['pipeline_steps']} for "
        "the pipeline alone), taken in turns after one warm-up round (`benchmarks/train_throughput.py`). model: fit on one prepared batch repeated (the model's "
        "ceiling); pipeline: EpochData alone; train: fit on EpochData, as `edgekit train` runs it.", "",
        "| augment | pipeline alone | train | train, rounds min-max | train / model |",
        "|---|---|---|---|---|",
    ]
    model = by[("model", "-")]
    for name, augment in AUGMENT_SETTINGS:
        train_rate = by[("train", name)]
        lines.append(f"| {name} ({augment}) | {by[('pipeline', name)]:.0f} | {train_rate:.0f} | "
                     f"{spread[('train', name)]} | {train_rate / model:.2f} |")
    lines += ["", f"model alone (one batch repeated): {model:.0f} images/s (rounds {spread[('model', '-')]})", ""]
    out.with_suffix(".md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="Batches per round of training.")
    parser.add_argument("--pipeline-steps", type=int, default=400,
                        help="Batches per round of the pipeline alone (it is much faster).")
    parser.add_argument("--rounds", type=int, default=5, help="Timed rounds (after one warm-up round).")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--note", default="", help="Machine notes for the record (e.g. shared, contended).")
    parser.add_argument("--out", type=Path, default=RESULTS / "train_throughput")
    args = parser.parse_args()
    if min(args.steps, args.pipeline_steps, args.rounds) < 1:
        parser.error(f"--steps, --pipeline-steps and --rounds must be >= 1; got {args.steps}, "
                     f"{args.pipeline_steps} and {args.rounds}")
    info = machine(args.note)
    setup, rows = measure(args.steps, args.pipeline_steps, args.rounds, args.batch_size)
    doc = {"machine": info, "model": "mobilenet_v2 alpha 0.35", "batch_size": args.batch_size,
           "steps": args.steps, "pipeline_steps": args.pipeline_steps, "rounds": args.rounds, "setup": setup, "rows": rows,
           "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    write(doc, args.out)
    print(f"wrote {args.out.with_suffix('.json')} and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
