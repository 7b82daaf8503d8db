"""Restoring a finished (or running) `srgan.train` run's generator, for inference and export.

`restore_generator` reads the run's weights (`common.state` layout, any Keras
backend's run); `load_generator_weights` copies an exported SavedModel's
generator (TensorFlow).

Split from the trainer so that inference (`pipeline.models`) and export
(`srgan.export`) need only the generator and its settings, not the loop.
"""
from __future__ import annotations

import os
from typing import Optional

import keras
import tensorflow as tf
from absl import logging

from common.training import load_config
from srgan.config import MSE_DIR, SRGANConfig
from srgan.model import build_generator

#: What `restore_generator` can be asked for.
PHASES = ("latest", "mse", "gan")


def load_generator_weights(generator: keras.Model, export_dir: str, settings: Optional[dict] = None) -> None:
    """Copies the weights of an exported SR SavedModel into `generator`.

    The SavedModel's `variables/` is a TensorFlow checkpoint of the serving
    module, whose `generator` attribute is the Keras model, so a generator
    built with the same settings restores from it object by object (no name
    or order guessing). Used to start phase 2 from a shipped SRResNet
    (`--init_generator`), as tensorlayer/srgan starts its GAN epochs from its
    initialised generator.

    Args:
        generator: from `build_generator` with the exported model's settings.
        export_dir: a folder written by `srgan.saved_model.export_saved_model`.
        settings: the generator's `num_blocks`, `filters`, `scale`, `arch`;
            compared with the export's config.json (a smaller generator would
            otherwise restore silently from part of a larger one).

    Raises:
        FileNotFoundError: no SavedModel variables there.
        ValueError: the export's settings or variables do not fit `generator`.
    """
    prefix = os.path.join(export_dir, "variables", "variables")
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(f"{export_dir}: no SavedModel variables (expected {prefix}.index)")
    meta_path = os.path.join(export_dir, "config.json")
    if os.path.isfile(meta_path):
        meta = load_config(meta_path)
        if meta.get("model", "srgan") != "srgan":
            raise ValueError(f"{export_dir} holds a {meta.get('model')!r} model, not an SR generator")
        diff = [f"{k} {meta[k]!r} (this run: {v!r})" for k, v in (settings or {}).items()
                if k in meta and meta[k] != v]
        if diff:
            raise ValueError(f"{export_dir}: its generator does not fit this one: {', '.join(diff)}")
    try:
        status = tf.train.Checkpoint(generator=generator).read(prefix)
        status.assert_existing_objects_matched().expect_partial()
    except (AssertionError, tf.errors.OpError, ValueError) as e:
        raise ValueError(f"{export_dir}: its generator does not fit this one (num_blocks, filters, scale "
                         f"and arch must match the export's config.json): {str(e)[:300]}") from e


def restore_generator(workdir: str, checkpoint: Optional[str] = None,
                      phase: str = "latest") -> tuple[keras.Model, SRGANConfig, int]:
    """Rebuilds the generator of a run from `workdir/config.json` and saved weights.

    Args:
        workdir: a `train` run folder (`srgan.trainer`).
        checkpoint: an explicit folder holding `generator.weights.h5` and
            `step.json` (a run's `state/` or `ckpt_mse/`), or a snapshot
            `weights/step_NNNNNNN.weights.h5` (overrides `phase`).
        phase: `latest` (the state), `mse` (the generator at the end of
            phase 1, `ckpt_mse/`, or the state while phase 1 is still running)
            or `gan` (the state, which must be past phase 1).

    Returns:
        (generator, config, step) with the generator in float32.

    Raises:
        FileNotFoundError: no config.json or no suitable weights.
        ValueError: unknown phase, `gan` asked of a run still in phase 1, an
            old-layout run (`ckpt/`), or weights that do not fit the generator
            config.json describes.
    """
    from common.state import check_workdir, state_path, state_step

    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose from {PHASES}")
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no config.json; is {workdir} a srgan.train workdir?")
    check_workdir(workdir)
    config = SRGANConfig(**load_config(path))
    latest = state_path(workdir)
    folder = checkpoint
    if folder is None and phase == "mse":
        mse = os.path.join(workdir, MSE_DIR)
        folder = mse if os.path.isfile(os.path.join(mse, "step.json")) else None
        if folder is None and latest and state_step(latest) <= config.init_steps:
            logging.warning("phase 1 not finished (step %d of %d): using its latest state",
                            state_step(latest), config.init_steps)
            folder = latest
        if folder is None:
            raise FileNotFoundError(f"no phase-1 (MSE) generator in {mse} (init_steps {config.init_steps})")
    folder = folder or latest
    snapshot = bool(folder) and folder.endswith(".weights.h5")
    weights = folder if snapshot else os.path.join(folder or "", "generator.weights.h5")
    if not folder or not os.path.isfile(weights):
        raise FileNotFoundError(f"no saved generator in {folder or os.path.join(workdir, 'state')}")
    generator = build_generator(config.num_blocks, config.filters, config.scale, config.arch)
    try:
        generator.load_weights(weights)
    except ValueError as e:
        raise ValueError(f"{folder}: cannot restore this run's generator from it "
                         f"(config.json and the weights disagree?): {str(e)[:500]}") from e
    step = int(os.path.basename(folder).split("_")[1].split(".")[0]) if snapshot else state_step(folder)
    if phase == "gan" and checkpoint is None and step <= config.init_steps:
        raise ValueError(f"the latest state (step {step}) is not past phase 1 (init_steps "
                         f"{config.init_steps}): train longer or export with phase 'mse'")
    return generator, config, step
