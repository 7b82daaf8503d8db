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


def fit_strategy(name: str, batch_size: int):
    """The `tf.distribute` strategy of a `model.fit` trainer and whether this task is the chief.

    Under the TensorFlow backend: `common.distribute.make_strategy(name)`, the
    global batch checked to split evenly. Other backends train on one device:
    (None, True), and any other `name` is refused.

    Raises:
        ValueError: a strategy other than 'default' off the TensorFlow backend, or an uneven batch.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        if name != "default":
            raise ValueError(f"--strategy {name} is tf.distribute's: it needs KERAS_BACKEND=tensorflow "
                             f"(this is {keras.backend.backend()}, which trains on one device)")
        return None, True
    from absl import logging

    from common.distribute import check_batch, is_chief, make_strategy, replicas

    strategy = make_strategy(name)
    check_batch(strategy, batch_size)
    if replicas(strategy) > 1:
        logging.info("%s strategy: %d replicas, %d images each per step", name, replicas(strategy),
                     batch_size // replicas(strategy))
    return strategy, is_chief(strategy)


def load_training_images(data_dir: str):
    """`data.examples.load_images` of the train split, with the trainers' error when none decodes.

    Raises:
        ValueError: no train split, or none of its files decodes (naming `data_dir`).
    """
    from data.examples import load_images
    from data.splits import split_files

    files = split_files(data_dir, "train")
    try:
        return load_images(files)
    except ValueError:
        raise ValueError(f"{data_dir}: no training image could be decoded (see the warnings above); "
                         "nothing to train on") from None
