"""Typed options of a training run (what ``edgekit train`` parses into)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from enum import Enum

from edgekit.data.augment import DEFAULT_AUGMENT
from edgekit.stopping import RESTORE_RULES

from .averaging import parse_ema
from .epochs import AUTO, Auto, as_json
from .mixing import MixConfig

STRATEGIES = ("default", "mirrored", "multiworker")
DEFAULT_LR = 3e-3
IMAGENET = "imagenet"  # --weights imagenet: keras.applications' weights (pretrained.py)


def is_imagenet(weights: str | None) -> bool:
    return weights == IMAGENET


def parse_lr(text: str | float) -> "float | Auto":
    """``--lr``: a number > 0, or ``auto`` for the learning-rate range test (lr_find.py)."""
    if text is AUTO or (isinstance(text, str) and text.strip().lower() == AUTO.value):
        return AUTO
    try:
        lr = float(text)
    except (TypeError, ValueError):
        lr = math.nan
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"--lr got {text!r}; expected a number > 0 or auto")
    return lr


class Freeze(Enum):
    NONE = "none"
    FIRST_K = "first-k"
    ALL_BUT_HEAD = "all-but-head"


@dataclass(frozen=True)
class FreezeSpec:
    mode: Freeze = Freeze.NONE
    k: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "FreezeSpec":
        if text in (None, "", "none", "0"):
            return cls()
        if text == "all-but-head":
            return cls(Freeze.ALL_BUT_HEAD)
        try:
            k = int(text)
        except ValueError:
            k = -1
        if k < 0:
            raise ValueError(f"--freeze got {text!r}; expected a layer count K >= 0 or all-but-head")
        return cls(Freeze.FIRST_K, k)


@dataclass(frozen=True)
class TrainConfig:
    arch: str
    data: str
    out: str
    input_size: int | None = None
    channels: int | None = None  # None: 1 for grayscale in-memory data, else 3
    alpha: float | None = None
    width: float | None = None  # EfficientNet width multiplier (None: the variant's own)
    depth: float | None = None  # EfficientNet depth multiplier (None: the variant's own)
    epochs: int | Auto = AUTO  # AUTO: from the number of images, with early stopping (epochs.py)
    batch_size: int | Auto = AUTO  # AUTO: from the number of images (epochs.auto_batch_size)
    lr: float | Auto = DEFAULT_LR  # Auto.AUTO: picked by a learning-rate range test (lr_find.py)
    weight_decay: float = 0.05  # AdamW's decoupled decay (x lr per step); 1e-4 left it overfitting
    label_smoothing: float = 0.0
    ema: float | Auto | None = AUTO  # weight averaging's momentum (averaging.py); AUTO: from the steps; None: off
    dropout: float | None = None  # rate before the classifier; None: the architecture's own
    mixup: float = 0.0  # Beta concentration of mixup (mixing.py); 0: off
    cutmix: float = 0.0  # Beta concentration of CutMix; 0: off
    warmup_epochs: float = 0.0  # linear warm-up before the cosine decay (capped at a third of the run)
    augment: str = DEFAULT_AUGMENT
    weights: str | None = None
    freeze: FreezeSpec = field(default_factory=FreezeSpec)
    fine_tune_epochs: int = 0
    fine_tune_lr_factor: float = 0.1
    mixed_precision: bool = False
    strategy: str = "default"
    resume: bool = False
    seed: int = 0
    val_fraction: float = 0.1
    split: str = "train"
    bn_momentum: float = 0.99
    early_stopping: int = 0  # patience in epochs on the validation loss (0: off, or auto's own with --epochs auto)
    restore: str = RESTORE_RULES[0]  # which epoch's weights early stopping keeps (epochs.BestWeights)
    limit: int | None = None  # use only the first N training images (quick runs)
    tensorboard: bool = True

    def __post_init__(self) -> None:
        # The library takes "auto" as the CLI does; the record keeps the Enum.
        for name in ("epochs", "batch_size", "lr"):
            if isinstance(getattr(self, name), str) and getattr(self, name).strip().lower() == AUTO.value:
                object.__setattr__(self, name, AUTO)
        object.__setattr__(self, "ema", parse_ema(self.ema))
        self.mix  # builds and keeps the MixConfig: ValueError naming a bad value
        checks = [
            (self.epochs is AUTO or (type(self.epochs) is int and self.epochs >= 1), "epochs", self.epochs,
             f"{AUTO.value} or an integer >= 1"),
            (self.early_stopping >= 0, "early-stopping", self.early_stopping, "an integer >= 0"),
            (self.restore in RESTORE_RULES, "restore", self.restore, f"one of {', '.join(RESTORE_RULES)}"),
            (self.batch_size is AUTO or (type(self.batch_size) is int and self.batch_size >= 1), "batch-size",
             self.batch_size, f"{AUTO.value} or an integer >= 1"),
            (self.lr_auto or (math.isfinite(self.lr) and self.lr > 0), "lr", self.lr, "a number > 0 or auto"),
            (self.fine_tune_epochs >= 0, "fine-tune-epochs", self.fine_tune_epochs, "an integer >= 0"),
            (self.strategy in STRATEGIES, "strategy", self.strategy, f"one of {', '.join(STRATEGIES)}"),
            (self.input_size is None or self.input_size >= 1, "input-size", self.input_size, "an integer >= 1"),
            (self.channels in (None, 1, 3), "channels", self.channels, "1 or 3"),
            (self.limit is None or self.limit >= 2, "limit", self.limit, "an integer >= 2"),
            (0.0 < self.bn_momentum < 1.0, "bn-momentum", self.bn_momentum, "a value in (0, 1)"),
            (math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0, "warmup-epochs", self.warmup_epochs,
             "a number >= 0"),
            (0.0 <= self.label_smoothing < 1.0, "label-smoothing", self.label_smoothing, "a value in [0, 1)"),
            (self.dropout is None or 0.0 <= self.dropout < 1.0, "dropout", self.dropout, "a value in [0, 1)"),
        ]
        for ok, name, value, expected in checks:
            if not ok:
                raise ValueError(f"--{name} got {value!r}; expected {expected}")

    @cached_property
    def mix(self) -> MixConfig:
        return MixConfig(self.mixup, self.cutmix)

    @property
    def lr_auto(self) -> bool:
        return self.lr is AUTO

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lr"], d["epochs"], d["batch_size"] = as_json(self.lr), as_json(self.epochs), as_json(self.batch_size)
        d["ema"] = as_json(self.ema)
        d["freeze"] = {"mode": self.freeze.mode.value, "k": self.freeze.k}
        return d
