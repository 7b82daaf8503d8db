"""tf.distribute for the `model.fit` trainers (TensorFlow backend): the strategy, batch norm, who writes files.

`--strategy` picks one of:

* `default`: no distribution (TensorFlow's default strategy; one device).
* `mirrored`: `tf.distribute.MirroredStrategy` over every GPU of this host, or,
  without GPUs, over every logical CPU device (tests split the CPU in two
  with `tf.config.set_logical_device_configuration`).
* `multi_worker`: `tf.distribute.MultiWorkerMirroredStrategy` across hosts,
  configured by the `TF_CONFIG` environment variable (cluster and this task).

The trainers build and compile their networks in the strategy's scope
(`common.training.fit_strategy`) and fit splits the global batch
(`--batch_size`) evenly across replicas. Each replica's loss is its own batch
mean divided by the number of replicas, so the gradients that the optimiser
sums across replicas are those of the global batch mean, the same as one
device with the same global batch. Batch norm is synchronised across replicas
(`synchronize_batch_norm`) so its statistics are the global batch's too. Only
the chief (worker 0, or the one process) writes the state, logs, samples and
exports; the other workers write nothing.
"""
from __future__ import annotations

import json
import os
from typing import Optional

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


def _synchronized_moments(original):
    """Batch-norm moments over the global batch, in two passes like `tf.nn.moments` (a layer's `_moments`).

    Keras' `synchronized=True` takes the variance as E[x^2] - E[x]^2, which in
    float32 loses most digits where features have a large mean (VGG
    activations): replicas would drift from one device. Here the mean is
    all-reduced first, then the squared deviations from it, as one device
    computes them. Masked inputs keep the layer's own `original` moments.
    """

    def moments(inputs, mask):
        ctx = tf.distribute.get_replica_context()
        if mask is not None or ctx is None or ctx.num_replicas_in_sync == 1:
            return original(inputs, mask)
        layer_dtype = inputs.dtype
        x = tf.cast(inputs, tf.float32)  # float16 statistics overflow, as Keras' own moments say
        axes = [a % len(x.shape) for a in original.__self__._reduction_axes]
        count = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                               tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes)), tf.float32))
        mean = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(x, axes, keepdims=True)) / count
        squares = tf.reduce_sum(tf.math.squared_difference(x, tf.stop_gradient(mean)), axes, keepdims=True)
        variance = ctx.all_reduce(tf.distribute.ReduceOp.SUM, squares) / count
        return tf.cast(tf.squeeze(mean, axes), layer_dtype), tf.cast(tf.squeeze(variance, axes), layer_dtype)

    return moments


def synchronize_batch_norm(model) -> int:
    """Makes every batch-norm layer of `model` use global-batch statistics across replicas.

    Each layer's moments become `_synchronized_moments` (the global batch's,
    computed as one device computes its own), set after building so the model
    builders stay strategy-free; with one replica it changes nothing. Returns
    how many layers were switched.
    """
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer._moments = _synchronized_moments(layer._moments)
            count += 1
    return count
