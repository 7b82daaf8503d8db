"""Writing the colouriser as a self-contained TensorFlow SavedModel.

The SavedModel is what `pipeline.run` loads: `tf.saved_model.load(path)` alone
(no code of this package) gives a `serving_default` signature

    grey: float32 [B, H, W, 1] in [0, 1], H and W multiples of 8 (so of 16)
    -> {"rgb": float32 [B, H, W, 3] in [0, 1], "uv": float32 [B, H, W, 2]}

`rgb` has the input as its BT.601 luma (see `colorize.model.compose_rgb`: out
of gamut chroma is desaturated, never the brightness changed); `uv` is the
chroma (+0.5 offset): the network output, or for a classification model
(`colorize.chroma`) the annealed mean of its bins at the temperature of the
export (`config.json`'s `temperature`). Such a model has a second signature,

    with_temperature: grey as above, temperature: float32 scalar > 0 -> the same outputs

(lower: more saturated, toward the most likely bin; 1: the mean of the
predicted distribution, greyer). `pipeline.models.load_model(...,
colour_temperature=T)` calls it. A `config.json` beside
`saved_model.pb` records the training config, `"model": "colorize"`, whether
the weights were trained and for how many steps. `model.tflite` beside it is
`serving_default`'s `rgb` as a LiteRT flatbuffer (any batch, H, W), written
when it passed the export's parity check (`common.litert`; `config.json`'s
`litert` says so, or why not).

This module has no flags: `colorize.export` (command line) and
`colorize.trainer` (export at the end of training under the TensorFlow
backend) both call `export_colorizer`.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import keras
import tensorflow as tf

from colorize.chroma import ChromaHead
from colorize.model import SIZE_MULTIPLE, compose_rgb
from common.export import ExportError, atomic_folder, check_output_dir, write_config_json  # noqa: F401  (re-exported)
from common.litert import write_flatbuffer

TEMPERATURE_SIGNATURE = "with_temperature"


def chroma_head(config: Optional[Mapping[str, Any]]) -> Optional[ChromaHead]:
    """The bins and decoding of a classification run's config; None for a UV-head model."""
    if config and config.get("loss") == "classification":
        return ChromaHead.from_config(config)
    return None


def _chroma(model: keras.Model, grey, head: Optional[ChromaHead], temperature=None):
    out = model(grey, training=False)
    return out if head is None else head.decode(out, temperature)


class _ColorizeServing(tf.Module):
    """Wraps the Keras model in the serving function that joins Y and UV."""

    def __init__(self, model: keras.Model, head: Optional[ChromaHead] = None) -> None:
        super().__init__(name="colorize_serving")
        self.model = model
        self.head = head

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="grey")])
    def serve(self, grey: tf.Tensor) -> dict:
        return self._serve(grey, None)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="grey"),
                                  tf.TensorSpec([], tf.float32, name="temperature")])
    def serve_with_temperature(self, grey: tf.Tensor, temperature: tf.Tensor) -> dict:
        tf.debugging.assert_positive(temperature, message="colouriser temperature must be > 0")
        return self._serve(grey, temperature)

    def _serve(self, grey: tf.Tensor, temperature) -> dict:
        shape = tf.shape(grey)
        tf.debugging.assert_equal(
            tf.logical_and(shape[1] % SIZE_MULTIPLE == 0, shape[2] % SIZE_MULTIPLE == 0),
            True,
            message=f"colouriser input height and width must be multiples of {SIZE_MULTIPLE} "
            "(the pipeline uses 224); resize or pad the grey image first",
        )
        grey = tf.clip_by_value(grey, 0.0, 1.0)
        uv = _chroma(self.model, grey, self.head, temperature)
        return {"rgb": compose_rgb(grey, uv), "uv": uv}


def colorize_rgb(model: keras.Model, grey, head: Optional[ChromaHead] = None, temperature=None) -> tf.Tensor:
    """What the exported signature computes, run on the Keras model directly.

    Args:
        model: a colouriser from `colorize.model.build_colorizer`.
        grey: `[B, H, W, 1]` in [0, 1].
        head: a classification model's bins (`chroma_head(config)`); None for a UV head.
        temperature: the annealed mean's (default: the head's).

    Returns:
        RGB `[B, H, W, 3]` in [0, 1] with luma equal to `grey`.
    """
    grey = tf.clip_by_value(tf.convert_to_tensor(grey, tf.float32), 0.0, 1.0)
    return compose_rgb(grey, _chroma(model, grey, head, temperature))


def export_colorizer(
    model: keras.Model,
    output_dir: str,
    config: Optional[Mapping[str, Any]] = None,
    steps_trained: int = 0,
    trained: bool = True,
    overwrite: bool = False,
) -> str:
    """Writes `model` as a SavedModel with the colouriser serving signature.

    The SavedModel is written into a temporary folder beside `output_dir` and
    renamed into place, so a crash never leaves a half-written model where the
    pipeline looks for one.

    Args:
        model: the Keras colouriser.
        output_dir: the SavedModel folder to create.
        config: the resolved training config (saved into `config.json`).
        steps_trained: training steps behind these weights.
        trained: False for freshly initialised weights (the pipeline warns).
        overwrite: replace an existing non-empty `output_dir`.

    Returns:
        `output_dir`.

    Raises:
        ExportError: `output_dir` exists, is not empty and `overwrite` is False,
            or it is a file.
    """
    head = chroma_head(config)
    module = _ColorizeServing(model, head)
    meta = dict(config or {})
    meta.update(
        model="colorize",
        trained=bool(trained),
        steps_trained=int(steps_trained),
        size_multiple=SIZE_MULTIPLE,
        signature={"input": "grey float32 [B,H,W,1] in [0,1]", "outputs": {"rgb": "[B,H,W,3] in [0,1]", "uv": "[B,H,W,2]"}},
    )
    signatures = {"serving_default": module.serve}
    if head is not None:
        signatures[TEMPERATURE_SIGNATURE] = module.serve_with_temperature
        meta["signature"][TEMPERATURE_SIGNATURE] = "grey as above, temperature float32 scalar > 0; same outputs"
    with atomic_folder(output_dir, overwrite) as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        # The pipeline's output (`rgb`) as a LiteRT flatbuffer, when it passes the parity check.
        write_flatbuffer(tmp, "rgb", meta)
        write_config_json(tmp, meta)
    return os.path.abspath(output_dir)


def restore_colorizer(workdir: str, checkpoint: str = "latest") -> tuple[keras.Model, int, dict]:
    """Rebuilds the model of a training run and loads one of its weights files.

    Args:
        workdir: a `colorize.train` run folder (holds `config.json` and
            `state/`, see `colorize.trainer`).
        checkpoint: `latest` (the state), `best` (lowest dev loss, `best/`), or
            a step number whose snapshot is still in `weights/`.

    Returns:
        (model, step of the weights, the run's config as a dict).

    Raises:
        FileNotFoundError: no config or no such checkpoint.
        ValueError: a run folder of the earlier TensorFlow-loop trainer (`ckpt/`).
    """
    from colorize.model import architecture, build_colorizer
    from colorize.trainer import MODEL
    from common.state import check_workdir, weights_file
    from common.training import load_config

    cfg_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{cfg_path}: not found; is {workdir} a colorize.train --workdir?")
    check_workdir(workdir)
    config = load_config(cfg_path)
    path, step = weights_file(workdir, checkpoint, MODEL)
    # Every weight comes from the file, so no ImageNet download here.
    model = build_colorizer(None, **architecture(config))
    model.load_weights(path)
    return model, step, config


__all__ = ["export_colorizer", "chroma_head", "TEMPERATURE_SIGNATURE", "check_output_dir", "colorize_rgb", "restore_colorizer", "ExportError"]
