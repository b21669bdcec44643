"""How long a run trains: ``--epochs auto`` (the default) or a fixed count, and early stopping.

Auto picks the epoch count from the number of training images so that a run gets about
``TARGET_STEPS`` optimizer steps: twice the 6,330 of the recipe the defaults were first tuned
with (Fashion-MNIST: 54,000 images x 15 epochs / batch 128, mirror flips), because the default
augmentation that replaced the flips (crops and scale, safe for digits and text) regularises
more and needs longer: on Fashion-MNIST it reached 89.67% on the test set after those 15
epochs, still improving (training accuracy 89.1%), and 91%+ after 30. A small set needs many
more epochs than a large one for the same steps (3,600 images at batch 128: 29 steps an epoch). The count
is capped at ``MAX_EPOCHS`` (on small data the rest is done by early stopping, not by more
passes) and floored at ``MIN_EPOCHS`` (a huge set still sees each image a few times).

Early stopping (Prechelt 1998, "Early stopping - but when?") watches the validation loss
measured with precise BN statistics; the best epoch's weights are written next to the epoch
checkpoints, named in state.json, and restored at the end of the phase, so ``--resume`` after
a kill gives the weights an uninterrupted run gives. An auto run watches only the second half
of its epochs: while the cosine schedule's learning rate is high the validation loss jumps
from epoch to epoch (on a 3,000-image MNIST sample it dipped to 0.26 once, between values of
0.5-0.6, at epoch 37 of 100), and stopping there kept those weights (92.45% test accuracy)
instead of annealed ones (benchmarks/results/small_data.md). And it watches the loss smoothed
over epochs (each epoch's value averaged with the smoothed one before it): on a plateau the raw
loss wobbles by a few percent, and on 3,000 Fashion-MNIST images a run that was still
underfitting (training accuracy 80%) stopped at epoch 74 of 100 on such a wobble. Once the
patience has run out it stops only while the smoothed loss is rising (above its value 5 epochs
before; ``BestWeights``), so that a loss coming down again as the schedule anneals is not cut
short. And under ``--restore significant`` (the default) the lowest-loss epoch's weights are
kept, and the run stops, only where they are significantly better than the current ones on the
validation images (McNemar's test on the images one gets right and the other wrong): on a few
hundred validation images the loss keeps rising with the model's confidence after its minimum
while the annealed weights still gain on the test set, and the kept and last epochs differ by
1-3 images. ``--restore best`` is classic early stopping (always the lowest-loss epoch's
weights). An explicit ``--epochs N`` trains exactly N epochs (early stopping only with
``--early-stopping P``).

``--batch-size auto`` (the default) is the largest of :data:`BATCH_SIZES` whose ``MAX_EPOCHS``
epochs still reach ``TARGET_STEPS``, else the smallest: 128 for Fashion-MNIST (54,000 images, as
the recipe was tuned), 16 for a few thousand images, where the epoch cap otherwise leaves a run
a fraction of the steps (2,700 images at batch 128: 2,200 steps in 100 epochs). Measured with
the rest of the defaults (benchmarks/results/small_data.md): on a 3,000-image MNIST sample batch
32 reached 97.95% on the test images against 96.15% at batch 128. Batch 16 joined the list
when sklearn's 1,258 digits were left 3,600 steps at batch 32 (97.96%, mean of three training
seeds): at batch 16 (7,100 steps) MobileNetV2 0.35 reached 98.52%. On the two 3,000-image sets
batch 16 reaches the target in 75 epochs, and MobileNetV2 scored 97.80% and 84.82% there against
97.95% and 85.44% at batch 32 (one seed each: a wash), while the best LeNet-5 recipe gained 0.6-0.9 pp
on each set from the smaller batch.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import keras
import numpy as np

from edgekit.run_record import CHECKPOINTS
from edgekit.stopping import PER_IMAGE, RESTORE_RULES

from .runstate import atomic_save_weights, best_weights_name



class Auto(Enum):
    """An option that edgekit picks from the data: ``--epochs auto`` (here), ``--lr auto`` (lr_find.py)."""

    AUTO = "auto"


AUTO = Auto.AUTO
TARGET_STEPS = 12600  # Fashion-MNIST: 54,000 images x 30 epochs / batch 128 (see above)
MIN_EPOCHS = 10
MAX_EPOCHS = 100
BATCH_SIZES = (128, 64, 32, 16)  # --batch-size auto picks among these (see above)
MONITOR = "val_loss"
SMOOTHING = 0.5  # weight of the previous smoothed value
STRIP = 5  # epochs over which the smoothed loss must have risen before a stop (Prechelt's strip)
CHI2_5PCT = 3.841  # chi-square, 1 degree of freedom, 5% level: McNemar's test of the best epoch against the current


def as_json(value):
    """An option's value as edgekit.json records it: ``"auto"`` for Auto.AUTO, else the value."""
    return value.value if isinstance(value, Auto) else value


def parse_auto_count(value: int | str | Auto, option: str) -> int | Auto:
    """``"auto"`` or an integer >= 1 (as int or text) for ``option``; ValueError naming it otherwise."""
    count = 0
    if value is AUTO:
        return AUTO
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO.value:
            return AUTO
        count = int(text) if text.isdigit() else 0
    elif isinstance(value, int) and not isinstance(value, bool):
        count = value
    if count < 1:
        raise ValueError(f"{option} got {value!r}; expected auto or an integer >= 1")
    return count


def parse_epochs(value: int | str | Auto) -> int | Auto:
    """``--epochs``: ``"auto"`` or an integer >= 1."""
    return parse_auto_count(value, "--epochs")


def parse_batch_size(value: int | str | Auto) -> int | Auto:
    """``--batch-size``: ``"auto"`` or an integer >= 1."""
    return parse_auto_count(value, "--batch-size")


def auto_batch_size(images: int) -> tuple[int, str]:
    """The batch size of ``--batch-size auto`` for ``images`` training images, and why."""
    if images < 1:
        raise ValueError(f"auto_batch_size got {images} images; expected >= 1")
    for batch in BATCH_SIZES:
        if math.ceil(images / batch) * MAX_EPOCHS >= TARGET_STEPS:
            return batch, (f"{images} images: {MAX_EPOCHS} epochs at batch {batch} reach the {TARGET_STEPS} steps "
                           "of the default recipe")
    batch = BATCH_SIZES[-1]
    return batch, (f"{images} images: the smallest automatic batch, {batch}, for the most steps in {MAX_EPOCHS} "
                   f"epochs ({math.ceil(images / batch) * MAX_EPOCHS} of the recipe's {TARGET_STEPS})")


def auto_epochs(images: int, batch_size: int) -> tuple[int, str]:
    """The epoch count that gives ``images`` about TARGET_STEPS optimizer steps, clamped to
    [MIN_EPOCHS, MAX_EPOCHS], and a sentence that says why."""
    if images < 1 or batch_size < 1:
        raise ValueError(f"auto_epochs got {images} images at batch size {batch_size}; expected both >= 1")
    steps = math.ceil(images / batch_size)
    want = math.ceil(TARGET_STEPS / steps)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, want))
    why = (f"{images} images at batch {batch_size} = {steps} steps per epoch; "
           f"{want} epochs reach the {TARGET_STEPS} steps of the default recipe")
    if epochs != want:
        why += f", {'capped at' if epochs < want else 'raised to'} {epochs}"
    return epochs, why


def auto_patience(epochs: int) -> int:
    """Early-stopping patience for an auto run: a fifth of it, at least 5 epochs; the loss is
    noisy while the learning rate is high, and a small validation set adds noise of its own."""
    return max(5, epochs // 5)


@dataclass(frozen=True)
class EpochPlan:
    """What the run decided: epochs of the training phase, early-stopping patience (None: off)."""

    requested: int | Auto
    epochs: int
    patience: int | None
    reason: str
    watch_from: int = 0  # epochs (counted from 1) after which early stopping starts watching

    def to_dict(self) -> dict:
        return {**asdict(self), "requested": as_json(self.requested), "monitor": MONITOR if self.patience else None}


def plan_epochs(requested: int | Auto, early_stopping: int, images: int, batch_size: int,
                has_val: bool, restore: str = RESTORE_RULES[0]) -> EpochPlan:
    """The EpochPlan of a run with ``images`` training images (``requested``: AUTO or a count;
    ``restore``: one of RESTORE_RULES)."""
    if requested is not AUTO:
        patience = early_stopping if early_stopping and has_val else None
        reason = f"--epochs {requested} as given"
        if early_stopping and not has_val:
            reason += "; --early-stopping ignored: no validation images"
        elif patience:
            reason += f"; early stopping on the smoothed {MONITOR} with patience {patience}: {stopping_rule(patience, restore)}"
        return EpochPlan(requested, int(requested), patience, reason, 0)
    epochs, why = auto_epochs(images, batch_size)
    if not has_val:
        return EpochPlan(requested, epochs, None,
                         f"{why}; no validation images (--val-fraction 0 and no val split), "
                         f"so all {epochs} epochs run with no early stopping and the last weights are kept")
    patience = early_stopping or auto_patience(epochs)
    watch_from = epochs // 2
    return EpochPlan(requested, epochs, patience,
                     f"{why}; early stopping on the smoothed {MONITOR} from epoch {watch_from + 1} with patience {patience}: "
                     f"{stopping_rule(patience, restore)}", watch_from)


def stopping_rule(patience: int, restore: str) -> str:
    """What a run with early stopping does, in words (the plan's reason)."""
    rising = f"it stops only while the loss rises over {strip_length(patience)} epochs"
    if restore == "best":
        return f"{rising}, and keeps the weights of the epoch with the lowest loss"
    return (f"{rising} and the lowest-loss epoch's weights are significantly better on the validation images "
            "(McNemar's test), and keeps those only then, else the last epoch's")


def strip_length(patience: int) -> int:
    """Epochs over which the smoothed loss must have risen for a stop: STRIP, or the patience
    when shorter (then the strip reaches back to the best epoch, and the rule is patience alone)."""
    return max(1, min(STRIP, patience))


def mcnemar(best: np.ndarray, current: np.ndarray) -> tuple[bool, int, int]:
    """Whether the model that got ``best`` right (one bool per validation image) is
    significantly better than the one that got ``current`` right: McNemar's test with
    continuity correction at the 5% level on b (images only the best got right) and c (only
    the current); returns (significant, b, c). Paired on the same images, so a difference of a
    few images on a small validation set is not taken for an improvement."""
    best, current = np.asarray(best, bool), np.asarray(current, bool)
    if best.shape != current.shape:
        raise ValueError(f"mcnemar got {best.shape} and {current.shape} results; expected one per validation image each")
    b, c = int((best & ~current).sum()), int((~best & current).sum())
    return b - c > 1 and (b - c - 1) ** 2 > CHI2_5PCT * (b + c), b, c


def _pack(correct: np.ndarray | None) -> dict | None:
    """Per-image results as state.json keeps them: the count and the bits, base64."""
    if correct is None:
        return None
    return {"n": int(correct.size), "bits": base64.b64encode(np.packbits(correct)).decode("ascii")}


def _unpack(packed: dict | None) -> np.ndarray | None:
    if not packed:
        return None
    bits = np.frombuffer(base64.b64decode(packed["bits"]), np.uint8)
    return np.unpackbits(bits)[: packed["n"]].astype(bool)


class BestWeights(keras.callbacks.Callback):
    """Early stopping on the validation loss that keeps the best epoch's weights on disk.

    A run stops once ``patience`` epochs have passed without a new lowest smoothed loss *and*
    the smoothed loss is higher than a strip of ``strip_length(patience)`` epochs before
    (Prechelt's UP criterion): a loss that is coming down again, as it does while the cosine
    schedule anneals, is not stopped on. Of the 14 MobileNetV2 runs on the small sets that
    patience alone stopped (benchmarks/results/small_data.md), eight (all five on sklearn's
    digits, three on a 3,000-image MNIST sample) ended while their loss was falling, keeping
    weights 15-20 epochs older than the annealed ones; the six whose loss rose to the stop
    would stop at the same epoch (five) or 6 epochs later (one).

    Under rule "significant" (``--restore``, the default) it also needs the best epoch's
    weights to be significantly better than the current ones on the validation images
    (``mcnemar`` on ``correct()``, the current epoch's per-image results): only then does it
    stop, and at the end of the phase it restores them only then. On 300 validation images the
    MobileNetV2 runs on MNIST-5k stopped 15-35 epochs before the end with the lowest-loss and
    current epochs 1-3 images apart, and the weights trained to the end scored higher on the
    test set (98.00% against 97.65% for seed 1). Without ``correct`` (no per-image results) or
    under rule "best" the loss alone decides, and the lowest-loss epoch's weights are restored.

    Runs after precise BN and validation, before the epoch checkpoint, which records
    ``state()`` in state.json: a resumed run continues with the same best value, wait count,
    recent losses, per-image results and weights file. ``restore_best`` puts the best weights
    back at the end of the phase where ``state()["restore"]`` says so."""

    def __init__(self, run_dir: Path, patience: int, saved: dict | None = None, watch_from: int = 0,
                 rule: str = RESTORE_RULES[0], correct: Callable[[], np.ndarray | None] | None = None):
        super().__init__()
        if rule not in RESTORE_RULES:
            raise ValueError(f"--restore got {rule!r}; expected one of {', '.join(RESTORE_RULES)}")
        self.dir = run_dir / CHECKPOINTS
        self.patience, self.watch_from, self.rule = patience, watch_from, rule
        self.correct = correct if rule == "significant" else None
        saved = saved or {}
        self.best = float(saved.get("best", math.inf))
        self.best_epoch = saved.get("best_epoch")
        self.file = saved.get("file")
        self.wait = int(saved.get("wait", 0))
        self.stopped_at = saved.get("stopped_at")
        self.strip = strip_length(patience)
        # The last strip + 1 smoothed losses (a state.json from before "recent" has "smoothed").
        self.recent = [float(v) for v in saved.get("recent", [])] or (
            [float(saved["smoothed"])] if saved.get("smoothed") is not None else [])
        self.best_correct = _unpack(saved.get(PER_IMAGE))
        self.restore = bool(saved.get("restore", self.file is not None))
        self.differ = saved.get("differ")  # [b, c] of mcnemar: best against the latest epoch
        self.last_epoch = saved.get("last_epoch")

    @property
    def smoothed(self) -> float | None:
        return self.recent[-1] if self.recent else None

    def on_epoch_end(self, epoch, logs=None):
        raw = (logs or {}).get(MONITOR)
        if raw is None or not math.isfinite(raw):
            return
        value = raw if self.smoothed is None else SMOOTHING * self.smoothed + (1 - SMOOTHING) * raw
        self.recent = [*self.recent, float(value)][-(self.strip + 1):]
        self.last_epoch = epoch + 1
        if epoch < self.watch_from:
            return
        correct = self.correct() if self.correct is not None else None
        if value < self.best:
            self.best, self.best_epoch, self.wait = float(value), epoch + 1, 0
            self.file = best_weights_name(epoch + 1)
            self.best_correct = correct
            atomic_save_weights(self.model, self.dir / self.file)
        else:
            self.wait += 1
        self.restore = self.better_than(correct)
        if self.wait >= self.patience and self.rising() and self.restore:
            self.stopped_at = epoch + 1
            self.model.stop_training = True

    def better_than(self, correct: np.ndarray | None) -> bool:
        """Whether the best epoch's weights are to be kept over the current ones: when
        significantly better (mcnemar), or always without per-image results (``correct`` is None
        under rule "best", see __init__)."""
        if self.best_epoch == self.last_epoch:  # the current weights are the best: nothing to restore
            self.differ = None
            return False
        if correct is None or self.best_correct is None:
            self.differ = None
            return True
        significant, b, c = mcnemar(self.best_correct, correct)
        self.differ = [b, c]
        return significant

    def rising(self) -> bool:
        """Whether the smoothed loss is above its value one strip of epochs ago."""
        return len(self.recent) > self.strip and self.recent[-1] > self.recent[0]

    @property
    def kept_epoch(self) -> int | None:
        """The epoch whose weights the phase ends with, were it to end now."""
        return self.best_epoch if self.restore and self.file is not None else self.last_epoch

    def file_in(self, run_dir: Path) -> bool:
        return self.file is not None and (run_dir / CHECKPOINTS / self.file).is_file()

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "file": self.file, "wait": self.wait,
                "stopped_at": self.stopped_at, "patience": self.patience, "rule": self.rule,
                "recent": self.recent, "last_epoch": self.last_epoch, "restore": self.restore,
                "differ": self.differ, "kept_epoch": self.kept_epoch, PER_IMAGE: _pack(self.best_correct)}


def restore_best(model: keras.Model, run_dir: Path, saved: dict | None) -> int | None:
    """Load the best weights that ``saved`` (BestWeights.state()) names where it says to restore
    them (a state.json from before ``restore`` always does); their epoch, or None."""
    if not saved or not saved.get("file") or not saved.get("restore", True):
        return None
    path = run_dir / CHECKPOINTS / saved["file"]
    if not path.is_file():
        raise ValueError(f"best weights {path} named in state.json are missing; cannot finish the run")
    model.load_weights(path)
    return saved["best_epoch"]
