"""The colouriser's loss (paper sec. 4.1) and metrics, as pure `keras.ops` functions.

The paper (after Guo) averages three squared errors on the chroma: plain,
after a 3x3 Gaussian blur and after a 5x5 Gaussian blur, so that colour is
right at several scales and the output is less patchy.

Differences from Guo's code (Armour/Automatic-Image-Colorization):

* Means, not sums. Guo's `reduce_sum` made the loss (and so the effective
  learning rate of plain SGD, and the numbers logged) grow with batch size
  and image size. Here each term is the mean over batch, pixels and the two
  channels, so values compare across batch sizes and resolutions. (Adam is
  almost invariant to a constant loss scale, so training is barely affected.)
* Per-channel blur. Guo's blur kernel had shape (k, k, 2, 2) with the Gaussian
  in every input/output pair, so each blurred channel was blur(U + V) and the
  blurred terms only constrained U + V. Here U and V are blurred separately
  (a depthwise convolution), which is what "the error after a Gaussian blur"
  means.
* Borders are zero-padded ('same'), as in Guo's `conv2d(..., padding='SAME')`;
  prediction and target are padded alike.

Optional extension (the paper's future work against washed-out colours):
`low_saturation_weight` (lambda) multiplies each pixel's squared errors by

    w = 1 + lambda * max(0, |c_true| - |c_pred|),     c = UV - 0.5,

i.e. errors weigh more where the target is more strongly coloured than the
prediction (|c| is the chroma magnitude in UV units, at most ~0.62). `w` is a
constant for the gradient (stopped), so it re-weights pixels without
rewarding saturation for its own sake. lambda = 0 is exactly the paper's loss.
"""
from __future__ import annotations

import numpy as np
from keras import ops

from data.colour import UV_OFFSET

# Guo's kernels (config.py): binomial 3x3 and the classic 5x5 (sum 273).
GAUSS_3X3 = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16.0
GAUSS_5X5 = (
    np.array(
        [
            [1, 4, 7, 4, 1],
            [4, 16, 26, 16, 4],
            [7, 26, 41, 26, 7],
            [4, 16, 26, 16, 4],
            [1, 4, 7, 4, 1],
        ],
        dtype=np.float64,
    )
    / 273.0
)


def gaussian_blur(x, kernel: np.ndarray):
    """Blurs each channel of `x` `[B, H, W, C]` separately with a 2-D `kernel`, zero-padded ('same')."""
    channels = x.shape[-1]
    k = np.repeat(np.asarray(kernel, np.float32)[:, :, None, None], channels, axis=2)  # [k, k, C, 1]
    return ops.depthwise_conv(x, ops.convert_to_tensor(k, dtype=x.dtype), strides=1, padding="same")


def saturation_weight(uv_true, uv_pred, low_saturation_weight: float):
    """Per-pixel weight `[B, H, W, 1]` favouring under-saturated predictions (see module doc)."""
    c_true = ops.sqrt(ops.sum(ops.square(uv_true - UV_OFFSET), axis=-1, keepdims=True))
    c_pred = ops.sqrt(ops.sum(ops.square(uv_pred - UV_OFFSET), axis=-1, keepdims=True) + 1e-12)
    deficit = ops.relu(c_true - c_pred)
    return ops.stop_gradient(1.0 + low_saturation_weight * deficit)


def blur_loss_terms(uv_true, uv_pred, low_saturation_weight: float = 0.0):
    """The three mean squared errors of the paper's loss.

    Args:
        uv_true: target chroma `[B, H, W, 2]` (UV offset by +0.5).
        uv_pred: predicted chroma, same shape.
        low_saturation_weight: lambda of the optional re-weighting (0 = off).

    Returns:
        `(plain, blur3, blur5)`: scalar means over batch, pixels and channels.
    """
    uv_true = ops.convert_to_tensor(uv_true)
    uv_pred = ops.convert_to_tensor(uv_pred, dtype=uv_true.dtype)
    weight = None
    if low_saturation_weight:
        weight = saturation_weight(uv_true, uv_pred, low_saturation_weight)

    def term(a, b):
        e = ops.square(a - b)
        if weight is not None:
            e = e * weight
        return ops.mean(e)

    plain = term(uv_true, uv_pred)
    blur3 = term(gaussian_blur(uv_true, GAUSS_3X3), gaussian_blur(uv_pred, GAUSS_3X3))
    blur5 = term(gaussian_blur(uv_true, GAUSS_5X5), gaussian_blur(uv_pred, GAUSS_5X5))
    return plain, blur3, blur5


def colorize_loss(uv_true, uv_pred, low_saturation_weight: float = 0.0):
    """The paper's colouriser loss: mean of the plain, 3x3- and 5x5-blurred squared errors.

    Args:
        uv_true: target chroma `[B, H, W, 2]` (UV offset by +0.5, as `data.colour`).
        uv_pred: predicted chroma, same shape.
        low_saturation_weight: lambda >= 0 of the optional re-weighting toward
            pixels the prediction leaves greyer than the target (0 = the paper's loss).

    Returns:
        Scalar loss (batch mean).
    """
    if low_saturation_weight < 0:
        raise ValueError(f"low_saturation_weight must be >= 0, got {low_saturation_weight}")
    plain, blur3, blur5 = blur_loss_terms(uv_true, uv_pred, low_saturation_weight)
    return (plain + blur3 + blur5) / 3.0


def uv_mse(uv_true, uv_pred):
    """Plain mean squared error of the chroma `[B, H, W, 2]` (scalar, batch mean)."""
    uv_true = ops.convert_to_tensor(uv_true)
    return ops.mean(ops.square(uv_true - ops.convert_to_tensor(uv_pred, dtype=uv_true.dtype)))


__all__ = ["colorize_loss", "blur_loss_terms", "uv_mse", "gaussian_blur", "GAUSS_3X3", "GAUSS_5X5"]
