"""Keras 3 ``model.fit`` under ``tf.distribute.MultiWorkerMirroredStrategy``: two fixes.

Keras 3 (checked on 3.15 with TF 2.21) cannot ``fit`` under MultiWorkerMirroredStrategy
(keras-team/keras#20585, tensorflow/tensorflow#72388, both open). Two code paths of
keras/src/backend/tensorflow/trainer.py that only run in multi-worker mode are wrong:

1. ``TensorFlowTrainer._maybe_symbolic_build`` takes the first distributed batch and calls
   ``strategy.reduce("MEAN", batch)`` on the whole (x, y) tuple, only to read its shapes and
   dtypes. ``Strategy.reduce`` does not take nested values (distribute_lib.py lists support
   for a nest as future work); the collective strategy passes the tuple to
   ``convert_to_tensor``: "Attempt to convert a value (PerReplica...) ... to a Tensor".
   Fix: build from the first local replica's batch (shapes and dtypes are all it needs).
2. ``reduce_per_replica(..., reduction="mean")`` reduces each step's logs (scalar loss and
   metric results) with ``strategy.reduce("MEAN", v, axis=0)``: axis 0 of a scalar does not
   exist ("Invalid reduction dimension 0 for input with 0 dimensions"). Fix: ``axis=None``,
   the mean over replicas, which is what the single-worker branch computes (it stacks the
   local results and averages over replicas).

Both replacements hand every call that is not under a multi-worker collective strategy to
Keras' own function unchanged, so installing them does not change single-worker training.
A two-process test (tests/test_train.py) checks that a two-worker run gives the same losses
as MirroredStrategy over two logical CPUs; when Keras fixes these upstream the test keeps
passing with or without this module and it can be deleted.
"""

from __future__ import annotations

import tensorflow as tf

_installed = False


def _local_batch(strategy: tf.distribute.Strategy, batch):
    """One replica's part of a distributed batch (same structure, plain tensors)."""
    def first(v):
        if isinstance(v, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(v)[0]
        return v
    return tf.nest.map_structure(first, batch)


def install_keras_multiworker_fixes() -> bool:
    """Patch the two trainer functions (idempotent). Returns False, changing nothing, when
    this Keras has no such functions (its trainer was rewritten; nothing here applies)."""
    global _installed
    if _installed:
        return True
    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer
        trainer_cls = tf_trainer.TensorFlowTrainer
        original_build = trainer_cls._maybe_symbolic_build
        original_reduce = tf_trainer.reduce_per_replica
        multi_worker = tf_trainer._collective_all_reduce_multi_worker
    except (ImportError, AttributeError):
        return False

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or not multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = _local_batch(strategy, next(it))
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and multi_worker(strategy):
            return tf.nest.map_structure(
                lambda v: v if v is None else strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    trainer_cls._maybe_symbolic_build = maybe_symbolic_build
    # Looked up as a module global when a train/test step is traced, so replacing the
    # module attribute reaches every caller.
    tf_trainer.reduce_per_replica = reduce_per_replica
    _installed = True
    return True
