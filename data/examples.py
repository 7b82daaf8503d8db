"""Colouriser examples without TensorFlow: images in memory, random crops, resize on the accelerator.

The colouriser's trainer (`colorize.trainer`) makes its examples with Keras
ops only, so they run on any Keras backend: a crop of 50-100 % of the shorter
side in one of the 8 flips/rotations (training) or the whole image
(evaluation), resized with antialiased bilinear (`resize_image`, the resize the
pipeline gives the colouriser's input) and split into Y and UV. Crop, flip and
resize are one batched product with per-image interpolation matrices
(`crop_resize`, equal to `resize_image` of the cropped, flipped image).

Brightness and contrast (`random_crops(..., brightness, contrast)`, off by
default) keep colours true: they act on the crop's RGB as one linear stretch of
all three channels, `rgb' = clip(gain * (m + c * (rgb - m)))` with m the crop's
mean luma, as another display stretch of the same data would. So Y changes
and U, V (B - Y, R - Y) scale with it: the hue never moves and the example's Y
and UV remain those of a real RGB image. (Changing Y alone would pair the new
luminance with the old chroma, a different, more or less saturated colour.)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from absl import logging
from keras import ops

from data.colour import rgb_to_luma, rgb_to_yuv
from data.io import ImageReadError, read_rgb

# Columns of a crop-parameter row: top, left, height, width (input pixels),
# then flip up-down, flip left-right, transpose (0/1), then RGB gain and contrast (1 = unchanged).
N_CROP_PARAMS = 9


def load_images(paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Reads images into one array, each at the top left, zero-padded (black sky) to the largest.

    Unreadable files are skipped with a warning (a corrupt file must not end a long run). float16
    halves the memory of float32; its rounding (under 1/4000) is far below an 8-bit level.

    Args:
        paths: image files (anything `data.io.read_image` reads).

    Returns:
        images `[N, H, W, 3]` float16 in [0, 1] (grey repeated to RGB) and
        sizes `[N, 2]` int32 (height, width of each image).

    Raises:
        ValueError: no file could be read.
    """
    arrays = []
    for path in paths:
        try:
            arrays.append(read_rgb(path))
        except ImageReadError as e:
            logging.warning("skipping unreadable image: %s", e)
    if not arrays:
        raise ValueError(f"none of the {len(paths)} image file(s) could be read")
    sizes = np.array([a.shape[:2] for a in arrays], np.int32)
    images = np.zeros((len(arrays), *sizes.max(axis=0), 3), np.float16)
    for i, a in enumerate(arrays):
        images[i, : a.shape[0], : a.shape[1]] = a
    return images, sizes


def random_crops(rng: np.random.Generator, sizes: np.ndarray, brightness: float = 0.0,
                 contrast: float = 0.0) -> np.ndarray:
    """Crop parameters `[B, 9]` float32 for training (see `N_CROP_PARAMS`).

    A square of 50-100 % of each image's shorter side at a random place, and
    one of the 8 flips/rotations (the sky has no preferred orientation). Then a gain in [1 - brightness,
    1 + brightness] and a contrast in [1 - contrast, 1 + contrast] (drawn only
    when non-zero, so the default stream is the crops' alone).

    Args:
        rng: NumPy generator.
        sizes: `[B, 2]` (height, width) of the images.
        brightness: half-width of the gain's range, in [0, 1).
        contrast: half-width of the contrast's range, in [0, 1).
    """
    b = len(sizes)
    short = sizes.min(axis=1)
    side = np.maximum((short * rng.uniform(0.5, 1.0, b)).astype(np.int64), 1)
    top = rng.integers(0, sizes[:, 0] - side + 1)
    left = rng.integers(0, sizes[:, 1] - side + 1)
    flips = rng.integers(0, 2, (b, 3))
    gain = rng.uniform(1.0 - brightness, 1.0 + brightness, b) if brightness else np.ones(b)
    stretch = rng.uniform(1.0 - contrast, 1.0 + contrast, b) if contrast else np.ones(b)
    return np.column_stack([top, left, side, side, flips, gain, stretch]).astype(np.float32)


def whole_images(sizes: np.ndarray) -> np.ndarray:
    """Crop parameters `[B, 9]` float32 that take each whole image, unflipped, unchanged (evaluation)."""
    b = len(sizes)
    return np.column_stack([np.zeros((b, 2)), sizes, np.zeros((b, 3)), np.ones((b, 2))]).astype(np.float32)


def stretch_rgb(rgb, gain, contrast):
    """`clip(gain * (m + contrast * (rgb - m)), 0, 1)` per image, m its mean luma (see module doc).

    Args:
        rgb: `[B, H, W, 3]` in [0, 1].
        gain, contrast: `[B]`; 1 and 1 leave the image as it is.
    """
    m = ops.mean(rgb_to_luma(rgb), axis=(1, 2, 3), keepdims=True)
    g = ops.reshape(gain, (-1, 1, 1, 1))
    c = ops.reshape(contrast, (-1, 1, 1, 1))
    same = ops.logical_and(ops.equal(g, 1.0), ops.equal(c, 1.0))  # exactly the input (m + (x - m) may round)
    return ops.where(same, rgb, ops.clip(g * (m + c * (rgb - m)), 0.0, 1.0))


def _resize_weights(start, length, flip, in_len: int, out_len: int):
    """`[B, out_len, in_len]` rows of antialiased bilinear weights over `[start, start + length)`.

    Output pixel i's centre (i + 0.5) maps to `start + (i + 0.5) * length /
    out_len` in the input; the triangle kernel is widened by the scale when
    shrinking (antialiasing) and weights are renormalised over the crop, as in
    TensorFlow's `scale_and_translate`. `flip` (0/1) mirrors the output.
    """
    scale = length / out_len  # input pixels per output pixel, [B]
    support = ops.maximum(scale, 1.0)
    i = ops.arange(out_len, dtype="float32") + 0.5
    i = ops.where(flip[:, None] > 0.5, out_len - i[None, :], i[None, :])  # [B, S]
    centre = start[:, None] + i * scale[:, None]
    j = ops.arange(in_len, dtype="float32") + 0.5  # [N]
    dist = ops.abs(j[None, None, :] - centre[:, :, None]) / support[:, None, None]
    inside = ops.logical_and(j[None, :] > start[:, None], j[None, :] < (start + length)[:, None])  # [B, N]
    w = ops.relu(1.0 - dist) * ops.cast(inside, "float32")[:, None, :]
    return w / ops.maximum(ops.sum(w, axis=-1, keepdims=True), 1e-12)


def crop_resize(images, params, size: int):
    """Crops, flips and resizes a batch in one product (see `_resize_weights`).

    Args:
        images: `[B, H, W, 3]` in [0, 1] (any float dtype).
        params: `[B, 7]` rows from `random_crops` or `whole_images`.
        size: output side.

    Returns:
        `[B, size, size, 3]` float32 in [0, 1].
    """
    x = ops.cast(images, "float32")
    params = ops.cast(params, "float32")
    rows = _resize_weights(params[:, 0], params[:, 2], params[:, 4], int(x.shape[1]), size)
    cols = _resize_weights(params[:, 1], params[:, 3], params[:, 5], int(x.shape[2]), size)
    out = ops.einsum("bsh,bhwc->bswc", rows, x)
    out = ops.einsum("btw,bswc->bstc", cols, out)
    out = ops.where(params[:, 6, None, None, None] > 0.5, ops.transpose(out, (0, 2, 1, 3)), out)
    return ops.clip(out, 0.0, 1.0)


def resize_image(image, height: int, width: int):
    """Antialiased bilinear resize to `height` x `width`, clipped to [0, 1].

    The one resize to the colouriser's working resolution: the pipeline's
    (`pipeline.inference.to_working_size`) and the evaluation's, which
    `crop_resize` reproduces for training crops.

    Args:
        image: `[B, H, W, C]` float in [0, 1].
        height, width: output size.

    Returns:
        `[B, height, width, C]` float32 in [0, 1] (a tensor of the Keras backend).
    """
    resized = ops.image.resize(ops.cast(image, "float32"), (height, width), interpolation="bilinear", antialias=True)
    return ops.clip(resized, 0.0, 1.0)


def make_examples(images, params, size: int):
    """`(y [B, size, size, 1] in [0, 1], uv [B, size, size, 2] with Guo's +0.5 offset)` of the crops in `params`.

    Rows of `params` with N_CROP_PARAMS columns also apply their gain and contrast (`stretch_rgb`).
    """
    rgb = crop_resize(images, params, size)
    if params.shape[-1] == N_CROP_PARAMS:
        p = ops.cast(params, "float32")
        rgb = stretch_rgb(rgb, p[:, 7], p[:, 8])
    yuv = rgb_to_yuv(rgb)
    return yuv[..., :1], yuv[..., 1:]


__all__ = ["N_CROP_PARAMS", "load_images", "random_crops", "whole_images", "crop_resize", "resize_image", "stretch_rgb",
           "make_examples"]
