"""Writing the SR generator as a self-contained TensorFlow SavedModel.

`tf.saved_model.load(path)` alone (no code of this package) gives a
`serving_default` signature

    lr: float32 [B, H, W, 3] in [0, 1], any H and W
    -> {"sr": float32 [B, scale*H, scale*W, 3] in [0, 1]}

with batch norm in inference mode (paper 5.1). A `config.json` beside
`saved_model.pb` records the training config, `"model": "srgan"`, the scale,
the phase the weights come from and whether they were trained. Beside it,
`model.tflite` is the same function as a LiteRT flatbuffer (any batch, H, W)
when it passed the export's parity check (`common.litert`; `config.json`'s
`litert` records the check, or why no flatbuffer was written).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import keras
import tensorflow as tf

from common.export import write_saved_model
from common.training import load_config
from srgan.model import sr_output  # noqa: F401  (re-exported: the one SR post-processing)


class _SRServing(tf.Module):
    def __init__(self, generator: keras.Model) -> None:
        super().__init__(name="srgan_serving")
        self.generator = generator

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="lr")])
    def serve(self, lr: tf.Tensor) -> dict:
        lr = tf.clip_by_value(lr, 0.0, 1.0)
        return {"sr": sr_output(self.generator(lr, training=False))}


def export_saved_model(
    generator: keras.Model,
    export_dir: str,
    config: Optional[Mapping[str, Any]] = None,
    overwrite: bool = False,
    steps_trained: Optional[int] = None,
    phase: Optional[str] = None,
) -> str:
    """Writes the generator with the SR serving signature (see module docstring).

    Args:
        generator: from `srgan.model.build_generator` (or `srgan.import_tl`).
        export_dir: the SavedModel folder to create.
        config: resolved config for `config.json`; its `scale` (default 4),
            `trained` (default True) are kept.
        overwrite: replace an existing non-empty folder.
        steps_trained: this run's generator updates. When `config` names an
            `init_generator` whose `config.json` records its own, they are
            added: `steps_trained` counts every update behind the weights.
        phase: `mse` (SRResNet after phase 1) or `gan`.

    Returns:
        `export_dir` as an absolute path.
    """
    meta = dict(config or {})
    meta.setdefault("scale", 4)
    meta.setdefault("trained", True)
    meta["model"] = "srgan"
    if steps_trained is not None:
        meta["steps_trained"] = int(steps_trained) + initial_steps(meta.get("init_generator") or "")
    if phase is not None:
        meta["phase"] = phase
    meta["signature"] = {"input": "lr float32 [B,H,W,3] in [0,1]", "outputs": {"sr": "[B,sH,sW,3] in [0,1]"}}
    module = _SRServing(generator)
    return write_saved_model(module, module.serve, export_dir, meta, overwrite=overwrite, flatbuffer_output="sr")


def initial_steps(init_generator: str) -> int:
    """Generator updates behind an `--init_generator` export: its `config.json`'s `steps_trained`, 0 when unknown."""
    if not init_generator:
        return 0
    try:
        return int(load_config(os.path.join(init_generator, "config.json")).get("steps_trained", 0))
    except (OSError, ValueError, TypeError):
        return 0


def upscale(generator: keras.Model, lr) -> tf.Tensor:
    """What the exported signature computes, on the Keras model directly."""
    lr = tf.clip_by_value(tf.convert_to_tensor(lr, tf.float32), 0.0, 1.0)
    return sr_output(generator(lr, training=False))
