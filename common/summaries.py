"""TensorBoard scalars and images written with core TensorFlow only.

`tf.summary.scalar` / `tf.summary.image` live in the `tensorboard` package,
which `tensorflow-cpu` does not install. The event files written here use the
same plugin metadata as those functions, so `tensorboard --logdir RUN` (after
`pip install tensorboard`) shows them, while training needs no extra package.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin: str) -> summary_pb2.SummaryMetadata:
    md = summary_pb2.SummaryMetadata()
    md.plugin_data.plugin_name = plugin
    # Version-0 plugin data of the scalar and image plugins is empty.
    md.plugin_data.content = b""
    return md


def write_scalars(writer: Optional[tf.summary.SummaryWriter], values: Mapping[str, float], step: int) -> None:
    """Writes `name -> value` scalars at `step` (no-op when `writer` is None)."""
    if writer is None:
        return
    with writer.as_default():
        for name, value in values.items():
            tf.summary.write(name, tf.constant(float(value), tf.float32), step=int(step), metadata=_metadata("scalars"))


def write_image(writer: Optional[tf.summary.SummaryWriter], name: str, image: np.ndarray, step: int) -> None:
    """Writes one float image `[H, W, 3]` in [0, 1] at `step` (no-op when `writer` is None)."""
    if writer is None:
        return
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    png = tf.image.encode_png(pixels)
    h, w = pixels.shape[:2]
    # The image plugin's layout: [width, height, png...] as strings.
    tensor = tf.stack([tf.as_string(w), tf.as_string(h), png])
    with writer.as_default():
        tf.summary.write(name, tensor, step=int(step), metadata=_metadata("images"))


__all__ = ["write_scalars", "write_image"]
