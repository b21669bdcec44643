"""``--lr auto``: the learning-rate range test (Smith 2017), as fastai's ``lr_find`` runs it.

Leslie N. Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017
(arXiv:1506.01186), section 3.3: train for a short while with a learning rate that grows at
every step and read the usable rates off the loss-vs-rate curve. The details follow fastai's
``Learner.lr_find`` (fastai 2.7, ``fastai/callback/schedule.py``):

- the rate grows exponentially from START_LR to END_LR over SWEEP_STEPS optimizer steps, on
  the training batches, with the run's own optimizer (AdamW) and loss;
- the per-step loss is smoothed by a debiased exponential moving average (beta 0.98);
- the sweep stops once the smoothed loss exceeds DIVERGENCE (4) times its minimum, or is not
  finite;
- before picking, the first tenth of the points (the noisy start) and the last five (the
  divergence) are dropped.

The pick is the rate at the smoothed loss's minimum divided by 10 (fastai 1's ``lr_min``: an
order of magnitude below the rate where the loss is lowest, where it still falls). fastai >= 2.5 suggests
``valley`` instead (half way along the longest stretch over which the smoothed loss keeps
falling, where it falls fastest); both are recorded in edgekit.json's ``lr_find`` with the
whole sweep, and drawn in ``lr_find.png``. min/10 was kept because it trained better: on a
3,000-image Fashion-MNIST subset (MobileNetV2 0.35, 32x32, 15 epochs; 10,000 test images;
benchmarks/results/lr_auto_small.md) valley picked 9.3e-4 (63.6%), min/10 2.3e-3 (72.7%,
and 74.5% with another seed); the default 3e-3 reached 75.7% and 73.0%: equal within the seed
noise, which is why ``auto`` is not the default.

The sweep runs on a copy of the model built from the same seed (run.py reseeds before the
real build), with its own optimizer, so the training that follows starts from exactly the
weights and the fresh optimizer state that ``--lr <picked rate>`` would start from.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from edgekit.tempfiles import atomic_write_text, atomic_write_with

from .config import DEFAULT_LR

START_LR = 1e-6
END_LR = 1.0
SWEEP_STEPS = 100
SMOOTHING = 0.98
DIVERGENCE = 4.0
# The sweep cycles through the training batches. With fewer than SWEEP_STEPS / MAX_PASSES
# batches it would show every image more than MAX_PASSES times and measure how fast the
# network memorises a handful of batches, not the rate at which it learns.
MAX_PASSES = 10
MIN_FALL = 0.01  # a sweep whose smoothed loss never falls 1% below its start has no valley to read
REFERENCE = ("Smith 2017, Cyclical Learning Rates for Training Neural Networks (arXiv:1506.01186); "
             "fastai lr_find (min/10 as fastai 1's lr_min; valley as fastai >= 2.5)")


class PickRule(Enum):
    VALLEY = "valley"  # fastai >= 2.5's default suggestion
    MIN_OVER_10 = "min/10"  # fastai 1's lr_min: the rate at the loss minimum / 10


RULE = PickRule.MIN_OVER_10  # measured against VALLEY: see the module docstring


@dataclass(frozen=True)
class Sweep:
    """One range test: the rate of each step, its raw loss and the smoothed loss."""

    rates: list[float]
    raw_losses: list[float]
    losses: list[float]
    stopped: str  # why the sweep ended


def sweep_rates(steps: int = SWEEP_STEPS, start: float = START_LR, end: float = END_LR) -> np.ndarray:
    """START..END, exponentially spaced: the rate of optimizer step 0..steps-1."""
    return start * (end / start) ** (np.arange(steps) / max(1, steps - 1))


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Debiased exponential moving average (fastai's Recorder ``smooth_loss``)."""
    avg, out = 0.0, []
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def diverged(losses: list[float], factor: float = DIVERGENCE) -> bool:
    """The last smoothed loss is not finite or above ``factor`` times the lowest so far."""
    last = losses[-1]
    return not math.isfinite(last) or (len(losses) > 1 and last > factor * min(losses))


def _trim(rates: list[float], losses: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """fastai drops the first tenth of the steps asked for and the last five points."""
    n = len(losses)
    first, last = SWEEP_STEPS // 10, n - 5
    if last - first < 3:  # too short a sweep to trim: keep all finite points
        first, last = 0, n
    r, l = np.asarray(rates[first:last], float), np.asarray(losses[first:last], float)
    keep = np.isfinite(l)
    return r[keep], l[keep]


def _valley(losses: np.ndarray) -> int | None:
    """Index half way along the longest decreasing subsequence (fastai's ``valley``), or None
    when the loss never falls."""
    n = len(losses)
    longest = [1] * n
    best_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[best_end]:
            best_end = i
    if longest[best_end] < 2:
        return None
    start = best_end - longest[best_end]
    sections = (best_end - start) / 3
    return start + int(sections) + int(sections / 2)


def pick(rates: list[float], losses: list[float], rule: PickRule = RULE) -> float | None:
    """The learning rate that ``rule`` reads off a (smoothed) sweep; None when the loss never
    fell, so there is nothing to read."""
    r, l = _trim(rates, losses)
    if len(l) < 2 or not l.min() < (1 - MIN_FALL) * l[0]:
        return None
    if rule is PickRule.VALLEY:
        i = _valley(l)
        return None if i is None else float(r[i])
    return float(r[int(np.argmin(l))] / 10)


def images_needed(batch_size: int, steps: int = SWEEP_STEPS) -> int:
    return batch_size * math.ceil(steps / MAX_PASSES)


def sweep_epochs(images: int, batch_size: int, steps: int = SWEEP_STEPS) -> int:
    """How many epochs of full batches one sweep of ``steps`` steps goes through."""
    return math.ceil(steps / max(1, images // batch_size))


def check_enough_images(images: int, batch_size: int) -> None:
    """Refuse ``--lr auto`` on a training set too small for one sweep (before anything is
    written): the user asked for a measured rate, and the sweep cannot measure one here."""
    need = images_needed(batch_size)
    if images < need:
        raise ValueError(
            f"--lr auto needs at least {need} training images at --batch-size {batch_size} (its "
            f"{SWEEP_STEPS}-step sweep would show each image more than {MAX_PASSES} times); got {images}: "
            f"give --lr a number (the default is {DEFAULT_LR:g}) or a smaller --batch-size")


def run_sweep(model, batches, compile_with: Callable, steps: int = SWEEP_STEPS,
              start: float = START_LR, end: float = END_LR) -> Sweep:
    """Train ``model`` for up to ``steps`` full batches of ``batches`` (a dataset that repeats
    long enough) while the rate grows from ``start`` to ``end``; ``compile_with(model,
    schedule)`` compiles it with the run's optimizer and loss. The model's weights change."""
    schedule = keras.optimizers.schedules.ExponentialDecay(start, decay_steps=max(1, steps - 1),
                                                           decay_rate=end / start)
    compile_with(model, schedule)
    recorder = _Recorder()
    model.fit(batches, epochs=1, steps_per_epoch=steps, shuffle=False, callbacks=[recorder], verbose=0)
    rates = sweep_rates(steps, start, end)[:len(recorder.raw)]
    stopped = (f"diverged at step {len(recorder.raw)} of {steps}" if recorder.stopped
               else f"all {steps} steps")
    return Sweep([float(r) for r in rates], recorder.raw, recorder.smooth, stopped)


class _Recorder(keras.callbacks.Callback):
    """Each step's loss and the smoothed loss; stops the fit on divergence."""

    def __init__(self):
        super().__init__()
        self.raw: list[float] = []
        self.smooth: list[float] = []
        self.stopped = False
        self._total = 0.0

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports the mean loss of the epoch's batches so far; the batches are all
        # full, so step k's own loss is the difference of the running sums.
        total = float((logs or {}).get("loss", math.nan)) * (batch + 1)
        loss = total - self._total
        self._total = total
        self.raw.append(loss)
        self.smooth = smooth(self.raw)
        if not math.isfinite(loss) or diverged(self.smooth):
            self.stopped = True
            self.model.stop_training = True


def full_batches(dataset, batch_size: int):
    """Only the batches of ``batch_size`` images (each epoch's last one can be short)."""
    return dataset.filter(lambda x, y: tf.shape(x)[0] == batch_size)


def record(sweep: Sweep, batch_size: int, fallback_lr: float) -> dict:
    """What edgekit.json and lr_find.json keep: the sweep, the candidates and the pick."""
    candidates = {rule.value: pick(sweep.rates, sweep.losses, rule) for rule in PickRule}
    chosen = candidates[RULE.value]
    return {
        "lr": chosen if chosen is not None else fallback_lr,
        "rule": RULE.value,
        "fallback": chosen is None,
        "candidates": candidates,
        "start_lr": START_LR, "end_lr": END_LR, "steps": SWEEP_STEPS, "batch_size": batch_size,
        "smoothing": SMOOTHING, "divergence": DIVERGENCE,
        "reference": REFERENCE,
        **{k: _finite_or_none(v) for k, v in asdict(sweep).items()},
    }


def _finite_or_none(value):
    """JSON has no NaN or infinity: a diverged step's loss is written as null."""
    if isinstance(value, list):
        return [v if math.isfinite(v) else None for v in value]
    return value


def describe(rec: dict) -> str:
    """The one line ``edgekit train`` prints about the sweep."""
    others = ", ".join(f"{k} {v:.3g}" for k, v in rec["candidates"].items() if k != rec["rule"] and v)
    if rec["fallback"]:
        return (f"--lr auto: the loss never fell during the sweep ({rec['stopped']}); "
                f"using the default lr {rec['lr']:g}")
    return (f"--lr auto: swept {START_LR:g}..{rec['rates'][-1]:.3g} ({rec['stopped']}); "
            f"picked lr {rec['lr']:.3g} by the {rec['rule']} rule" + (f" ({others})" if others else ""))


def write(rec: dict, json_path: Path, png_path: Path) -> None:
    atomic_write_text(json_path, json.dumps(rec, indent=2))
    atomic_write_with(png_path, lambda tmp: plot(rec, tmp))


def read(json_path: Path) -> dict:
    """The sweep a run recorded (for ``--resume``); a missing or unreadable file is a ValueError."""
    try:
        rec = json.loads(json_path.read_text())
        float(rec["lr"])
        return rec
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--resume with --lr auto: cannot read the rate the run picked from {json_path} "
                         f"({exc}); resume with the --lr the run was started with") from None


def plot(rec: dict, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    nan = lambda values: [math.nan if v is None else v for v in values]  # noqa: E731
    ax.plot(rec["rates"], nan(rec["raw_losses"]), color="0.75", lw=1, label="loss per step")
    ax.plot(rec["rates"], nan(rec["losses"]), color="C0", lw=2, label="smoothed")
    for name, lr in rec["candidates"].items():
        if lr:
            ax.axvline(lr, ls="-" if name == rec["rule"] else ":", color="C3" if name == rec["rule"] else "C2",
                       label=f"{name}: {lr:.3g}" + (" (picked)" if name == rec["rule"] else ""))
    finite = [v for v in rec["losses"] if v is not None and math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.9, min(max(finite), DIVERGENCE * min(finite)) * 1.1)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"learning-rate range test ({rec['stopped']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, format="png", dpi=100)
    plt.close(fig)
