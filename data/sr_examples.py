"""SR training pairs without TensorFlow: HR crops gathered on the host, LR made on the accelerator.

The SRGAN trainer (`srgan.trainer`, Keras `model.fit` on any backend) makes
its pairs from images held in memory (`data.examples.load_images`): a random
`hr_size` square (central for dev) in one of the 8 flips/rotations, and its LR
by `degrade`, with Keras ops inside the train step. Images smaller than
`hr_size` are zero-padded (black sky) around their centre, never upscaled.
`degrade` is also the evaluation's picture LR (`pipeline.evaluation.make_lr`):
antialiased bicubic (`tf.image.resize` under TensorFlow) rounded to 8-bit
levels. The host's random stream is NumPy's, seeded by (seed, step), so a
resumed run continues it.
"""
from __future__ import annotations

import math

import numpy as np
from keras import ops

from data.fits_io import DEFAULT_ASINH_A

#: How LR crops are made from HR (`srgan.config` `degradation`).
DEGRADATIONS = ("bicubic", "block", "mixed")


def _crop(images: np.ndarray, sizes: np.ndarray, i: int, top: int, left: int, hr_size: int) -> np.ndarray:
    """The `hr_size` square at (top, left) of image i, centred in black sky where it is smaller than that.

    (top, left) index the image padded to at least `hr_size` each way (0 along
    a padded axis), so a small image always lands in the middle of its crop.
    """
    h, w = sizes[i]
    image = images[i, :h, :w]
    if h < hr_size or w < hr_size:
        ph, pw = max(0, hr_size - h), max(0, hr_size - w)
        image = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    return image[top:top + hr_size, left:left + hr_size]


def random_hr_crops(rng: np.random.Generator, images: np.ndarray, sizes: np.ndarray, batch_size: int,
                    hr_size: int, degradation: str) -> tuple[np.ndarray, np.ndarray]:
    """One training batch: `(hr [B, hr_size, hr_size, 3] float32 in [0, 1], block [B] float32 0/1)`.

    Args:
        rng: NumPy generator (seeded per step by the caller).
        images, sizes: from `data.examples.load_images` (each at the top left of
            the stack, `sizes` its real extent).
        batch_size: B.
        hr_size: crop side.
        degradation: `bicubic`, `block` or `mixed`; `block[i]` says whether
            example i's LR is the block mean (`mixed`: drawn per example).
    """
    idx = rng.integers(0, len(images), batch_size)
    hr = np.empty((batch_size, hr_size, hr_size, 3), np.float32)
    for k, i in enumerate(idx):
        h, w = np.maximum(sizes[i], hr_size)
        top, left = rng.integers(0, h - hr_size + 1), rng.integers(0, w - hr_size + 1)
        crop = _crop(images, sizes, i, top, left, hr_size)
        ud, lr, rot = rng.integers(0, 2), rng.integers(0, 2), rng.integers(0, 4)
        crop = crop[::-1] if ud else crop
        crop = crop[:, ::-1] if lr else crop
        hr[k] = np.rot90(crop, rot)  # the sky has no preferred orientation
    return hr, _block_flags(rng, batch_size, degradation)


def central_hr_crops(images: np.ndarray, sizes: np.ndarray, hr_size: int, degradation: str,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dev pairs: the central `hr_size` square of each image, and fixed `block` flags (a seeded draw)."""
    hr = np.empty((len(images), hr_size, hr_size, 3), np.float32)
    for k, (h, w) in enumerate(np.maximum(sizes, hr_size)):
        hr[k] = _crop(images, sizes, k, (h - hr_size) // 2, (w - hr_size) // 2, hr_size)
    return hr, _block_flags(np.random.default_rng(seed), len(images), degradation)


def _block_flags(rng: np.random.Generator, n: int, degradation: str) -> np.ndarray:
    if degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {degradation!r}; choose from {DEGRADATIONS}")
    if degradation == "mixed":
        return (rng.random(n) < 0.5).astype(np.float32)
    return np.full(n, 1.0 if degradation == "block" else 0.0, np.float32)


def degrade(hr, block, scale: int, block_linear: bool = False, quantize: bool = True):
    """The LR of each HR crop: antialiased bicubic, or (where `block` is 1) the mean of scale x scale blocks.

    Both rounded to 8-bit levels, as real 8-bit inputs are (`quantize`; False
    keeps float, e.g. to ask how far an SR output is from its input).

    Args:
        hr: `[B, H, W, 3]` in [0, 1], H and W multiples of `scale`.
        block: `[B]` 0/1.
        scale: integer factor.
        block_linear: take the block means in linear units: the crop is read as
            display values of the FITS readers' default stretch (asinh,
            a = `data.fits_io.DEFAULT_ASINH_A`), undone, averaged, stretched
            again (`asinh_linear` / `asinh_display`). That is how a raw frame's
            bigger pixel reaches the network in full mode (its LR is the stretch
            of the summed light, not the mean of stretched values), and the
            operator full mode's consistency step assumes. False: means of the
            display values.

    Returns:
        `[B, H/scale, W/scale, 3]` float32 in [0, 1].
    """
    from common.back_projection import block_mean, downscale

    hr = ops.cast(hr, "float32")
    bicubic = downscale(hr, scale, "bicubic")
    blocks = block_mean(asinh_linear(hr) if block_linear else hr, scale)
    blocks = asinh_display(blocks) if block_linear else blocks
    lr = ops.clip(ops.where(ops.reshape(ops.cast(block, "float32"), (-1, 1, 1, 1)) > 0.5, blocks, bicubic), 0.0, 1.0)
    return ops.round(lr * 255.0) / 255.0 if quantize else lr


def consistent(sr, lr, block, scale: int, block_linear: bool = False):
    """What the pipeline's consistency step (`--consistency auto`) makes of SR outputs, differentiably.

    The trainer's consistency layer (`srgan.config` `train_consistency`): block
    crops are corrected with the block operator (in linear units with
    `block_linear`, as a raw frame in full mode: exact block means, flux
    conserved), bicubic crops with the bicubic operator on display values (as a
    picture). `common.back_projection` is the same step the pipeline runs.

    Args:
        sr: `[B, sH, sW, 3]` generator outputs (clipped to [0, 1] here, as the pipeline clips).
        lr: `[B, H, W, 3]` their inputs in [0, 1].
        block: `[B]` 0/1, which inputs are block means (`degrade`'s flags).
        scale: the factor.
        block_linear: as in `degrade`.

    Returns:
        `[B, sH, sW, 3]` float32 in [0, 1].
    """
    from common.back_projection import back_project

    sr, lr = ops.clip(ops.cast(sr, "float32"), 0.0, 1.0), ops.cast(lr, "float32")
    pictures = ops.clip(back_project(sr, lr, scale, "bicubic"), 0.0, 1.0)
    to_linear = asinh_linear if block_linear else (lambda x: x)
    blocks = ops.clip(back_project(to_linear(sr), to_linear(lr), scale, "block"), 0.0, 1.0)
    blocks = asinh_display(blocks) if block_linear else blocks
    return ops.where(ops.reshape(ops.cast(block, "float32"), (-1, 1, 1, 1)) > 0.5, blocks, pictures)


def asinh_linear(display, a: float = DEFAULT_ASINH_A):
    """Display values in [0, 1] -> linear [0, 1]: the inverse of astropy's `AsinhStretch(a)`, a * sinh(y asinh(1/a))."""
    return a * ops.sinh(ops.cast(display, "float32") * math.asinh(1.0 / a))


def asinh_display(linear, a: float = DEFAULT_ASINH_A):
    """Linear [0, 1] -> display [0, 1]: astropy's `AsinhStretch(a)`, asinh(x / a) / asinh(1 / a)."""
    return ops.arcsinh(ops.cast(linear, "float32") / a) / math.asinh(1.0 / a)


__all__ = ["DEGRADATIONS", "random_hr_crops", "central_hr_crops", "degrade", "consistent", "asinh_linear",
           "asinh_display"]
