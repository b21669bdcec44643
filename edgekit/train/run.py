"""``edgekit train``: train or fine-tune a zoo model on labelled images.

Defaults are chosen for training from scratch on small images (Fashion-MNIST at 32x32):
- batch-norm momentum 0.99 instead of keras.applications MobileNetV2's 0.999. With 0.999 the
  moving statistics that inference uses trail the weights by ~1000 steps; after a few epochs
  of 400-odd steps they still describe the random initial network, so the model scores
  chance on test data while its training accuracy (batch statistics) looks fine;
- inputs normalised to the network's range ([-1, 1] for MobileNet) by the preprocessing
  spec that also travels with exported files;
- AdamW at a peak learning rate of 3e-3 with cosine decay. Measured on the 15-epoch
  Fashion-MNIST recipe (2-core CPU): lr 2e-3 with flip + padded crop underfit (training
  accuracy 88.2%, test 88.76%); lr 3e-3 with flip only reached 90.75% on the official test
  set, 90.89% on all 60,000 training images (``--val-fraction 0``), and with AdamW weight decay
  0.05 instead of 1e-4 91.07%. Label smoothing 0.1 (``--label-smoothing``) and a one-epoch
  warm-up (``--warmup-epochs``) did not help there and are off by default;
- ``--epochs auto``: as many epochs as give the images about that recipe's optimizer steps,
  early stopping on the validation loss, best weights restored (epochs.py); augmentation
  crop + scale, which is safe where a mirror image is another class (issue 14: on small
  datasets the 15-epoch mirroring recipe lost to LeNet-5 by 20 points;
  benchmarks/results/small_data.md).
- ``--ema`` (off by default): validate, keep and save the weights' moving average
  (averaging.py); measured on the small sets in benchmarks/results/small_data.md.
- ``--mixup`` / ``--cutmix`` (off by default): train on mixed pairs of images (mixing.py).
Determinism: seeds, op determinism and epoch-addressed data make ``--resume`` equal an
uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from edgekit import __version__
from edgekit.data import fit_colour_pca, load_split, parse_augment
from edgekit.data.sources import LabeledImages
from edgekit.messages import stderr
from edgekit.models import count_model, create_model, get_spec
from edgekit.run_record import (CHECKPOINTS, CURVE, HISTORY, LR_FIND_JSON, LR_FIND_PNG, MODEL, RECORD, STATE,
                                TENSORBOARD, RunRecord, is_run, read_record, write_record)
from edgekit.runtime.spec import PreprocessSpec
from edgekit.stopping import kept_weights, stopping_record

from . import lr_find, pretrained
from .averaging import EpochEMA, ema_momentum, ema_record
from .config import DEFAULT_LR, TrainConfig, is_imagenet
from .dataset import EpochData, images_are_grayscale
from .epochs import AUTO, BestWeights, EpochPlan, as_json, auto_batch_size, plan_epochs, restore_best
from .losses import training_loss
from .precise_bn import PreciseBNValidation
from .report import plot_curves
from .runstate import (EpochCheckpoint, atomic_save_model, load_checkpoint, read_state, remove_stale_temps,
                       trim_history)
from .strategy import is_chief, is_multi_worker, make_strategy, shard_by_data
from .transfer import apply_freeze, check_weights, load_pretrained, unfreeze_all


PRECISE_BN_IMAGES = 2048


def log(msg: str) -> None:
    stderr(f"edgekit train: {msg}")


def _load_data(cfg: TrainConfig) -> tuple[LabeledImages, LabeledImages | None]:
    train = load_split(cfg.data, cfg.split, val_fraction=cfg.val_fraction, seed=cfg.seed)
    val = None
    try:
        val = load_split(cfg.data, "val", val_fraction=cfg.val_fraction, seed=cfg.seed) if cfg.val_fraction > 0 else None
    except ValueError:
        val = None
    if cfg.limit is not None and cfg.limit < len(train):
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(train), cfg.limit, replace=False))
        train = train.subset(pick, source=f"{cfg.limit} images (seed {cfg.seed}) of {train.source}")
    for d in (train, val):
        if d is not None and d.skipped:
            log(f"skipped {len(d.skipped)} unreadable image(s) in {d.source}, e.g. {d.skipped[0][0]}: {d.skipped[0][1]}")
    return train, val


def _spec(cfg: TrainConfig, train: LabeledImages, base: RunRecord | None) -> PreprocessSpec:
    if base is not None:  # fine-tuning an edgekit run keeps its preprocessing unless overridden
        spec = base.preprocess
        size = cfg.input_size or spec.size[0]
        return PreprocessSpec((size, size), cfg.channels or spec.channels, spec.mean, spec.std, spec.resize)
    zoo = get_spec(cfg.arch)
    default = zoo.default_input_shape()
    size = cfg.input_size or default[0]
    channels = cfg.channels or (1 if images_are_grayscale(train) and not cfg.weights else 3)
    return PreprocessSpec((size, size), channels, (zoo.mean,), (zoo.std,))


def _build(cfg: TrainConfig, spec: PreprocessSpec, num_classes: int) -> tuple[keras.Model, dict]:
    info: dict = {}
    model = create_model(cfg.arch, (*spec.size, spec.channels), num_classes,
                         bn_momentum=cfg.bn_momentum, dropout=cfg.dropout,
                         **{k: v for k, v in (("alpha", cfg.alpha), ("width", cfg.width), ("depth", cfg.depth))
                            if v is not None})
    if is_imagenet(cfg.weights):
        info = pretrained.load_imagenet(model, cfg.arch, cfg.alpha, spec.size[0], log)
        log(f"loaded {info['layers_loaded']} layers of ImageNet weights; new: {', '.join(info['layers_new']) or 'none'}")
    elif cfg.weights:
        copied, skipped = load_pretrained(model, cfg.weights)
        info = {"weights": cfg.weights, "layers_loaded": copied, "layers_new": skipped}
        log(f"loaded {copied} layers from {cfg.weights}; new: {', '.join(skipped) or 'none'}")
    return model, info


def _schedule(lr: float, total_steps: int, warmup_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from lr/100 to lr (Goyal et al. 2017), then cosine decay to lr/100."""
    warmup = min(max(0, warmup_steps), total_steps // 3)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps), alpha=0.01)
    return keras.optimizers.schedules.CosineDecay(lr / 100, decay_steps=max(1, total_steps - warmup),
                                                  alpha=0.01, warmup_target=lr, warmup_steps=warmup)


def _compile(model: keras.Model, lr: float, weight_decay: float, total_steps: int,
             label_smoothing: float = 0.0, warmup_steps: int = 0, ema: float | None = None,
             mixed: bool = False) -> None:
    _compile_with(model, _schedule(lr, total_steps, warmup_steps), weight_decay, label_smoothing, ema, mixed)


def _compile_with(model: keras.Model, schedule, weight_decay: float, label_smoothing: float,
                  ema: float | None = None, mixed: bool = False) -> None:
    """AdamW with ``schedule``; ``ema``: the momentum of the weight average it keeps (averaging.py);
    ``mixed``: the batches' labels are mixed class probabilities (mixing.py), not integers."""
    averaging = {"use_ema": True, "ema_momentum": ema} if ema is not None else {}
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay, **averaging),
                  loss=training_loss(label_smoothing, mixed), metrics=["accuracy"])


class _Throughput(keras.callbacks.Callback):
    def __init__(self, images_per_epoch: int):
        super().__init__()
        self.n, self.times = images_per_epoch, []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        dt = time.perf_counter() - self.t0
        self.times.append(dt)
        if logs is not None:
            logs["epoch_seconds"] = dt
            logs["images_per_second"] = self.n / dt


def _callbacks(cfg: TrainConfig, run_dir: Path, work_dir: Path, phase: str, n_images: int, chief: bool,
               precise_bn=None, best: BestWeights | None = None, extra_state: dict | None = None,
               ema: EpochEMA | None = None) -> list:
    # The average first: what the later callbacks validate, keep and save is the average.
    cbs: list = ([ema] if ema is not None else []) + [_Throughput(n_images)]
    if precise_bn is not None:  # before the logger, early stopping and the checkpoint
        cbs.append(precise_bn)
    if chief:
        cbs.append(keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=True))
        if cfg.tensorboard:
            cbs.append(keras.callbacks.TensorBoard(str(run_dir / TENSORBOARD), write_graph=False,
                                                   profile_batch=0))
    if best is not None:  # before the checkpoint, which records its state
        cbs.append(best)
    # Every worker saves (saving may read variables collectively); only the chief's copy counts.
    cbs.append(EpochCheckpoint(work_dir, phase, {"config": cfg.to_dict(), **(extra_state or {})},
                               {"early_stopping": best.state} if best is not None else None))
    return cbs


def _prepare_run_dir(cfg: TrainConfig, chief: bool) -> tuple[Path, dict | None]:
    """The run directory and, with --resume, its checkpoint state. Other workers than the
    chief read it (to resume from the same checkpoint) but never create or write it. A new
    run's directory is made later, once its input is known to be usable (_make_run_dir)."""
    run_dir = Path(cfg.out)
    state = read_state(run_dir) if run_dir.exists() else None
    if cfg.resume:
        if state is None and is_run(run_dir):
            raise ValueError(f"--resume: {run_dir} holds a finished run ({MODEL}, no checkpoint); nothing to resume")
        if state is None:
            raise ValueError(f"--resume: {run_dir} holds no checkpoint to resume from")
        if chief:
            _tidy(run_dir, state["epoch"])
        return run_dir, state
    if state is not None or (run_dir / MODEL).exists():
        raise ValueError(f"--out {str(run_dir)!r} already holds a run; use --resume to continue it or another --out")
    return run_dir, None


def _check_can_make(run_dir: Path) -> None:
    """RUN_DIR is a folder or can be made: the nearest of it and its parents that exists is a folder."""
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--out {str(run_dir)!r} cannot be a folder: {str(existing)!r} is a file")


def _make_run_dir(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    _tidy(run_dir, 0)  # what a run killed before its first checkpoint left


def _tidy(run_dir: Path, epochs_done: int) -> None:
    """Before (re)starting in RUN_DIR: drop a killed run's temporary files and its history rows
    of epochs that are about to be trained again."""
    stale = remove_stale_temps(run_dir)
    if stale:
        log(f"removed {len(stale)} temporary file(s) left by the interrupted run, e.g. {stale[0].name}")
    trim_history(run_dir, epochs_done)


def _finish(run_dir: Path) -> None:
    """The run is complete once state.json is gone (see runstate); then the checkpoints go."""
    (run_dir / CHECKPOINTS / STATE).unlink(missing_ok=True)
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)


def train(cfg: TrainConfig) -> dict:
    """Train as configured; write RUN_DIR; return the run record's JSON object (edgekit.json)."""
    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    if cfg.mixed_precision:
        policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
        keras.mixed_precision.set_global_policy(policy)
        log(f"mixed precision: {policy}")
    # Before any other TensorFlow work: a multi-worker strategy configures the runtime.
    strategy = make_strategy(cfg.strategy)
    chief = is_chief(strategy)
    # Bad input (ARCH, --augment, --weights, --out, the data) is refused before RUN_DIR is made.
    get_spec(cfg.arch)
    augment = parse_augment(cfg.augment)
    check_weights(cfg.weights)
    if is_imagenet(cfg.weights):
        pretrained.check(cfg.arch, cfg.alpha, cfg.input_size or get_spec(cfg.arch).default_input_shape()[0],
                         cfg.channels)
    _check_can_make(Path(cfg.out))
    run_dir, state = _prepare_run_dir(cfg, chief)
    if state is not None and "planned_epochs" not in state:
        state = _planned_by_older_edgekit(state, cfg, run_dir)
    if state is not None and state["epoch"] == _phases_of(state, cfg)[-1][2] and is_run(run_dir):
        # Killed after writing model.keras and edgekit.json, before curve.png or the clean-up.
        log(f"{run_dir} already holds the final files of all {state['epoch']} epochs; removing its checkpoints")
        if chief:
            _merge_history_plot(run_dir)
            _finish(run_dir)
        return read_record(run_dir).to_dict()
    base = read_record(cfg.weights) if cfg.weights and not is_imagenet(cfg.weights) and is_run(cfg.weights) else None
    if base is not None and base.architecture != cfg.arch:
        raise ValueError(f"--weights run is a {base.architecture!r}; ARCH got {cfg.arch!r}")
    if base is not None and base.preprocess is None:
        raise ValueError(f"--weights {cfg.weights!r}: its {RECORD} records no preprocessing")
    train_data, val_data = _load_data(cfg)
    cfg, batch_record = _batch_size(cfg, len(train_data), state)
    if cfg.lr_auto and state is None:
        lr_find.check_enough_images(len(train_data), cfg.batch_size)
    if chief and state is None:
        _make_run_dir(run_dir)
    spec = _spec(cfg, train_data, base)
    pca = fit_colour_pca(train_data, spec, seed=cfg.seed) if augment.pca else None
    log(f"{len(train_data)} training images, {0 if val_data is None else len(val_data)} validation, "
        f"{len(train_data.class_names)} classes; input {spec.size[0]}x{spec.size[1]}x{spec.channels}; "
        f"{strategy.num_replicas_in_sync} replica(s) ({cfg.strategy}); augment: {','.join(augment.enabled) or 'none'}"
        + (f"; mixing: {cfg.mix.describe()}" if cfg.mix.enabled else ""))
    plan = plan_epochs(cfg.epochs, cfg.early_stopping, len(train_data), cfg.batch_size, val_data is not None,
                       cfg.restore)
    if state is not None and state["planned_epochs"] != plan.epochs:
        raise ValueError(f"--resume: the checkpoint planned {state['planned_epochs']} epochs, this data and "
                         f"config give {plan.epochs}; resume with the data and options of the interrupted run")
    log(f"batch size: {cfg.batch_size} ({batch_record['reason']})")
    log(f"epochs: {plan.epochs} ({plan.reason})")
    feed = EpochData(train_data, spec, cfg.batch_size, augment, pca, cfg.seed, cfg.mix)
    val_ds = EpochData(val_data, spec, cfg.batch_size).once() if val_data is not None else None
    # Precise BN (see precise_bn.py) from PRECISE_BN_IMAGES training images as training sees
    # them (augmented, mixed); validation then runs in the callback with those statistics.
    # Under a strategy every worker does both on its own copy of the (synchronised) model.
    precise_bn = PreciseBNValidation(feed.calibration(PRECISE_BN_IMAGES), val_ds)
    # Workers other than the chief checkpoint into a private temporary directory.
    work_dir = run_dir if chief else Path(tempfile.mkdtemp(prefix="edgekit-worker-"))
    t_start = time.perf_counter()
    try:
        with strategy.scope():
            cfg, lr_record = _auto_lr(cfg, strategy, run_dir, state, spec, train_data, feed) if cfg.lr_auto else (cfg, None)
            model, history, transfer_info, stopping = _run_phases(cfg, plan, strategy, run_dir, work_dir, state,
                                                                  spec, train_data, feed, precise_bn)
    finally:
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)
    wall = time.perf_counter() - t_start
    record = _record(cfg, model, spec, train_data, val_data, history, wall, transfer_info, strategy)
    if lr_record is not None:
        record.extra["lr_find"] = lr_record
    record.extra["epochs"] = {**plan.to_dict(), "early_stopping": stopping_record(stopping)}
    record.extra["batch_size"] = batch_record
    planned = _phases(plan.epochs, cfg.fine_tune_epochs, None)
    record.extra["ema"] = ema_record(cfg.ema, {phase: feed.steps * (last - first) for phase, first, last in planned})
    if chief:
        atomic_save_model(model, run_dir / MODEL)
        write_record(run_dir, record)
        _merge_history_plot(run_dir)
        _finish(run_dir)
    return record.to_dict()


def _batch_size(cfg: TrainConfig, images: int, state: dict | None) -> tuple[TrainConfig, dict]:
    """``cfg`` with ``--batch-size auto`` resolved, and the record of it: a resumed checkpoint's
    size (a run goes on as it was trained, including one started before auto was the default),
    else the size for ``images`` training images (epochs.py). ValueError when a number given
    differs from the checkpoint's."""
    requested = cfg.batch_size
    saved = (state or {}).get("config", {}).get("batch_size")
    saved = saved if isinstance(saved, int) and not isinstance(saved, bool) else None
    if requested is AUTO and saved is not None:
        return replace(cfg, batch_size=saved), {"requested": as_json(requested), "batch_size": saved,
                                                "reason": f"the resumed checkpoint's batch size ({saved})"}
    if requested is AUTO:
        batch, why = auto_batch_size(images)
        cfg = replace(cfg, batch_size=batch)
    else:
        why = f"--batch-size {requested} as given"
    if saved is not None and saved != cfg.batch_size:
        raise ValueError(f"--resume: the checkpoint trained at batch size {saved}, not {cfg.batch_size}; "
                         f"resume with --batch-size {saved} or auto")
    return cfg, {"requested": as_json(requested), "batch_size": cfg.batch_size, "reason": why}


def _auto_lr(cfg: TrainConfig, strategy, run_dir: Path, state: dict | None, spec: PreprocessSpec,
             train_data: LabeledImages, feed: EpochData) -> tuple[TrainConfig, dict]:
    """--lr auto: the rate the run picked before it was interrupted, or a range test
    (lr_find.py) on a copy of the model with the run's freezing, optimizer and loss. The seeds
    are then reset, so the real model is built and trained exactly as with --lr RATE."""
    if state is not None:
        rec = lr_find.read(run_dir / LR_FIND_JSON)
        log(f"--lr auto: resuming with lr {rec['lr']:.3g}, picked when the run started")
        return replace(cfg, lr=float(rec["lr"])), rec
    model, _ = _build(cfg, spec, len(train_data.class_names))
    apply_freeze(model, cfg.freeze)
    batches = lr_find.full_batches(feed.epochs(0, lr_find.sweep_epochs(len(train_data), cfg.batch_size)),
                                   cfg.batch_size)
    sweep = lr_find.run_sweep(model, shard_by_data(batches) if is_multi_worker(strategy) else batches,
                              lambda m, schedule: _compile_with(m, schedule, cfg.weight_decay, cfg.label_smoothing,
                                                                mixed=feed.mixed))
    rec = lr_find.record(sweep, cfg.batch_size, DEFAULT_LR)
    if is_chief(strategy):
        lr_find.write(rec, run_dir / LR_FIND_JSON, run_dir / LR_FIND_PNG)
    log(lr_find.describe(rec) + f"; plot: {run_dir / LR_FIND_PNG}")
    keras.utils.set_random_seed(cfg.seed)
    return replace(cfg, lr=float(rec["lr"])), rec


def _phases(planned: int, fine_tune_epochs: int, stopped_at: int | None) -> list[tuple[str, int, int]]:
    """(phase, first epoch, last epoch + 1) of each phase, in order; a training phase that
    stopped early at epoch ``stopped_at`` ends there and the fine-tune phase follows it."""
    end = stopped_at or planned
    phases = [("train", 0, end)]
    if fine_tune_epochs:
        phases.append(("fine-tune", end, end + fine_tune_epochs))
    return phases


def _planned_by_older_edgekit(state: dict, cfg: TrainConfig, run_dir: Path) -> dict:
    """A checkpoint written before ``--epochs auto`` has no planned_epochs: that edgekit always
    trained a fixed count, which the resuming command must give again as ``--epochs N``."""
    if cfg.epochs is AUTO:
        raise ValueError(f"--resume: {run_dir}'s checkpoint was written by an older edgekit that trained a fixed "
                         f"number of epochs (it reached epoch {state['epoch']}); resume with --epochs N, N as in "
                         "the interrupted command")
    if state.get("phase", "train") == "train" and cfg.epochs < state["epoch"]:
        raise ValueError(f"--resume: --epochs got {cfg.epochs}; the checkpoint already holds epoch {state['epoch']}")
    return {**state, "planned_epochs": cfg.epochs}


def _phases_of(state: dict, cfg: TrainConfig) -> list[tuple[str, int, int]]:
    return _phases(state["planned_epochs"], cfg.fine_tune_epochs, (state.get("early_stopping") or {}).get("stopped_at"))


def _resumed_model(run_dir: Path, state: dict, train_done: bool) -> keras.Model:
    """The checkpoint's model; once the training phase is over, with its best weights restored."""
    model = load_checkpoint(run_dir, state)
    if train_done and state["phase"] == "train":
        restore_best(model, run_dir, state.get("early_stopping"))
        kept = kept_weights(state.get("early_stopping"))
        if kept:
            log(kept)
    return model


def _run_phases(cfg: TrainConfig, plan: EpochPlan, strategy, run_dir: Path, work_dir: Path, state: dict | None,
                spec: PreprocessSpec, train_data: LabeledImages, feed: EpochData, precise_bn,
                ) -> tuple[keras.Model, dict[str, list], dict, dict | None]:
    """Build or resume the model and ``fit`` each phase not finished yet (inside the
    strategy's scope); return the model, the history of this invocation, transfer info and
    the early-stopping record (None: off)."""
    saved_stop = (state or {}).get("early_stopping")
    phases = _phases(plan.epochs, cfg.fine_tune_epochs, (saved_stop or {}).get("stopped_at"))
    start = state["epoch"] if state else 0
    history: dict[str, list] = {}
    transfer_info: dict = {}
    model = None
    stopping = saved_stop
    i = 0
    while i < len(phases):
        phase, first, last = phases[i]
        i += 1
        if start >= last:
            continue
        if state is not None and model is None and state["phase"] == phase and start > first:
            model = load_checkpoint(run_dir, state)
            log(f"resuming {phase} at epoch {start + 1} of {last}")
        else:
            if state is not None and model is None:
                model = _resumed_model(run_dir, state, train_done=True)
            elif model is None:
                model, transfer_info = _build(cfg, spec, len(train_data.class_names))
            _enter_phase(model, cfg, phase, feed.steps * (last - first), feed.steps)
        best = None
        if phase == "train" and plan.patience:
            best = BestWeights(work_dir, plan.patience, saved_stop if state and state["phase"] == "train" else None,
                               plan.watch_from, cfg.restore, lambda: precise_bn.correct)
        begin = max(first, start)
        data = feed.epochs(begin, last)
        extra = {"planned_epochs": plan.epochs, **({"early_stopping": stopping} if phase != "train" else {})}
        h = model.fit(shard_by_data(data) if is_multi_worker(strategy) else data,
                      epochs=last, initial_epoch=begin, steps_per_epoch=feed.steps, shuffle=False,
                      callbacks=_callbacks(cfg, run_dir, work_dir, phase, len(train_data), is_chief(strategy),
                                           precise_bn, best, extra,
                                           EpochEMA(in_model=begin > first) if cfg.ema is not None else None),
                      verbose=2 if not sys.stderr.isatty() else 1)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(x) for x in v)
        if best is not None:
            stopping = _end_of_training(model, best, run_dir, work_dir)
            # A fine-tune phase starts where training stopped.
            phases = _phases(plan.epochs, cfg.fine_tune_epochs, best.stopped_at)
    if model is None:  # every epoch was trained; the final files were not (all) written
        if state is None or start != phases[-1][2]:
            raise ValueError(f"{run_dir} has trained {start} epochs, more than the {phases[-1][2]} asked for; "
                             "nothing to resume")
        model = _resumed_model(run_dir, state, train_done=True)
        log(f"all {start} epochs were trained before the interruption; writing the final files")
    return model, history, transfer_info, stopping


def _end_of_training(model: keras.Model, best: BestWeights, run_dir: Path, work_dir: Path) -> dict:
    """Say whether training stopped early and which epoch's weights it keeps, and put the best
    epoch's weights back where the rule says so; return the early-stopping state."""
    if best.stopped_at is not None:
        log(f"stopped early after epoch {best.stopped_at}: no lower smoothed validation loss in {best.patience} "
            "epochs, the loss rising" + (f" and epoch {best.best_epoch}'s weights significantly better"
                                         if best.differ else ""))
    # A worker resumed after the best epoch finds its weights in the chief's run folder.
    record = best.state()
    restore_best(model, work_dir if best.file_in(work_dir) else run_dir, record)
    kept = kept_weights(record)
    if kept:
        log(kept)
    return record


def _enter_phase(model: keras.Model, cfg: TrainConfig, phase: str, steps: int, epoch_steps: int) -> None:
    if phase == "train":
        frozen = apply_freeze(model, cfg.freeze)
        if frozen:
            log(f"froze {frozen} layers with weights ({cfg.freeze.mode.value})")
        _compile(model, cfg.lr, cfg.weight_decay, steps, cfg.label_smoothing,
                 round(cfg.warmup_epochs * epoch_steps), _ema(cfg, phase, steps), cfg.mix.enabled)
    else:
        unfreeze_all(model)
        log(f"fine-tuning all layers at lr {cfg.lr * cfg.fine_tune_lr_factor:g}")
        _compile(model, cfg.lr * cfg.fine_tune_lr_factor, cfg.weight_decay, steps, cfg.label_smoothing,
                 round(cfg.warmup_epochs * epoch_steps), _ema(cfg, phase, steps), cfg.mix.enabled)


def _ema(cfg: TrainConfig, phase: str, steps: int) -> float | None:
    momentum = ema_momentum(cfg.ema, steps)
    if momentum is not None:
        log(f"{phase}: validating and keeping the weights' moving average, momentum {momentum:.5f} "
            f"(time constant {1 / (1 - momentum):.0f} of {steps} steps)")
    return momentum


def _merge_history_plot(run_dir: Path) -> None:
    try:
        plot_curves(run_dir / HISTORY, run_dir / CURVE)
    except (OSError, ValueError) as exc:
        log(f"could not draw {CURVE}: {exc}")


def _record(cfg, model, spec, train_data, val_data, history, wall, transfer_info, strategy) -> RunRecord:
    counted = count_model(model)
    epochs_run = len(history.get("loss", []))
    ips = history.get("images_per_second", [])
    return RunRecord(
        edgekit_version=__version__,
        architecture=cfg.arch,
        params=counted.params,
        macs=counted.macs,
        input_shape=(*spec.size, spec.channels),
        preprocess=spec,
        class_names=tuple(train_data.class_names),
        data={"path": os.path.abspath(cfg.data), "split": cfg.split, "images": len(train_data),
              "validation_images": 0 if val_data is None else len(val_data),
              "fingerprint": train_data.fingerprint(), "source": train_data.source,
              "skipped": len(train_data.skipped)},
        config=cfg.to_dict(),
        extra={
            "transfer": transfer_info,
            "history": history,
            "final": {k: v[-1] for k, v in history.items() if v},
            "epochs_run_this_invocation": epochs_run,
            "wall_seconds_this_invocation": round(wall, 1),
            "images_per_second_median": float(np.median(ips)) if ips else None,
            "replicas": strategy.num_replicas_in_sync,
            "devices": [d.name for d in tf.config.list_logical_devices()],
            "mixed_precision": keras.mixed_precision.global_policy().name,
        },
    )
