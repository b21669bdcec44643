"""tf.distribute strategies: one device, MirroredStrategy (several GPUs, or logical CPUs in
tests), MultiWorkerMirroredStrategy (several processes or machines, configured by TF_CONFIG;
https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras).

Multi-worker contract: every worker runs the same ``edgekit train`` command with its own
TF_CONFIG task; the global batch (``--batch-size``) is split over all replicas. Every worker
builds the same epoch-addressed input pipeline and keeps its share of each global batch (DATA
sharding), so the run trains on exactly the batches a one-device run would. Only the chief
writes the run directory; ``--resume`` needs it on a filesystem all workers see.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from .multiworker import install_keras_multiworker_fixes


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        _check_tf_config(os.environ.get("TF_CONFIG"))
        install_keras_multiworker_fixes()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy got {name!r}; expected default, mirrored or multiworker")


def _check_tf_config(text: str | None) -> None:
    if not text:
        raise ValueError("--strategy multiworker needs TF_CONFIG (cluster and task) in the environment")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON ({exc}): {text!r}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) \
            or not isinstance(config.get("task"), dict):
        raise ValueError(f"TF_CONFIG got {text!r}; expected {{\"cluster\": {{...}}, \"task\": {{\"type\": ..., "
                         f"\"index\": ...}}}}")


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) \
        and strategy.extended._in_multi_worker_mode()  # noqa: SLF001 (no public accessor)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief (or worker 0 without a chief) writes the run directory."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def shard_by_data(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Each worker keeps its share of every global batch. Auto-sharding would fall back to
    this anyway (the pipeline reads no files), with a warning per worker; files could not
    be sharded either, since every epoch reshuffles all images together."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
