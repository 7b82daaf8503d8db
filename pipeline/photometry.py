"""Aperture photometry of bright isolated stars: does an upscaled frame keep the stars' flux?

Used by the cross-domain evaluation on raw frames (linear units). Deliberately
simple and deterministic, no fitting:

* stars are found on the TRUE high-resolution frame only: 3x3 local maxima above
  `median + k * sigma` (sigma = 1.4826 * MAD of the frame), at least `isolation`
  px from any other such peak at least as bright, at least the annulus' outer
  radius from the border, and with no pixel of the aperture or annulus at or
  above `saturation` (the display stretch clips there, so no upscaler could
  recover the flux);
* the flux is the sum over the pixels whose centres lie within `r_aperture` of
  the peak, minus that many times the median of the annulus `r_inner <= r <
  r_outer` (local background), measured at the same positions on truth and test.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class Apertures:
    """Aperture and background annulus radii in px (of the frame measured)."""

    r_aperture: float = 4.0
    r_inner: float = 8.0
    r_outer: float = 12.0


DEFAULT_APERTURES = Apertures()


def robust_sigma(values: np.ndarray) -> float:
    """1.4826 x median absolute deviation: the standard deviation for Gaussian noise, robust to stars."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(1.4826 * np.median(np.abs(v - np.median(v))))


def find_stars(
    linear: np.ndarray,
    k: float = 20.0,
    isolation: float = 10.0,
    saturation: Optional[float] = None,
    apertures: Apertures = DEFAULT_APERTURES,
) -> np.ndarray:
    """Peaks of bright isolated unsaturated stars.

    Args:
        linear: `[H, W]` frame in linear units.
        k: detection threshold in robust sigmas above the frame's median.
        isolation: px to the nearest other peak (above threshold) at least as bright.
        saturation: reject stars with any aperture/annulus pixel >= this (None: no limit).
        apertures: radii; stars closer than `r_outer` to the border are dropped.

    Returns:
        int array `[N, 2]` of (row, col), sorted by row then column.
    """
    a = np.nan_to_num(np.asarray(linear, np.float64), nan=-np.inf)
    finite = np.isfinite(a)
    threshold = float(np.median(a[finite])) + k * robust_sigma(a[finite])
    peaks = (a == ndimage.maximum_filter(a, size=3, mode="nearest")) & (a > threshold)
    ys, xs = np.nonzero(peaks)
    values = a[ys, xs]
    edge = int(np.ceil(apertures.r_outer))
    h, w = a.shape
    keep = []
    for i in range(len(ys)):
        y, x = ys[i], xs[i]
        if y < edge or x < edge or y >= h - edge or x >= w - edge:
            continue
        d2 = (ys - y) ** 2 + (xs - x) ** 2
        rivals = (d2 > 0) & (d2 < isolation**2) & (values >= values[i])
        if rivals.any():
            continue
        patch = a[y - edge : y + edge + 1, x - edge : x + edge + 1]
        if not np.isfinite(patch).all() or (saturation is not None and patch.max() >= saturation):
            continue
        keep.append((y, x))
    return np.asarray(keep, dtype=np.int64).reshape(-1, 2)


def aperture_flux(linear: np.ndarray, stars: np.ndarray, apertures: Apertures = DEFAULT_APERTURES) -> np.ndarray:
    """Background-subtracted aperture sums at `stars` (from `find_stars`).

    Args:
        linear: `[H, W]` frame in linear units.
        stars: int `[N, 2]` (row, col), at least `r_outer` px from every border.

    Returns:
        float64 `[N]`: sum within `r_aperture` minus (pixel count) x median of the annulus.
    """
    a = np.asarray(linear, np.float64)
    edge = int(np.ceil(apertures.r_outer))
    dy, dx = np.mgrid[-edge : edge + 1, -edge : edge + 1]
    r = np.hypot(dy, dx)
    in_ap = r <= apertures.r_aperture
    in_ann = (r >= apertures.r_inner) & (r < apertures.r_outer)
    out = np.empty(len(stars))
    for i, (y, x) in enumerate(stars):
        patch = a[y - edge : y + edge + 1, x - edge : x + edge + 1]
        out[i] = patch[in_ap].sum() - in_ap.sum() * np.median(patch[in_ann])
    return out


def relative_flux_errors(truth: np.ndarray, test: np.ndarray, stars: np.ndarray,
                         apertures: Apertures = DEFAULT_APERTURES) -> np.ndarray:
    """(F_test - F_truth) / F_truth per star, signed (negative: flux lost); stars whose true flux
    is not positive are left out."""
    f_true = aperture_flux(truth, stars, apertures)
    f_test = aperture_flux(test, stars, apertures)
    ok = f_true > 0
    return (f_test[ok] - f_true[ok]) / f_true[ok]


def flux_errors(truth: np.ndarray, test: np.ndarray, stars: np.ndarray,
                apertures: Apertures = DEFAULT_APERTURES) -> np.ndarray:
    """|F_test - F_truth| / F_truth per star (see `relative_flux_errors`)."""
    return np.abs(relative_flux_errors(truth, test, stars, apertures))
