"""tf.distribute for the trainers: the strategy, its dataset, its steps and who writes files.

`--strategy` picks one of:

* `default`: no distribution (TensorFlow's default strategy; one device).
* `mirrored`: `tf.distribute.MirroredStrategy` over every GPU of this host, or,
  without GPUs, over every logical CPU device (tests split the CPU in two
  with `tf.config.set_logical_device_configuration`).
* `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy` across hosts,
  configured by the `TF_CONFIG` environment variable (cluster and this task).

The global batch (`--batch_size`) is split evenly across replicas. Each
replica's loss is its own batch mean divided by the number of replicas, so the
gradients that the optimiser sums across replicas are those of the global
batch mean, the same as one device with the same global batch. Batch norm is
synchronised across replicas (`synchronize_batch_norm`) so its statistics are
the global batch's too. Only the chief (worker 0, or the one process) writes
checkpoints, logs, samples and exports; other workers write their share of a
checkpoint to a scratch folder that is deleted again (collective variables
must be read by every worker).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Callable, Optional

import tensorflow as tf

from common.training import STRATEGIES  # noqa: F401  (re-exported; defined without TensorFlow)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name` (see module docstring).

    Raises:
        ValueError: unknown name, or `multi_worker` with a malformed TF_CONFIG.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        # Without GPUs there is no NCCL: reduce through one device.
        ops = None if gpus else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=ops)
    if name == "multi_worker":
        raw = os.environ.get("TF_CONFIG", "")
        if raw:
            try:
                tf_config = json.loads(raw)
                tf_config["cluster"], tf_config["task"]["type"], tf_config["task"]["index"]
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"TF_CONFIG is not valid for multi_worker ({e}): {raw[:200]}") from e
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")


def replicas(strategy: tf.distribute.Strategy) -> int:
    return int(strategy.num_replicas_in_sync)


def check_batch(strategy: tf.distribute.Strategy, batch_size: int) -> None:
    """The global batch must split evenly across replicas (or the loss scaling is off)."""
    n = replicas(strategy)
    if batch_size % n:
        raise ValueError(f"batch_size {batch_size} does not split evenly across {n} replicas")


def task(strategy: tf.distribute.Strategy) -> tuple[Optional[str], int]:
    """(task type, index) in a multi-worker cluster; (None, 0) otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one task that writes files: `chief`, or worker 0 when there is no chief."""
    kind, index = task(strategy)
    if kind in (None, "chief"):
        return True
    has_chief = "chief" in strategy.cluster_resolver.cluster_spec().as_dict()
    return kind == "worker" and index == 0 and not has_chief


def _single_device(strategy: tf.distribute.Strategy) -> bool:
    """One replica in one process: nothing to split or reduce."""
    return replicas(strategy) == 1 and task(strategy)[0] is None


def checkpoint_dir(strategy: tf.distribute.Strategy, directory: str) -> str:
    """Where this task saves: `directory` for the chief, a scratch folder beside it for the others."""
    if is_chief(strategy):
        return directory
    kind, index = task(strategy)
    return os.path.join(os.path.dirname(directory), f".scratch_{kind}_{index}", os.path.basename(directory))


def remove_scratch(strategy: tf.distribute.Strategy, directory: str) -> None:
    """Deletes a non-chief task's scratch checkpoint folder (see `checkpoint_dir`)."""
    if not is_chief(strategy):
        shutil.rmtree(os.path.dirname(checkpoint_dir(strategy, directory)), ignore_errors=True)


def distribute_dataset(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """The global-batch `dataset` split across replicas (unchanged for one replica).

    Files are decoded by a Python function, so tf.data cannot shard by file:
    every worker reads the same stream and keeps its own part of each batch
    (AutoShardPolicy.DATA), which keeps the global batches those of one device.
    """
    if _single_device(strategy):
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def replica_loss(loss: tf.Tensor) -> tf.Tensor:
    """A replica's batch-mean loss scaled so that the cross-replica gradient sum is the global mean's."""
    return loss / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)


def distributed_step(strategy: tf.distribute.Strategy, replica_fn: Callable[..., dict],
                     jit_compile: bool = False) -> Callable[..., dict]:
    """A compiled step running `replica_fn` on each replica; returns the global-mean metrics.

    `replica_fn(*batch)` returns a dict of scalars that are its own batch
    means; they are averaged over replicas (equal per-replica batches).
    """
    if _single_device(strategy):
        return tf.function(replica_fn, jit_compile=jit_compile)
    per_replica_fn = tf.function(replica_fn, jit_compile=True) if jit_compile else replica_fn
    n = float(replicas(strategy))

    def step(*batch):
        per_replica = strategy.run(per_replica_fn, args=batch)
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) / n for k, v in per_replica.items()}

    return tf.function(step)


def synchronize_batch_norm(model) -> int:
    """Makes every batch-norm layer of `model` use global-batch statistics across replicas.

    Keras' `BatchNormalization(synchronized=True)`, switched on after building
    so the model builders stay strategy-free; the flag is read at call time.
    With one replica it changes nothing. Returns how many layers were switched.
    """
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count
