"""The cross-domain evaluation's small metrics, pure functions that can be checked by hand.

Images are float `[H, W, C]` in [0, 1]; every metric first rounds them to 8-bit
levels (`pipeline.evaluation.quantize`), as the rest of the evaluation does.
"""
from __future__ import annotations

import numpy as np

from pipeline.evaluation import quantize, shave

RING = 8  # px of the image's outer ring, where a border frame shows


def channel_bias(hr: np.ndarray, sr: np.ndarray, border: int = 0) -> np.ndarray:
    """Per-channel mean(SR - HR) in 8-bit levels (both rounded to levels first), `border` px shaved.

    Returns:
        float64 `[C]`.
    """
    return (shave(quantize(sr), border) - shave(quantize(hr), border)).mean(axis=(0, 1))


def ring_mse(hr: np.ndarray, sr: np.ndarray, width: int = RING) -> float:
    """MSE (8-bit levels, both rounded) over the outer `width` px of the full image: where a border frame shows."""
    a, b = quantize(hr), quantize(sr)
    mask = np.ones(a.shape[:2], bool)
    mask[width:-width, width:-width] = False
    return float(np.mean((a[mask] - b[mask]) ** 2))


def psnr_of_mse(mse: float) -> float:
    """10 log10(255^2 / MSE) in dB; inf for 0."""
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ring_psnr(hr: np.ndarray, sr: np.ndarray, width: int = RING) -> float:
    """PSNR (dB) of `ring_mse`."""
    return psnr_of_mse(ring_mse(hr, sr, width))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness of an RGB image, on 8-bit levels.

    rg = R - G, yb = (R + G) / 2 - B;
    C = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2). 0 for grey.

    Args:
        rgb: `[H, W, 3]` float in [0, 1] (rounded to levels first).
    """
    q = quantize(rgb)
    rg = q[..., 0] - q[..., 1]
    yb = 0.5 * (q[..., 0] + q[..., 1]) - q[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def hue_error(truth: np.ndarray, out: np.ndarray, min_saturation: float = 0.2) -> float:
    """Mean absolute circular HSV hue difference (degrees, 0..180) where the truth's saturation > `min_saturation`.

    Both images are rounded to levels first; an achromatic output pixel has hue 0
    (red), as `matplotlib.colors.rgb_to_hsv` defines it. NaN when no pixel qualifies.
    """
    from matplotlib.colors import rgb_to_hsv

    t, o = rgb_to_hsv(quantize(truth) / 255.0), rgb_to_hsv(quantize(out) / 255.0)
    mask = t[..., 1] > min_saturation
    if not mask.any():
        return float("nan")
    d = np.abs(t[..., 0][mask] - o[..., 0][mask]) * 360.0
    return float(np.mean(np.minimum(d, 360.0 - d)))


def is_grey(rgb: np.ndarray) -> bool:
    """True when R = G = B at every pixel after rounding to levels (no colour to learn from)."""
    q = quantize(rgb)
    return bool(np.array_equal(q[..., 0], q[..., 1]) and np.array_equal(q[..., 1], q[..., 2]))
