"""edgekit's latency model per device: predict a network's latency from its kernels without
running it (the nn-Meter / LitePred approach, see :mod:`.kernels`).

``fit(...)`` measures sampled zoo configurations on the device (here or over SSH) and fits
non-negative per-kernel-type regressors per (format, precision); ``load_latency_model(path)``
reads the JSON file; ``LatencyModel.check(target, fmt, precision)``, ``predict_config(arch,
overrides, input_size, fmt, precision)`` and ``predict_file(path)`` use it.
"""

from .fit import fit
from .kernels import FeatureTable, Kernel
from .model import SCHEMA, LatencyModel, Prediction, Predictor, load_latency_model
from .sampling import Config, tiny_grid, zoo_grid

__all__ = ["Config", "FeatureTable", "Kernel", "LatencyModel", "Prediction", "Predictor", "SCHEMA", "fit",
           "load_latency_model", "tiny_grid", "zoo_grid"]
