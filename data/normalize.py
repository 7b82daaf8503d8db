"""The one normalisation shared by training, evaluation and the pipeline.

Every image inside this project is float32 in [0, 1], channels last. Models do
any further scaling they need (VGG mean subtraction, [-1, 1] for TensorLayer
weights) inside themselves, so callers never have to know.
"""
from __future__ import annotations

import numpy as np


def normalize(image: np.ndarray) -> np.ndarray:
    """Maps an image of any pixel dtype to float32 in [0, 1].

    Integer images are divided by their dtype's maximum (uint8 by 255, uint16
    by 65535), so a 16-bit frame keeps its precision. Float images are taken as
    already in [0, 1] and clipped; NaN becomes 0.

    Args:
        image: `[H, W]` or `[H, W, C]` array, integer or float, or bool.

    Returns:
        float32 array of the same shape with values in [0, 1].
    """
    a = np.asarray(image)
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        if info.min < 0:
            # Signed integer pixels (rare in PNG/TIFF): shift into [0, range].
            return ((a.astype(np.float64) - info.min) / (info.max - info.min)).astype(np.float32)
        return (a.astype(np.float64) / info.max).astype(np.float32)
    out = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 [0, 255], rounded to nearest (not truncated)."""
    a = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0)
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint16 [0, 65535], rounded to nearest."""
    a = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    return np.round(np.clip(a, 0.0, 1.0) * 65535.0).astype(np.uint16)
