"""Training: ``train(TrainConfig)`` writes a run directory that export and the runtime read.

Uses edgekit.models (the zoo) and edgekit.data (sources, augmentation); tf.distribute for
several devices or machines.
"""

from .config import Auto, Freeze, FreezeSpec, TrainConfig, parse_lr
from .epochs import AUTO, auto_batch_size, auto_epochs, parse_batch_size, parse_epochs, plan_epochs
from .run import train

__all__ = ["AUTO", "Auto", "Freeze", "FreezeSpec", "TrainConfig", "auto_batch_size", "auto_epochs", "parse_batch_size", "parse_epochs", "parse_lr",
           "plan_epochs", "train"]
