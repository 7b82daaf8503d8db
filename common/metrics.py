"""Image quality metrics, as pure batch-mean functions `(y_true, y_pred) -> scalar`.

Used by the trainers' dev evaluation (`srgan.trainer`) and by the pipeline's
(`pipeline.evaluation`), so it lives below both.

Conventions (mission.md, "Metric conventions"): PSNR = 10 log10(max^2 / MSE)
per image, then the batch mean; SSIM with an 11x11 Gaussian window, sigma 1.5,
K1 0.01, K2 0.03. Everything is computed in floating point; the paper's own
script subtracted uint8 arrays, so its squared differences wrapped modulo 256
and its "MSE" was not the real error.

MSE and PSNR are Keras ops (any backend: the SR trainer's dev check runs
under JAX too); SSIM is TensorFlow's and imports it when called.
"""
from __future__ import annotations

import numpy as np
from keras import ops

# PSNR of identical images is infinite; cap the MSE so batch means stay finite
# (1e-10 on a [0, 1] scale is 100 dB).
_MIN_MSE = 1e-10


def mse(y_true, y_pred):
    """Mean squared error over all pixels and channels, batch mean. Any shape; a float32 scalar tensor."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    return ops.mean(ops.square(y_true - y_pred))


def psnr(y_true, y_pred, max_val: float = 1.0):
    """Per-image PSNR in dB, averaged over the batch.

    Args:
        y_true, y_pred: `[B, H, W, C]` float, values in [0, max_val].
        max_val: the peak value (1.0 for [0, 1] images, 255 for 8-bit levels).

    Returns:
        Scalar float32 tensor: mean over images of 10 log10(max_val^2 / MSE_image),
        with MSE floored at 1e-10 * max_val^2 (at most 100 dB per image).
    """
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    per_image = ops.mean(ops.square(y_true - y_pred), axis=[1, 2, 3])
    per_image = ops.maximum(per_image, _MIN_MSE * max_val**2)
    return ops.mean(10.0 * ops.log(max_val**2 / per_image) / np.log(10.0))


def ssim(y_true, y_pred, max_val: float = 1.0):
    """Per-image SSIM (Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03), batch mean.

    Args:
        y_true, y_pred: `[B, H, W, C]` float in [0, max_val]; H, W >= 11.

    Returns:
        Scalar float32 tensor in [-1, 1]; 1 for identical images.
    """
    import tensorflow as tf

    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    per_image = tf.image.ssim(y_true, y_pred, max_val=max_val, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)
    return tf.reduce_mean(per_image)


def luma_bt601(rgb) -> np.ndarray:
    """BT.601 studio-range luma of RGB in [0, 1], in 8-bit levels [16, 235].

    The Y the SR literature reports (MATLAB `rgb2ycbcr`):
    Y = 16 + 65.481 R + 128.553 G + 24.966 B.

    Args:
        rgb: `[..., 3]` float in [0, 1].

    Returns:
        `[..., 1]` float64.
    """
    rgb = np.asarray(rgb, dtype=np.float64)
    return (16.0 + rgb @ np.array([65.481, 128.553, 24.966]))[..., None]
