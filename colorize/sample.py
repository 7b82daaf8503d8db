"""Sample sheets for the paper's visual inspection (sec. 5.1: results looked at every 1000 iterations).

Each row of a sheet is one image: grey input | prediction | ground truth, the
layout of Guo's training snapshots.
"""
from __future__ import annotations

import numpy as np


def sample_sheet(grey: np.ndarray, pred_rgb: np.ndarray, true_rgb: np.ndarray, gap: int = 2) -> np.ndarray:
    """Lays out rows of (grey | prediction | truth).

    Args:
        grey: `[N, H, W, 1]` in [0, 1].
        pred_rgb: `[N, H, W, 3]` in [0, 1].
        true_rgb: `[N, H, W, 3]` in [0, 1].
        gap: white pixels between panels and rows.

    Returns:
        `[N*H + (N-1)*gap, 3*W + 2*gap, 3]` float32 in [0, 1].
    """
    grey = np.asarray(grey, np.float32)
    n, h, w, _ = grey.shape
    sheet = np.ones((n * h + (n - 1) * gap, 3 * w + 2 * gap, 3), np.float32)
    for i in range(n):
        top = i * (h + gap)
        panels = (np.repeat(grey[i], 3, axis=-1), pred_rgb[i], true_rgb[i])
        for j, panel in enumerate(panels):
            left = j * (w + gap)
            sheet[top : top + h, left : left + w] = np.clip(panel, 0.0, 1.0)
    return sheet


__all__ = ["sample_sheet"]
