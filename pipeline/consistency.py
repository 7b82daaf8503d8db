"""Consistency with the input: an SR output that, degraded again, gives back its input.

A super-resolved image `sr` of an input `lr` is *consistent* when
`down(sr) == lr` for the operator `down` that made (or could have made) `lr`
from the sky. Back-projection (Irani & Peleg 1991) enforces it:

    sr <- sr + up(lr - down(sr))

repeated. The network's fine detail survives (it is in the null space of
`down`); what cannot survive is everything that contradicts the input: a colour
cast, a border frame, the wrong brightness of a star. Operators:

* `bicubic`: antialiased bicubic downscaling (PIL / `tf.image.resize(antialias=True)`),
  how pictures (PNG/JPEG, faithful mode) are assumed to have been made;
* `block`: the mean of each `scale` x `scale` block, a detector with bigger
  pixels: raw frames (FITS). Done in the frame's **linear units**, so flux is
  conserved: the output's block sums equal the input's pixels. Its last step
  uses nearest-neighbour `up`, for which `down(up(x)) = x` exactly, so the
  result is consistent to float precision.

All arrays are float32 `[H, W, C]` (LR) and `[scale*H, scale*W, C]` (SR).
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import tensorflow as tf

from data.datasets import block_mean
from pipeline.inference import sr_output

OPERATORS = ("bicubic", "block")
MODES = ("auto", "bicubic", "block", "none")
#: Back-projection steps. Bicubic up/down is not an exact pair, so the bicubic
#: operator converges geometrically; 10 steps take the consistency well past 60 dB.
#: They run on the LR grid (`back_project`), so more steps cost almost nothing.
ITERATIONS = 10


def degrade(sr: np.ndarray, scale: int, operator: str) -> np.ndarray:
    """`down(sr)`: `[sH, sW, C]` -> `[H, W, C]` float32 (not rounded, not clipped)."""
    if operator not in OPERATORS:
        raise ValueError(f"unknown consistency operator {operator!r}; choose from {OPERATORS}")
    x = tf.convert_to_tensor(np.asarray(sr, np.float32)[None])
    lr = block_mean(x, scale) if operator == "block" else _bicubic_down(x, scale)
    return np.asarray(lr[0])


def _bicubic_down(x: tf.Tensor, scale: int) -> tf.Tensor:
    shape = tf.shape(x)
    return tf.image.resize(x, tf.stack([shape[1] // scale, shape[2] // scale]), method="bicubic", antialias=True)


def _bicubic_up(x: np.ndarray, scale: int) -> np.ndarray:
    h, w = x.shape[:2]
    return np.asarray(tf.image.resize(x[None], (h * scale, w * scale), method="bicubic")[0])


@functools.lru_cache(maxsize=32)
def lr_cycle(n: int, scale: int, operator: str) -> np.ndarray:
    """`down(up(.))` along one image axis of `n` LR pixels, as an `[n, n]` float32 matrix.

    Both resizes are separable and linear, so each is a matrix per axis; they are
    read off the very operators `degrade` and `_bicubic_up` use (applied to an
    identity image along one axis; resizing the other axis by 1 is the identity),
    edges included. Cached: one per (axis length, scale, operator).
    """
    eye = tf.eye(n, dtype=tf.float64)[None, :, :, None]
    up = tf.image.resize(eye, (n * scale, n), method="bicubic")[0, :, :, 0].numpy()  # [sn, n]
    if operator == "block":
        down = np.kron(np.eye(n), np.full((1, scale), 1.0 / scale))  # [n, sn]
    else:
        big = tf.eye(n * scale, dtype=tf.float64)[None, :, :, None]
        down = tf.image.resize(big, (n, n * scale), method="bicubic", antialias=True)[0, :, :, 0].numpy()
    return (down @ up).astype(np.float32)


def back_project(sr: np.ndarray, lr: np.ndarray, scale: int, operator: str, iterations: int = ITERATIONS) -> np.ndarray:
    """`sr` corrected so that `degrade(sr, scale, operator)` equals `lr`.

    The result is that of `iterations` back-projection steps
    `sr <- sr + up(lr - down(sr))` with bicubic `up`, computed without running
    them at the SR resolution: by linearity the residual `e = lr - down(sr)`
    evolves as `e <- e - down(up(e))` on the LR grid (`lr_cycle`, one matrix per
    axis), and the total correction is `up` of the residuals' sum. So it costs
    one `down` and one `up` of the image whatever `iterations` is.

    Args:
        sr: `[scale*H, scale*W, C]` float, any units (the same as `lr`).
        lr: `[H, W, C]` float.
        scale: the upscaling factor.
        operator: `bicubic` or `block` (see module docstring).
        iterations: back-projection steps with bicubic `up`; `block` adds one
            exact step with nearest-neighbour `up` at the end.

    Returns:
        float32 `[scale*H, scale*W, C]`, not clipped (values may leave [0, 1]
        where the network contradicted the input most).
    """
    sr = np.array(sr, np.float32)
    lr = np.asarray(lr, np.float32)
    if sr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale) or sr.shape[2:] != lr.shape[2:]:
        raise ValueError(f"SR shape {sr.shape} is not {scale}x the input's {lr.shape}")
    if iterations > 0:
        h, w = lr.shape[:2]
        rows, cols = lr_cycle(h, scale, operator), lr_cycle(w, scale, operator)
        # Channels first, so down(up(e)) is rows @ e @ cols.T per channel (batched matmul).
        # TensorFlow's matmul, not NumPy's: OpenBLAS threads beside TensorFlow's
        # thread pool ran 25x slower than alone.
        rows, cols = tf.constant(rows[None]), tf.constant(cols[None])
        e = tf.transpose(tf.constant(lr - degrade(sr, scale, operator)), (2, 0, 1))
        total = tf.zeros_like(e)
        for _ in range(iterations):
            total += e
            e -= tf.matmul(tf.matmul(rows, e), cols, transpose_b=True)
        sr += _bicubic_up(tf.transpose(total, (1, 2, 0)).numpy(), scale)
    if operator == "block":
        sr += np.repeat(np.repeat(lr - degrade(sr, scale, operator), scale, axis=0), scale, axis=1)
    return sr


def operator_for(mode: str, is_raw_frame: bool) -> Optional[str]:
    """The operator a `--consistency` mode means for one input (None: no correction).

    `auto` is `block` for raw frames (FITS: bigger pixels, in linear units) and
    `bicubic` for pictures.
    """
    if mode not in MODES:
        raise ValueError(f"unknown consistency mode {mode!r}; choose from {MODES}")
    if mode == "none":
        return None
    if mode == "auto":
        return "block" if is_raw_frame else "bicubic"
    return mode


def consistent_display(sr: np.ndarray, lr: np.ndarray, scale: int, operator: str,
                       stretch=None, lr_linear: Optional[np.ndarray] = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Back-projection of a display-range SR output, in linear units when a stretch is given.

    Args:
        sr: `[sH, sW, C]` the network's output in [0, 1] (display values).
        lr: `[H, W, C]` its input in [0, 1] (display values).
        scale: the factor.
        operator: `bicubic` or `block`.
        stretch: a `data.io.Stretch` that made the display values from linear
            data (FITS). Then the correction is done in linear units: the SR is
            un-stretched, corrected against the linear input, re-stretched.
        lr_linear: `[H, W, C]` the input in linear units (the raw frame, not
            clipped by the display interval); default: `stretch.invert(lr)`.

    Returns:
        (display `[sH, sW, C]` float32 in [0, 1], linear `[sH, sW, C]` float32 or
        None without a stretch). The linear result is what is consistent (and
        flux-conserving, for `block`); the display one is it stretched and clipped.
    """
    if stretch is None:
        return np.clip(back_project(sr, lr, scale, operator), 0.0, 1.0), None
    if lr_linear is None:
        lr_linear = stretch.invert(lr)
    linear = back_project(stretch.invert(sr), lr_linear, scale, operator)
    shape = linear.shape
    display = stretch.apply(linear.reshape(shape[0], -1)).reshape(shape)
    return display, linear


def consistency_psnr(sr: np.ndarray, lr: np.ndarray, scale: int, operator: str, peak: float = 1.0) -> float:
    """PSNR (dB) of `degrade(sr)` against `lr`, with `peak` the value range (1 for [0, 1] images).

    Capped at 200 dB when they are equal.
    """
    err = float(np.mean((degrade(sr, scale, operator).astype(np.float64) - np.asarray(lr, np.float64)) ** 2))
    return 200.0 if err <= peak**2 * 1e-20 else float(10 * np.log10(peak**2 / err))


def consistent_upscale(upscale_fn, lr: np.ndarray, operator: str = "bicubic", stretch=None,
                       lr_linear: Optional[np.ndarray] = None) -> np.ndarray:
    """`upscale_fn(lr)` (clipped to [0, 1]) made consistent with `lr`: what the pipeline outputs.

    Args:
        upscale_fn: `[H, W, C]` in [0, 1] -> `[sH, sW, C]` (e.g. an exported SR model).
        lr: `[H, W, C]` display values in [0, 1].
        operator, stretch, lr_linear: see `consistent_display`.

    Returns:
        float32 `[sH, sW, C]` in [0, 1] (display values).
    """
    lr = np.asarray(lr, np.float32)
    sr = sr_output(upscale_fn(lr))
    scale = sr.shape[0] // lr.shape[0]
    return consistent_display(sr, lr, scale, operator, stretch, lr_linear)[0]
