"""Colour spaces: YUV as in Guo's colouriser, and BT.601 luma, as TF ops.

Guo (Armour/Automatic-Image-Colorization) works in YUV with U and V shifted by
+0.5 so that a neutral grey has UV = (0.5, 0.5):

    Y = 0.299 R + 0.587 G + 0.114 B
    U = 0.492 (B - Y) + 0.5
    V = 0.877 (R - Y) + 0.5

For RGB in [0, 1], Y is in [0, 1], U in about [0.064, 0.936] and V in about
[-0.115, 1.115]. The inverse here is the exact algebraic inverse (Guo's code
used rounded coefficients 1.14/0.395/0.581/2.033), so RGB -> YUV -> RGB is the
identity up to float rounding.

All functions take channels-last tensors `[..., 3]` (or `[..., 1]` for Y) and
work for any leading shape, under any Keras backend via `keras.ops`.
"""
from __future__ import annotations

from keras import ops

WR, WG, WB = 0.299, 0.587, 0.114
U_SCALE, V_SCALE = 0.492, 0.877
UV_OFFSET = 0.5


def rgb_to_yuv(rgb):
    """RGB `[..., 3]` in [0, 1] -> YUV `[..., 3]` (UV offset by +0.5)."""
    r, g, b = rgb[..., 0:1], rgb[..., 1:2], rgb[..., 2:3]
    y = WR * r + WG * g + WB * b
    u = U_SCALE * (b - y) + UV_OFFSET
    v = V_SCALE * (r - y) + UV_OFFSET
    return ops.concatenate([y, u, v], axis=-1)


def yuv_to_rgb(yuv):
    """YUV `[..., 3]` (UV offset by +0.5) -> RGB `[..., 3]`, not clipped."""
    y = yuv[..., 0:1]
    u = yuv[..., 1:2] - UV_OFFSET
    v = yuv[..., 2:3] - UV_OFFSET
    r = y + v / V_SCALE
    b = y + u / U_SCALE
    g = (y - WR * r - WB * b) / WG
    return ops.concatenate([r, g, b], axis=-1)


def y_uv_to_rgb(y, uv):
    """Joins luminance `[..., 1]` and chroma `[..., 2]` into RGB `[..., 3]`, clipped to [0, 1]."""
    return ops.clip(yuv_to_rgb(ops.concatenate([y, uv], axis=-1)), 0.0, 1.0)


def compose_rgb(y, uv):
    """Joins luminance and predicted chroma into RGB in [0, 1], keeping Y exactly.

    Plain clipping of an out-of-gamut YUV colour (what `data.colour.y_uv_to_rgb`
    does) changes its luminance. Instead each pixel's chroma (UV - 0.5) is
    scaled by the largest factor t in [0, 1] that keeps R, G and B inside
    [0, 1]; since the chroma part of R, G, B has zero luma, the luminance of the
    result is exactly `y` (up to float rounding, ~1e-7) and in-gamut colours are
    untouched. Out-of-gamut pixels are desaturated toward grey of the same
    brightness instead of shifting in brightness and hue.

    Args:
        y: `[..., 1]` in [0, 1] (values outside are clipped first).
        uv: `[..., 2]` with the +0.5 offset.

    Returns:
        RGB `[..., 3]` in [0, 1] with BT.601 luma equal to `y`.
    """
    y = ops.clip(y, 0.0, 1.0)
    grey = ops.concatenate([y, ops.full_like(uv, UV_OFFSET)], axis=-1)
    rgb = yuv_to_rgb(ops.concatenate([y, uv], axis=-1))
    d = rgb - yuv_to_rgb(grey)  # per-channel chroma contribution, zero luma
    eps = 1e-12
    # Headroom of each channel in the direction it moves.
    limit = ops.where(d > eps, (1.0 - y) / ops.maximum(d, eps), ops.where(d < -eps, y / ops.maximum(-d, eps), 1.0))
    t = ops.clip(ops.min(limit, axis=-1, keepdims=True), 0.0, 1.0)
    return ops.clip(y + t * d, 0.0, 1.0)


def rgb_to_luma(rgb):
    """BT.601 luma Y `[..., 1]` of RGB `[..., 3]` (same weights as `rgb_to_yuv`)."""
    return WR * rgb[..., 0:1] + WG * rgb[..., 1:2] + WB * rgb[..., 2:3]


def to_grey(image):
    """Any image `[..., C]` (C = 1 or 3) -> luminance `[..., 1]`."""
    if image.shape[-1] == 1:
        return image
    return rgb_to_luma(image)


__all__ = ["rgb_to_yuv", "yuv_to_rgb", "y_uv_to_rgb", "compose_rgb", "rgb_to_luma", "to_grey"]
