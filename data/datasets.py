"""`tf.data` builders for the colouriser and the SRGAN.

Both read files with `data.io.read_image` (so training sees exactly what the
pipeline sees), decode in parallel (`AUTOTUNE`), and prefetch. Randomness comes
from stateless ops seeded per element by `tf.data.Dataset.random(seed)`, so a
seeded run gives the same batches however many threads decode.

Training mode repeats forever and shuffles; eval mode is one deterministic pass.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from data.colour import rgb_to_yuv
from data.io import ImageReadError, read_rgb
from data.splits import SPLITS, split_files  # re-exported (see __all__)
from data.sr_examples import DEGRADATIONS  # re-exported (see __all__)

AUTOTUNE = tf.data.AUTOTUNE


def _load_rgb(path: tf.Tensor) -> tf.Tensor:
    """Reads one file as float32 RGB `[H, W, 3]` in [0, 1] (grey is repeated)."""

    def _read(p: bytes) -> np.ndarray:
        try:
            return read_rgb(p.decode("utf-8")).astype(np.float32)
        except ImageReadError as e:
            # One corrupt file must not end a long run: it is dropped (see
            # `_readable`) and named in the log each time it comes round.
            logging.warning("skipping unreadable training image: %s", e)
            return np.zeros((0, 0, 3), np.float32)

    image = tf.numpy_function(_read, [path], tf.float32, stateful=False)
    image.set_shape([None, None, 3])
    return image


def _readable(ds: tf.data.Dataset, training: bool) -> tf.data.Dataset:
    """`(path, seed)` -> `(rgb, seed)`, without the files `_load_rgb` could not read.

    Training repeats here, after the filter: a split where nothing decodes
    then ends (the trainers say so) instead of filtering forever.
    """
    ds = ds.map(lambda p, s: (_load_rgb(p), s), num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.filter(lambda image, s: tf.size(image) > 0)
    return ds.repeat() if training else ds


def _augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random flips and 90-degree rotations: the sky has no preferred orientation."""
    s1 = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.stateless_random_flip_left_right(image, s1[0])
    image = tf.image.stateless_random_flip_up_down(image, s1[1])
    k = tf.random.stateless_uniform([], s1[2], minval=0, maxval=4, dtype=tf.int32)
    return tf.image.rot90(image, k)


def _pad_to(image: tf.Tensor, size: int) -> tf.Tensor:
    """Zero-pads (black sky) so both sides are at least `size`, centred."""
    shape = tf.shape(image)
    h = tf.maximum(shape[0], size)
    w = tf.maximum(shape[1], size)
    return tf.image.pad_to_bounding_box(image, (h - shape[0]) // 2, (w - shape[1]) // 2, h, w)


def _files_dataset(paths: Sequence[str], training: bool, seed: int) -> tf.data.Dataset:
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no image files given to the dataset builder")
    ds = tf.data.Dataset.from_tensor_slices(paths)
    if training:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    # One [2]-int64 stateless seed per element, independent of parallelism.
    # Training repeats after decoding (see `_readable`), so each epoch pairs
    # the reshuffled files with the same seed stream: new (file, seed) pairs.
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    return tf.data.Dataset.zip((ds, seeds))


def resize_image(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Antialiased bilinear resize to `height` x `width`, clipped to [0, 1].

    The one resize used for the colouriser's working resolution, in training
    and in the pipeline alike, so both see the same kind of image.
    """
    return tf.clip_by_value(tf.image.resize(image, (height, width), method="bilinear", antialias=True), 0.0, 1.0)


def colorize_example(rgb: tf.Tensor, size: int, training: bool, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """One colouriser pair from an RGB image.

    Eval resizes the whole image to `size` x `size` (what the pipeline does,
    paper sec. 5.2). Training takes a random square crop of 50-100 % of the
    shorter side, resizes it to `size`, and flips/rotates it.

    Returns:
        y `[size, size, 1]` in [0, 1]; uv `[size, size, 2]` with Guo's +0.5 offset.
    """
    if training:
        s_crop, s_aug = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        shape = tf.shape(rgb)
        short = tf.minimum(shape[0], shape[1])
        frac = tf.random.stateless_uniform([], s_crop, 0.5, 1.0)
        side = tf.maximum(tf.cast(tf.cast(short, tf.float32) * frac, tf.int32), 1)
        rgb = tf.image.stateless_random_crop(rgb, tf.stack([side, side, 3]), s_crop)
        rgb = _augment(rgb, s_aug)
    rgb = resize_image(rgb, size, size)
    yuv = rgb_to_yuv(rgb)
    return yuv[..., :1], yuv[..., 1:]


def colorize_dataset(
    paths: Sequence[str],
    size: int = 224,
    batch_size: int = 8,
    training: bool = True,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (grey, chroma) pairs for the colouriser (paper sec. 4.1).

    Args:
        paths: colour image files.
        size: side of the square examples (224 in the paper; any multiple of 16).
        batch_size: examples per batch.
        training: shuffle + augment + repeat forever; else one deterministic pass.
        seed: seeds shuffling and augmentation.

    Returns:
        Dataset of `(y [B, size, size, 1], uv [B, size, size, 2])` float32.
    """
    ds = _readable(_files_dataset(paths, training, seed), training)
    ds = ds.map(
        lambda image, s: colorize_example(image, size, training, s),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(batch_size, drop_remainder=training).prefetch(AUTOTUNE)


def downscale(hr: tf.Tensor, scale: int, quantize: bool = True) -> tf.Tensor:
    """The LR image: antialiased bicubic downscale by `scale`, as the evaluation uses.

    Args:
        hr: `[..., H, W, C]` float in [0, 1], H and W multiples of `scale`.
        scale: integer factor.
        quantize: round to 8-bit levels, as real 8-bit inputs are.

    Returns:
        `[..., H/scale, W/scale, C]` float32 in [0, 1].
    """
    shape = tf.shape(hr)
    h, w = shape[-3] // scale, shape[-2] // scale
    lr = tf.clip_by_value(tf.image.resize(hr, tf.stack([h, w]), method="bicubic", antialias=True), 0.0, 1.0)
    if quantize:
        lr = tf.round(lr * 255.0) / 255.0
    return lr




def block_mean(hr: tf.Tensor, scale: int) -> tf.Tensor:
    """Means of `scale` x `scale` pixel blocks: a detector with pixels `scale` times larger.

    Args:
        hr: `[..., H, W, C]` float, H and W multiples of `scale` (3-D or 4-D).

    Returns:
        `[..., H/scale, W/scale, C]`, same dtype.
    """
    batched = hr if hr.shape.rank == 4 else hr[None]
    lr = tf.nn.avg_pool2d(batched, scale, scale, "VALID")
    return lr if hr.shape.rank == 4 else lr[0]


def degrade(hr: tf.Tensor, scale: int, kind: str, seed: tf.Tensor | None = None) -> tf.Tensor:
    """The LR of one HR crop: antialiased bicubic (`downscale`), 4x4 `block_mean`, or either at random.

    Both are rounded to 8-bit levels, as real 8-bit inputs are. `mixed` draws
    one of the two per example from `seed` (bicubic when no seed is given).
    """
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; choose from {DEGRADATIONS}")
    bicubic = downscale(hr, scale)
    if kind == "bicubic" or (kind == "mixed" and seed is None):
        return bicubic
    block = tf.round(tf.clip_by_value(block_mean(hr, scale), 0.0, 1.0) * 255.0) / 255.0
    if kind == "block":
        return block
    pick = tf.random.stateless_uniform([], seed) < 0.5
    return tf.where(pick, block, bicubic)


def sr_example(rgb: tf.Tensor, hr_size: int, scale: int, training: bool, seed: tf.Tensor,
               degradation: str = "bicubic") -> tuple[tf.Tensor, tf.Tensor]:
    """One SR pair: an `hr_size` crop (random in training, central in eval) and its LR (`degrade`)."""
    rgb = _pad_to(rgb, hr_size)
    s_crop, s_aug, s_deg = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    if training:
        hr = tf.image.stateless_random_crop(rgb, [hr_size, hr_size, 3], s_crop)
        hr = _augment(hr, s_aug)
    else:
        shape = tf.shape(rgb)
        top = (shape[0] - hr_size) // 2
        left = (shape[1] - hr_size) // 2
        hr = rgb[top : top + hr_size, left : left + hr_size, :]
    hr = tf.ensure_shape(hr, [hr_size, hr_size, 3])
    return degrade(hr, scale, degradation, s_deg), hr


def sr_dataset(
    paths: Sequence[str],
    hr_size: int = 96,
    scale: int = 4,
    batch_size: int = 16,
    training: bool = True,
    seed: int = 0,
    degradation: str = "bicubic",
) -> tf.data.Dataset:
    """Batches of (LR, HR) crops for the SRGAN (paper sec. 4.2: 96 px HR, 24 px LR).

    `degradation` (see `degrade`): how LR is made from HR; `mixed` is drawn per
    example and seed, so a dev pass with a fixed seed always gives the same pairs.

    Images smaller than `hr_size` are zero-padded (black sky) rather than
    upscaled, so HR targets are never interpolated.

    Returns:
        Dataset of `(lr [B, hr/scale, hr/scale, 3], hr [B, hr, hr, 3])` float32 in [0, 1].
    """
    if hr_size % scale:
        raise ValueError(f"hr_size {hr_size} must be a multiple of scale {scale}")
    ds = _readable(_files_dataset(paths, training, seed), training)
    ds = ds.map(
        lambda image, s: sr_example(image, hr_size, scale, training, s, degradation),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(batch_size, drop_remainder=training).prefetch(AUTOTUNE)


__all__ = ["SPLITS", "split_files", "resize_image", "colorize_example", "colorize_dataset", "downscale", "block_mean",
           "degrade", "DEGRADATIONS", "sr_example",
           "sr_dataset", "AUTOTUNE"]
