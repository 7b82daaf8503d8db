"""Back-projection (Irani & Peleg 1991) in Keras ops: the one implementation of the consistency step.

`pipeline.consistency` applies it to the pipeline's outputs; the SR trainer's
consistency layer (`srgan.config` `train_consistency`, `data.sr_examples.consistent`)
puts the very same step after the generator, so a network can learn what
survives it. Any Keras backend (TensorFlow here, JAX on a lent GPU).

    sr <- sr + up(lr - down(sr))

repeated, with bicubic `up` and `down` the operator that made the LR:

* `bicubic`: antialiased bicubic downscaling (`ops.image.resize(antialias=True)`);
* `block`: the mean of each `scale` x `scale` block (a bigger pixel); a last
  step with nearest-neighbour `up`, for which `down(up(x)) = x` exactly, makes
  the result consistent to float precision.

By linearity the residual `e = lr - down(sr)` evolves as `e <- e - down(up(e))`
on the LR grid (`lr_cycle`, one matrix per image axis), and the total
correction is `up` of the residuals' sum: one `down` and one `up` of the image
whatever the number of steps.
"""
from __future__ import annotations

import functools

import numpy as np
from keras import ops

OPERATORS = ("bicubic", "block")
#: Bicubic up/down is not an exact pair, so the bicubic operator converges geometrically;
#: 10 steps take the consistency well past 60 dB (they cost almost nothing on the LR grid).
ITERATIONS = 10


def _check(operator: str) -> None:
    if operator not in OPERATORS:
        raise ValueError(f"unknown consistency operator {operator!r}; choose from {OPERATORS}")


def block_mean(x, scale: int):
    """`[B, sH, sW, C]` -> `[B, H, W, C]`: means of `scale` x `scale` blocks (a `scale`-times bigger pixel).

    Raises:
        ValueError: a known height or width is not a multiple of `scale`.
    """
    b, h, w, c = (int(n) if n is not None else -1 for n in x.shape)
    if (h > 0 and h % scale) or (w > 0 and w % scale):  # -1: not known until run time
        raise ValueError(f"block_mean: shape {(h, w)} is not a multiple of {scale}")
    return ops.mean(ops.reshape(x, (-1, h // scale, scale, w // scale, scale, c)), axis=(2, 4))


def downscale(x, scale: int, operator: str):
    """`down(x)`: `[B, sH, sW, C]` -> `[B, H, W, C]` float32, not rounded or clipped."""
    _check(operator)
    x = ops.cast(x, "float32")
    if operator == "block":
        return block_mean(x, scale)
    return ops.image.resize(x, (int(x.shape[1]) // scale, int(x.shape[2]) // scale), interpolation="bicubic",
                            antialias=True)


def upscale(x, scale: int):
    """Bicubic `up`: `[B, H, W, C]` -> `[B, sH, sW, C]` (not antialiased, not clipped)."""
    return ops.image.resize(ops.cast(x, "float32"), (int(x.shape[1]) * scale, int(x.shape[2]) * scale),
                            interpolation="bicubic")


@functools.lru_cache(maxsize=64)
def lr_cycle(n: int, scale: int, operator: str) -> np.ndarray:
    """`down(up(.))` along one image axis of `n` LR pixels, as an `[n, n]` float32 matrix.

    Both resizes are separable and linear, so each is a matrix per axis; they are
    read off the very `downscale` and `upscale` used here (applied to an
    identity image along one axis; resizing the other axis by 1 is the
    identity), edges included. Cached per (length, scale, operator).
    """
    _check(operator)
    eye = np.eye(n, dtype=np.float32)[None, :, :, None]
    up = ops.convert_to_numpy(ops.image.resize(eye, (n * scale, n), interpolation="bicubic"))[0, :, :, 0]
    if operator == "block":
        down = np.kron(np.eye(n), np.full((1, scale), 1.0 / scale))
    else:
        big = np.eye(n * scale, dtype=np.float32)[None, :, :, None]
        down = ops.convert_to_numpy(ops.image.resize(big, (n, n * scale), interpolation="bicubic",
                                                     antialias=True))[0, :, :, 0]
    return (down.astype(np.float64) @ up.astype(np.float64)).astype(np.float32)


def back_project(sr, lr, scale: int, operator: str, iterations: int = ITERATIONS):
    """`sr` corrected so that `downscale(sr, scale, operator)` equals `lr`.

    Args:
        sr: `[B, scale*H, scale*W, C]` float, any units (the same as `lr`).
        lr: `[B, H, W, C]` float.
        scale: the upscaling factor.
        operator: `bicubic` or `block`.
        iterations: back-projection steps with bicubic `up`; `block` adds one
            exact step with nearest-neighbour `up` at the end.

    Returns:
        float32 `[B, scale*H, scale*W, C]`, not clipped (a backend tensor).
    """
    _check(operator)
    sr, lr = ops.cast(sr, "float32"), ops.cast(lr, "float32")
    h, w = int(lr.shape[1]), int(lr.shape[2])
    if iterations > 0:
        rows = ops.convert_to_tensor(lr_cycle(h, scale, operator))
        cols = ops.convert_to_tensor(lr_cycle(w, scale, operator))
        e = lr - downscale(sr, scale, operator)
        total = ops.zeros_like(e)
        for _ in range(iterations):
            total = total + e
            e = e - ops.einsum("ij,bjkc,lk->bilc", rows, e, cols)
        sr = sr + upscale(total, scale)
    if operator == "block":
        residual = lr - block_mean(sr, scale)
        sr = sr + ops.repeat(ops.repeat(residual, scale, axis=1), scale, axis=2)
    return sr


__all__ = ["OPERATORS", "ITERATIONS", "block_mean", "downscale", "upscale", "lr_cycle", "back_project"]
