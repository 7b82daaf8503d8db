"""Training plumbing shared by `colorize.train` and `srgan.train`.

Nothing here reads absl flags: entry modules turn flags into a frozen dataclass
config and pass it (and a workdir) in.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping

import numpy as np

from common.files import atomic_write_bytes

# tf.distribute strategies the trainers accept (see common.distribute).
STRATEGIES = ("default", "mirrored", "multi_worker")
#: The `--strategy` help of both trainers (`colorize.config`, `srgan.config`).
STRATEGY_HELP = ("tf.distribute strategy: default (one device), mirrored (all GPUs of this host, else all logical "
                 "CPUs), multi_worker (MultiWorkerMirroredStrategy across hosts, from the TF_CONFIG environment "
                 "variable). --batch_size is the global batch, split evenly across replicas. See README 'Scaling out'.")


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss becomes NaN or infinite."""


def config_to_dict(config: Any) -> dict:
    """Returns a JSON-able dict of a dataclass config (tuples become lists)."""
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def save_config(config: Any, workdir: str, name: str = "config.json") -> str:
    """Writes the resolved config as JSON beside the checkpoints.

    Inference and resumed runs read it back, so nothing depends on flags that
    were passed once and forgotten.

    Returns:
        The path written.
    """
    path = os.path.join(workdir, name)
    text = json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def load_config(path: str) -> dict:
    """Reads a config written by `save_config`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_best(folder: str) -> dict | None:
    """The `best.json` record (`{"step", "dev_loss"}`) a trainer keeps beside its best weights, or None."""
    path = os.path.join(folder, "best.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_best(folder: str, step: int, dev_loss: float) -> None:
    """Writes the `best.json` record of `read_best` atomically."""
    text = json.dumps({"step": step, "dev_loss": dev_loss}) + "\n"
    atomic_write_bytes(os.path.join(folder, "best.json"), text.encode("utf-8"))


def check_finite(losses: Mapping[str, Any], step: int) -> None:
    """Stops training on a NaN/inf loss, naming the loss and the step.

    Args:
        losses: name -> scalar (float, numpy or tensor).
        step: the global step the losses belong to.

    Raises:
        NonFiniteLossError: if any loss is not finite.
    """
    for name, value in losses.items():
        v = float(np.asarray(value))
        if not math.isfinite(v):
            raise NonFiniteLossError(
                f"non-finite {name} loss ({v}) at step {step}; stopping. The last good "
                "checkpoint is kept; lower the learning rate or check the data."
            )


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and the Keras/TensorFlow global generators."""
    import keras

    keras.utils.set_random_seed(int(seed))


class TrainState:
    """Full training state on disk: models, optimisers and step, with resume.

    Wraps `tf.train.Checkpoint` + `tf.train.CheckpointManager`, which write each
    checkpoint under a fresh name and only then update the `checkpoint` index
    file, so a kill mid-write leaves the previous checkpoint usable.

    Args:
        directory: where checkpoints go (created if missing).
        max_to_keep: how many recent checkpoints to keep.
        restore_from: where `restore` looks (default `directory`); a
            non-chief distributed worker saves to scratch but resumes from
            the chief's checkpoints (see `common.distribute`).
        **trackables: models, optimisers and variables to save, by name.
    """

    def __init__(self, directory: str, max_to_keep: int = 3, restore_from: str | None = None,
                 **trackables: Any) -> None:
        import tensorflow as tf

        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        self.checkpoint = tf.train.Checkpoint(step=self.step, **trackables)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=max_to_keep)
        self.restore_from = restore_from

    def restore(self) -> int:
        """Restores the latest checkpoint if there is one.

        Optimisers must already hold their slot variables (call
        `optimizer.build(model.trainable_variables)` first) so that their state
        is restored rather than silently re-initialised.

        Returns:
            The restored step (0 when starting fresh).
        """
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(self.restore_from) if self.restore_from else self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def save(self, step: int) -> str:
        """Saves everything at `step`; returns the checkpoint prefix."""
        self.step.assign(int(step))
        return self.manager.save(checkpoint_number=int(step))

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint


def next_batch(iterator, data_dir: str):
    """`next(iterator)` over a repeating training dataset, with a clear error when it is empty.

    A training dataset repeats forever, so it ends only when no file of the
    split could be decoded (the unreadable ones are dropped and logged).

    Raises:
        ValueError: naming `data_dir`, instead of a bare StopIteration.
    """
    try:
        return next(iterator)
    except StopIteration:
        raise ValueError(f"{data_dir}: no training image could be decoded (see the warnings above); "
                         "nothing to train on") from None
