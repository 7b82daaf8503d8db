"""A training run's state on disk, written whole or not at all, for both trainers (`common.callbacks`).

A run folder holds

    state/                     the full training state: `<model>.weights.h5`
                               for each network, `<optimizer>.npz` for each
                               optimiser (all its variables in order, the
                               iteration count included, with their paths)
                               and `step.json`; a restart resumes from it
    weights/step_NNNNNNN.weights.h5   one network at each checkpoint (the newest `max_to_keep`)
    best/                      `model.weights.h5` with the lowest dev loss so far, and `best.json`

Keras and NumPy only: any Keras backend reads and writes it.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Mapping, Optional

import keras
import numpy as np
from keras import ops

from common.files import atomic_write_bytes
from common.training import read_best

STATE_DIR, WEIGHTS_DIR, BEST_DIR = "state", "weights", "best"


def _optimizer_arrays(optimizer) -> dict:
    variables = optimizer.variables
    arrays = {f"v{i:04d}": ops.convert_to_numpy(v) for i, v in enumerate(variables)}
    arrays["names"] = np.array([v.path for v in variables])
    return arrays


def save_state(workdir: str, step: int, models: Mapping[str, keras.Model], optimizers: Mapping[str, object]) -> str:
    """Writes `workdir/state` whole or not at all: a new folder, then two renames.

    Args:
        workdir: the run folder.
        step: the global step the state belongs to.
        models: file stem -> network (`<stem>.weights.h5`).
        optimizers: file stem -> optimiser (`<stem>.npz`, its variables in order, with their paths).

    Returns:
        The state folder.
    """
    final = os.path.join(workdir, STATE_DIR)
    tmp, old = final + ".tmp", final + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name, model in models.items():
        model.save_weights(os.path.join(tmp, f"{name}.weights.h5"))
    for name, optimizer in optimizers.items():
        np.savez(os.path.join(tmp, f"{name}.npz"), **_optimizer_arrays(optimizer))
    atomic_write_bytes(os.path.join(tmp, "step.json"), json.dumps({"step": int(step)}).encode("utf-8"))
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def check_workdir(workdir: str) -> None:
    """Refuses a run folder of the earlier TensorFlow-loop trainers (`ckpt/`), which these cannot read."""
    if os.path.isdir(os.path.join(workdir, "ckpt")):
        raise ValueError(f"{workdir} holds a run of the earlier TensorFlow-loop trainer (ckpt/), whose "
                         "checkpoints these trainers cannot read; train in a new --workdir")


def state_path(workdir: str) -> Optional[str]:
    """The folder of the last complete state in `workdir`, or None."""
    for name in (STATE_DIR, STATE_DIR + ".old"):  # .old: killed between the two renames
        path = os.path.join(workdir, name)
        if os.path.isfile(os.path.join(path, "step.json")):
            return path
    return None


def state_step(folder: str) -> int:
    """The step of a state folder written by `save_state`."""
    with open(os.path.join(folder, "step.json"), encoding="utf-8") as f:
        return int(json.load(f)["step"])


def restore_state(folder: str, models: Mapping[str, keras.Model], optimizers: Mapping[str, object]) -> int:
    """Loads a `save_state` folder into built networks and built optimisers; returns its step.

    Raises:
        ValueError: a saved optimiser's variables do not fit (another network).
    """
    for name, model in models.items():
        model.load_weights(os.path.join(folder, f"{name}.weights.h5"))
    for name, optimizer in optimizers.items():
        with np.load(os.path.join(folder, f"{name}.npz")) as saved:
            arrays = [saved[k] for k in sorted(saved.files) if k != "names"]
        if [a.shape for a in arrays] != [tuple(v.shape) for v in optimizer.variables]:
            raise ValueError(f"{folder}: the saved {name} state does not fit this model")
        for v, a in zip(optimizer.variables, arrays):
            v.assign(a)
    return state_step(folder)


def weights_file(workdir: str, checkpoint: str = "latest", model: str = "model") -> tuple[str, int]:
    """A network's `.weights.h5` file in a run folder, and its step.

    Args:
        workdir: a run folder (module doc).
        checkpoint: `latest` (the state), `best` (lowest dev loss) or a step
            number whose snapshot is still in `weights/`.
        model: the network's file stem in `state/`.

    Raises:
        FileNotFoundError: no such weights in `workdir`.
    """
    if checkpoint == "latest":
        folder = state_path(workdir)
        if folder:
            return os.path.join(folder, f"{model}.weights.h5"), state_step(folder)
    elif checkpoint == "best":
        record = read_best(os.path.join(workdir, BEST_DIR))
        if record:
            return os.path.join(workdir, BEST_DIR, "model.weights.h5"), int(record["step"])
    else:
        path = os.path.join(workdir, WEIGHTS_DIR, f"step_{int(checkpoint):07d}.weights.h5")
        if os.path.isfile(path):
            return path, int(checkpoint)
    raise FileNotFoundError(f"{workdir}: no {checkpoint!r} weights (checkpoint) to export")


__all__ = ["STATE_DIR", "WEIGHTS_DIR", "BEST_DIR", "save_state", "state_path", "state_step", "restore_state",
           "weights_file", "check_workdir"]
