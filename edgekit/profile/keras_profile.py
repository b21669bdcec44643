"""Profiling a Keras model (a .keras file or an ``edgekit train`` run folder) in TensorFlow.

Unlike .tflite/.onnx files this imports TensorFlow and Keras: it measures the model as
trained, on the training machine, for comparison with its exports. Static figures are
:func:`edgekit.models.count_model`'s (per layer); the timed call is ``predict_on_batch``.
TensorFlow's intra-op thread count can only be set before its runtime starts, hence one
thread count per process.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgekit.run_record import model_file

from .runners import Loaded
from .static import OpStat, StaticReport


def _set_threads(threads: int) -> str | None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            return (f"TensorFlow had already started with {current or 'its default'} threads; "
                    f"--threads {threads} not applied")
    return None


def load_keras(path: Path, threads: int, batch: int) -> tuple[Loaded, StaticReport, list[str]]:
    """(timed call, static figures, notes) for a .keras file or run folder."""
    from edgekit.models import count_model
    from edgekit.models.safe_load import load_keras_model

    file = model_file(path)  # a run folder's model.keras
    if not file.is_file():
        raise ValueError(f"model file {str(file)!r} does not exist")
    notes = [n for n in [_set_threads(threads)] if n]
    start = time.perf_counter_ns()
    model = load_keras_model(file)  # safe mode; one-line ValueError when refused or unreadable
    init_ms = (time.perf_counter_ns() - start) / 1e6
    dims = tuple(model.inputs[0].shape[1:])
    if len(model.inputs) != 1 or None in dims:
        raise ValueError(f"{str(file)!r} has {len(model.inputs)} input(s), the first of shape {dims}; "
                         "edgekit profiles models with one input of fixed shape")
    shape = (batch, *(int(d) for d in dims))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    counted = count_model(model)
    ops = tuple(OpStat(i, row.name, row.type, row.macs, "float") for i, row in enumerate(counted.layers))
    static = StaticReport("keras", file.stat().st_size, counted.params, ops,
                          "Keras layer shapes (edgekit.models.count_model)")
    loaded = Loaded(lambda: model.predict_on_batch(x), "keras", init_ms, [shape], None, keep=model)
    return loaded, static, notes
