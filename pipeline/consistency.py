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

All arrays are float32 `[H, W, C]` (LR) and `[scale*H, scale*W, C]` (SR); the step itself is
`common.back_projection` (Keras ops), the one the SR trainer's consistency layer uses too.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from common import back_projection as projection
from common.back_projection import ITERATIONS, OPERATORS, downscale, upscale
from pipeline.inference import sr_output

MODES = ("auto", "bicubic", "block", "none")


def degrade(sr: np.ndarray, scale: int, operator: str) -> np.ndarray:
    """`down(sr)`: `[sH, sW, C]` -> `[H, W, C]` float32 (not rounded, not clipped)."""
    return np.asarray(downscale(np.asarray(sr, np.float32)[None], scale, operator)[0])


def _bicubic_up(x: np.ndarray, scale: int) -> np.ndarray:
    return np.asarray(upscale(np.asarray(x, np.float32)[None], scale)[0])


def back_project(sr: np.ndarray, lr: np.ndarray, scale: int, operator: str, iterations: int = ITERATIONS) -> np.ndarray:
    """`sr` corrected so that `degrade(sr, scale, operator)` equals `lr` (`common.back_projection`).

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
    sr = np.asarray(sr, np.float32)
    lr = np.asarray(lr, np.float32)
    if sr.shape[:2] != (lr.shape[0] * scale, lr.shape[1] * scale) or sr.shape[2:] != lr.shape[2:]:
        raise ValueError(f"SR shape {sr.shape} is not {scale}x the input's {lr.shape}")
    return np.asarray(projection.back_project(sr[None], lr[None], scale, operator, iterations)[0])


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


#: Gauss-Hermite nodes for `expected_display` (probabilists', weights normalised to 1): exact for
#: polynomials to degree 17, far finer than an 8-bit level over a stretch's curvature.
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(9)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


#: Pixels `noise_sigma` reads at most (whole rows, evenly spaced).
NOISE_SAMPLE = 4_000_000


def noise_sigma(linear: np.ndarray) -> float:
    """Robust per-pixel noise (standard deviation) of a frame, in its own units.

    The median absolute deviation of horizontally adjacent differences
    (x 1.4826 / sqrt 2): for independent pixel noise it is the noise's sigma,
    and stars, galaxies and gradients, which move few differences far, barely
    shift a median. NaN/inf pixels are ignored; 0 when nothing is measurable.
    Frames over `NOISE_SAMPLE` pixels are read on evenly spaced rows.

    Args:
        linear: `[H, W]` or `[H, W, C]` (channel mean taken) in linear units.
    """
    a = np.asarray(linear)
    # A median needs the distribution, not every pixel: evenly spaced rows keep a whole large
    # frame's memory to a bounded sample (as data.fits_io.fit_stretch samples its interval).
    a = a[:: max(1, a.shape[0] * a.shape[1] // NOISE_SAMPLE)].astype(np.float64)
    a = a.mean(axis=-1) if a.ndim == 3 else a
    d = np.diff(a, axis=1)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))


def expected_display(linear: np.ndarray, stretch, sigma: float) -> np.ndarray:
    """`E[stretch(linear + n)]`, n ~ N(0, sigma^2) per pixel: how the sky with that pixel noise displays on average.

    A flux-consistent estimate is smoother than the sky it estimates: the
    truth also holds pixel noise no estimate can reproduce. Through a concave
    stretch (asinh above its knee) the noisy truth displays *darker* on
    average than its noise-free mean (Jensen's inequality), and clipped at the
    interval's floor brighter; so the stretch of the estimate is biased and
    this expectation is not. Nine-point Gauss-Hermite quadrature.

    Args:
        linear: `[H, W]` or `[H, W, C]` float, linear units.
        stretch: the `data.io.Stretch` of the display.
        sigma: the noise in linear units (0: just the stretch).

    Returns:
        float32, same shape, in [0, 1].
    """
    linear = np.asarray(linear, np.float32)
    flat = linear.reshape(linear.shape[0], -1)
    if not sigma > 0:
        return stretch.apply(flat).reshape(linear.shape)
    out = np.zeros(flat.shape, np.float64)
    for z, w in zip(_NODES, _WEIGHTS):
        out += w * stretch.apply(flat + np.float32(sigma * z))
    return out.astype(np.float32).reshape(linear.shape)


def hr_noise(lr_linear: np.ndarray, scale: int, operator: str) -> float:
    """The per-pixel noise of the sky at the SR resolution, from the input's (`noise_sigma`).

    A block mean of `scale` x `scale` independent pixels has 1/scale their noise,
    so the sky's finer pixels have `scale` times the input's. Only the block
    operator (a raw frame's bigger pixel) says how the input's pixels came
    about; for any other the input's own noise is all that is known.
    """
    sigma = noise_sigma(lr_linear)
    return sigma * scale if operator == "block" else sigma


def consistent_display(sr: np.ndarray, lr: np.ndarray, scale: int, operator: str,
                       stretch=None, lr_linear: Optional[np.ndarray] = None,
                       display_noise: bool = False, noise: Optional[float] = None,
                       ) -> tuple[np.ndarray, Optional[np.ndarray]]:
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
        display_noise: with a stretch, display the linear result as
            `expected_display` with the sky's pixel noise (`hr_noise`) instead of
            its plain stretch.
        noise: that noise in linear units (default: `hr_noise` of `lr_linear`;
            a tiled frame passes its whole input's, so tiles agree).

    Returns:
        (display `[sH, sW, C]` float32 in [0, 1], linear `[sH, sW, C]` float32 or
        None without a stretch). The linear result is what is consistent (and
        flux-conserving, for `block`); the display one is its (expected) stretch.
    """
    if stretch is None:
        return np.clip(back_project(sr, lr, scale, operator), 0.0, 1.0), None
    if lr_linear is None:
        lr_linear = stretch.invert(lr)
    linear = back_project(stretch.invert(sr), lr_linear, scale, operator)
    if display_noise and noise is None:
        noise = hr_noise(lr_linear, scale, operator)
    return expected_display(linear, stretch, noise if display_noise else 0.0), linear


def consistency_psnr(sr: np.ndarray, lr: np.ndarray, scale: int, operator: str, peak: float = 1.0) -> float:
    """PSNR (dB) of `degrade(sr)` against `lr`, with `peak` the value range (1 for [0, 1] images).

    Capped at 200 dB when they are equal.
    """
    err = float(np.mean((degrade(sr, scale, operator).astype(np.float64) - np.asarray(lr, np.float64)) ** 2))
    return 200.0 if err <= peak**2 * 1e-20 else float(10 * np.log10(peak**2 / err))


def consistent_upscale(upscale_fn, lr: np.ndarray, operator: str = "bicubic", stretch=None,
                       lr_linear: Optional[np.ndarray] = None, display_noise: bool = False) -> np.ndarray:
    """`upscale_fn(lr)` (clipped to [0, 1]) made consistent with `lr`: what the pipeline outputs.

    Args:
        upscale_fn: `[H, W, C]` in [0, 1] -> `[sH, sW, C]` (e.g. an exported SR model).
        lr: `[H, W, C]` display values in [0, 1].
        operator, stretch, lr_linear, display_noise: see `consistent_display`.

    Returns:
        float32 `[sH, sW, C]` in [0, 1] (display values).
    """
    lr = np.asarray(lr, np.float32)
    sr = sr_output(upscale_fn(lr))
    scale = sr.shape[0] // lr.shape[0]
    return consistent_display(sr, lr, scale, operator, stretch, lr_linear, display_noise)[0]
