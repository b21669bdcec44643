"""Training: ``train(TrainConfig)`` writes a run directory that export and the runtime read.

Uses edgekit.models (the zoo) and edgekit.data (sources, augmentation); tf.distribute for
several devices or machines.
"""

from .config import Auto, Freeze, FreezeSpec, TrainConfig, parse_lr
from .run import train

__all__ = ["Auto", "Freeze", "FreezeSpec", "TrainConfig", "parse_lr", "train"]
