"""``edgekit qat``: fine-tune a trained run with fake quantization; write a new run.

The output folder is an edgekit run like ``edgekit train`` writes (``model.keras``,
``edgekit.json``, ``history.csv``): ``model.keras`` is the zoo's float architecture holding the
QAT-trained weights (batch norm unfolded, with the statistics QAT froze), and
``edgekit.json`` adds ``qat``: the learned activation ranges per float layer, which
``edgekit export --quantize int8`` writes into the int8 files instead of calibrating.

Work happens in a hidden sibling folder (``.NAME.qat-partial``) holding per-epoch checkpoints;
it is renamed onto ``--out`` only when complete, so ``--out`` never holds a partial run, and
``--resume`` continues from its last checkpoint. Epoch order and augmentation depend only on
(seed, epoch) (``edgekit.train.dataset``), so a resumed run equals an uninterrupted one.

What QAT fits (``--target``): by default the trained run's own float model is the teacher
(knowledge distillation, Hinton et al. 2015, arXiv:1503.02531; used for quantized students by
Mishra & Marr 2017, arXiv:1711.05852, and Polino et al. 2018, arXiv:1802.05668): each batch's
soft targets are the original model's probabilities on the same augmented images, so the int8
model learns to give the answers the float model gives (its training "agreement" metric is the
top-1 agreement with it). ``labels`` fine-tunes on the training labels instead, which lets the
int8 model drift from the original wherever the labels allow.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np

from edgekit import __version__
from edgekit.messages import stderr
from edgekit.run_record import CHECKPOINTS, HISTORY, MODEL, RECORD, RunRecord, load_run, write_record

TARGETS = ("distill", "labels")
STRATEGIES = ("default", "mirrored")  # multi-worker: every worker would write --out; not done
PARTIAL_SUFFIX = ".qat-partial"


def log(msg: str) -> None:
    stderr(f"edgekit qat: {msg}")


@dataclass(frozen=True)
class QatConfig:
    run: str  # the trained run to fine-tune
    out: str
    epochs: int = 1
    batch_size: int = 128
    lr: float = 1e-4  # peak; cosine decay to lr/100 (a fine-tune of a converged model)
    strategy: str = "default"
    target: str = "distill"  # soft targets from the original model, or the training labels
    resume: bool = False
    data: str | None = None  # default: the run's training data
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1"),
                  (self.batch_size >= 1, "batch-size", self.batch_size, "an integer >= 1"),
                  (np.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "a number > 0"),
                  (self.strategy in STRATEGIES, "strategy", self.strategy, f"one of {', '.join(STRATEGIES)}"),
                  (self.target in TARGETS, "target", self.target, f"one of {', '.join(TARGETS)}"),
                  (self.limit is None or self.limit >= 2, "limit", self.limit, "an integer >= 2")]
        for ok, name, value, expected in checks:
            if not ok:
                raise ValueError(f"--{name} got {value!r}; expected {expected}")


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}{PARTIAL_SUFFIX}"


def read_source(run: str) -> RunRecord:
    """The trained run's record; ValueError naming RUN when it is no edgekit run."""
    meta = load_run(run, "RUN").record
    if meta.preprocess is None:
        raise ValueError(f"RUN got {run!r}: its {RECORD} records no preprocessing; not an edgekit run")
    if "qat" in meta.extra:
        raise ValueError(f"RUN got {run!r}: it is a QAT run already; fine-tune the run it came from")
    return meta


def _check_out(cfg: QatConfig) -> tuple[Path, Path, dict | None]:
    from edgekit.train.runstate import read_state

    out = Path(cfg.out)
    work = partial_dir(out)
    if out.exists():
        raise ValueError(f"--out {cfg.out!r} already exists; choose another folder")
    existing = next(p for p in (out.parent, *out.parent.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out {cfg.out!r} cannot be a folder: {str(existing)!r} is a file")
    state = read_state(work) if work.is_dir() else None
    if cfg.resume and state is None:
        raise ValueError(f"--resume: no interrupted qat of {cfg.out!r} to resume (no checkpoint in {work})")
    if not cfg.resume and work.exists():
        raise ValueError(f"an interrupted qat of {cfg.out!r} exists in {work}; pass --resume to continue it "
                         "or remove that folder")
    return out, work, state


def _data(cfg: QatConfig, meta: RunRecord):
    from edgekit.data import load_split

    run_cfg = meta.config or {}
    data_path = cfg.data or meta.data_path
    if not data_path:
        raise ValueError("the run records no training data; pass --data")
    train = load_split(data_path, run_cfg.get("split", "train"), val_fraction=run_cfg.get("val_fraction", 0.1),
                       seed=run_cfg.get("seed", 0))
    if cfg.limit is not None and cfg.limit < len(train):
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(train), cfg.limit, replace=False))
        train = train.subset(pick, source=f"{cfg.limit} images (seed {cfg.seed}) of {train.source}")
    return train, run_cfg.get("augment", "flip")


def _compile(model: keras.Model, lr: float, total_steps: int, target: str) -> None:
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps), alpha=0.01)
    if target == "distill":  # cross-entropy to the teacher's probabilities; argmax match = agreement
        loss, metrics = "categorical_crossentropy", [keras.metrics.CategoricalAccuracy(name="agreement")]
    else:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss=loss, metrics=metrics)


def _batches(feed, first: int, last: int, teacher: keras.Model | None):
    """Training batches of epochs first..last: (x, label), or (x, teacher probabilities)."""
    ds = feed.epochs(first, last)
    if teacher is None:
        return ds
    import tensorflow as tf

    return ds.map(lambda x, y: (x, tf.cast(teacher(x, training=False), tf.float32)),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def qat(cfg: QatConfig) -> dict:
    """Fine-tune ``cfg.run`` with fake quantization; write ``cfg.out``; return its metadata."""
    import tensorflow as tf

    from edgekit.data import parse_augment
    from edgekit.models.safe_load import load_keras_model
    from edgekit.train.dataset import EpochData
    from edgekit.train.runstate import (EpochCheckpoint, atomic_save_model, load_checkpoint, remove_stale_temps,
                                        trim_history)
    from edgekit.train.strategy import make_strategy

    from .transform import learned_ranges, qat_model, write_back

    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(cfg.strategy)
    meta = read_source(cfg.run)
    out, work, state = _check_out(cfg)
    floating = load_keras_model(Path(cfg.run) / MODEL)
    teacher = floating if cfg.target == "distill" else None  # unchanged until write_back, after fit
    train_data, augment = _data(cfg, meta)
    feed = EpochData(train_data, meta.preprocess, cfg.batch_size, parse_augment(augment), None, cfg.seed)
    t0 = time.perf_counter()
    with strategy.scope():
        # Refuses unsupported layers (UnsupportedLayer) before anything is written.
        model = qat_model(floating) if state is None else load_checkpoint(work, state)
        if state is None:
            _compile(model, cfg.lr, feed.steps * cfg.epochs, cfg.target)
        work.mkdir(parents=True, exist_ok=True)
        start = state["epoch"] if state else 0
        remove_stale_temps(work)
        trim_history(work, start)
        log(f"{len(train_data)} images, {strategy.num_replicas_in_sync} replica(s) ({cfg.strategy}); "
            f"epochs {start + 1}..{cfg.epochs}")
        history: dict[str, list] = {}
        if start < cfg.epochs:
            h = model.fit(_batches(feed, start, cfg.epochs, teacher), epochs=cfg.epochs, initial_epoch=start,
                          steps_per_epoch=feed.steps, shuffle=False, verbose=2 if not sys.stderr.isatty() else 1,
                          callbacks=[keras.callbacks.CSVLogger(str(work / HISTORY), append=True),
                                     EpochCheckpoint(work, "qat", {"config": asdict(cfg)})])
            history = {k: [float(x) for x in v] for k, v in h.history.items()}
    write_back(model, floating)
    result = _metadata(cfg, meta, history, learned_ranges(model), time.perf_counter() - t0, strategy)
    atomic_save_model(floating, work / MODEL)
    write_record(work, result)
    shutil.rmtree(work / CHECKPOINTS, ignore_errors=True)
    os.replace(work, out)  # the run appears complete or not at all
    return result.to_dict()


def _metadata(cfg: QatConfig, meta: RunRecord, history: dict, ranges: dict, wall: float, strategy) -> RunRecord:
    """The source run's record with this fine-tune's history, timings and ``qat`` entry."""
    extra = {k: v for k, v in meta.extra.items() if k not in ("history", "final", "transfer")}
    extra.update({
        "history": history,
        "final": {k: v[-1] for k, v in history.items() if v},
        "wall_seconds_this_invocation": round(wall, 1),
        "replicas": strategy.num_replicas_in_sync,
        "qat": {
            "source_run": os.path.abspath(cfg.run),
            "config": asdict(cfg),
            "target": {"distill": "the source run's probabilities (knowledge distillation)",
                       "labels": "the training labels"}[cfg.target],
            "weights": "int8 symmetric per output channel, batch norm folded with frozen statistics",
            "activations": "int8 asymmetric per tensor, EMA of batch min/max",
            "ranges": ranges,
        },
    })
    return replace(meta, edgekit_version=__version__, extra=extra)
