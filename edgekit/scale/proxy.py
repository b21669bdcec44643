"""Proxy training: a few epochs of each finalist on the user's data, ranked by validation
accuracy (the short-training proxy of architecture search; a ranking, not a final accuracy).

The recipe is small and explicit, not ``edgekit train``'s defaults: a fixed number of epochs,
a fixed learning rate, no early stopping, the default augmentation, a seeded 10% validation
hold-out, and optionally only ``limit`` training images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgekit.messages import stderr

from .candidates import Candidate


@dataclass(frozen=True)
class ProxyRecipe:
    epochs: int
    lr: float = 3e-3
    batch_size: int = 64
    limit: int | None = None
    val_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"--proxy-epochs got {self.epochs!r}; expected an integer >= 1")


def proxy_accuracy(c: Candidate, data: str, recipe: ProxyRecipe, folder: Path,
                   log: Callable[[str], None] = stderr) -> float | None:
    """Train ``c`` briefly on ``data`` into ``folder``; its last validation accuracy."""
    from edgekit.train import TrainConfig, train

    knobs = c.config.knobs
    cfg = TrainConfig(arch=c.arch, data=data, out=str(folder), input_size=c.input_size, epochs=recipe.epochs,
                      lr=recipe.lr, batch_size=recipe.batch_size, early_stopping=0, limit=recipe.limit,
                      val_fraction=recipe.val_fraction, seed=recipe.seed, tensorboard=False, **knobs)
    log(f"scale: proxy training {c.arch} {c.describe()} for {recipe.epochs} epoch(s)")
    meta = train(cfg)
    accuracy = meta.get("final", {}).get("val_accuracy")
    return None if accuracy is None else float(accuracy)
