"""Synthetic astronomical scenes: training data with known structure and no licence strings.

A scene is rendered in linear flux on the HR grid, then displayed with the
pipeline's own stretch (`data.io.fit_stretch`: asinh over the 99.5 % interval),
so SR training sees what `pipeline.run` feeds the network for a FITS frame.

Contents (all parameters drawn from one `numpy.random.Generator`):

* **stars**: a power-law luminosity function (dN/dF ~ F^-2.5), Moffat PSFs
  (FWHM 1.5-5 px, beta 2.5-4.5), four diffraction spikes on the brightest, and
  saturation at a full-well level (flat-topped cores, as real detectors give);
  colours from a blackbody-like blue-white-orange range;
* **galaxies**: Sersic profiles (n 0.5-4, effective radius 2-30 px, ellipticity,
  position angle), yellowish to bluish;
* **nebula**: red-noise texture (power spectrum ~ k^-3), exponentiated into
  filaments, in one or two emission-line tints (H-alpha red, OIII teal, SII);
* **sky and detector**: flat sky, Poisson noise (random gain) and Gaussian read noise.

A fraction of scenes is grey (R = G = B), as raw single-filter frames are.
"""
from __future__ import annotations

import numpy as np

from data.io import fit_stretch

STAR_COLOURS = np.array([[0.75, 0.85, 1.0], [1.0, 1.0, 1.0], [1.0, 0.92, 0.8], [1.0, 0.78, 0.55]], np.float32)
LINE_COLOURS = np.array([[1.0, 0.25, 0.3], [0.25, 0.9, 0.85], [0.9, 0.35, 0.1], [0.5, 0.6, 1.0]], np.float32)


def moffat(r2: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    """Moffat profile normalised to unit total flux, at squared radii `r2` (px^2)."""
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    return (beta - 1.0) / (np.pi * alpha**2) * (1.0 + r2 / alpha**2) ** (-beta)


def _stamp(canvas: np.ndarray, y: float, x: float, profile, radius: int, colour: np.ndarray) -> None:
    """Adds `profile(dy, dx)` (flux per px) times `colour` around (y, x), clipped at the canvas edge."""
    h, w = canvas.shape[:2]
    y0, y1 = max(int(y) - radius, 0), min(int(y) + radius + 1, h)
    x0, x1 = max(int(x) - radius, 0), min(int(x) + radius + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    dy = np.arange(y0, y1)[:, None] + 0.5 - y
    dx = np.arange(x0, x1)[None, :] + 0.5 - x
    canvas[y0:y1, x0:x1] += profile(dy, dx)[..., None] * colour


def _red_noise(rng: np.random.Generator, size: int, slope: float = 3.0) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian field with power spectrum ~ k^-slope."""
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    k[0, 0] = 1.0
    spectrum = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) * k ** (-slope / 2)
    spectrum[0, 0] = 0.0
    field = np.fft.ifft2(spectrum).real
    return (field - field.mean()) / (field.std() + 1e-12)


def linear_scene(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """One scene in linear flux, noise included.

    Returns:
        float32 `[size, size, 3]`, sky-dominated values of order 1-100 (arbitrary units).
    """
    canvas = np.zeros((size, size, 3), np.float32)
    sky = rng.uniform(0.5, 10.0)
    if rng.random() < 0.5:  # nebula
        field = np.exp(rng.uniform(1.0, 2.5) * _red_noise(rng, size))
        amp = rng.uniform(0.5, 5.0) * sky / field.mean()
        colours = LINE_COLOURS[rng.choice(len(LINE_COLOURS), 2, replace=False)]
        mix = 0.5 + 0.5 * np.tanh(_red_noise(rng, size, 2.5))
        tint = mix[..., None] * colours[0] + (1 - mix[..., None]) * colours[1]
        canvas += (amp * field)[..., None] * tint
    for _ in range(rng.integers(0, 4)):  # galaxies
        n, re = rng.uniform(0.5, 4.0), rng.uniform(2.0, 30.0)
        q, pa = rng.uniform(0.3, 1.0), rng.uniform(0, np.pi)
        bn = 2.0 * n - 1.0 / 3.0
        flux = sky * 10 ** rng.uniform(1.5, 3.5)
        c, s = np.cos(pa), np.sin(pa)
        colour = np.array([1.0, rng.uniform(0.8, 1.0), rng.uniform(0.6, 1.1)], np.float32)

        def sersic(dy, dx, n=n, re=re, q=q, c=c, s=s, bn=bn, flux=flux):
            r = np.hypot(dx * c + dy * s, (-dx * s + dy * c) / q)
            prof = np.exp(-bn * ((r / re) ** (1.0 / n) - 1.0))
            return flux * prof / (2 * np.pi * re**2 * q * np.exp(bn) * max(n, 0.5))

        _stamp(canvas, rng.uniform(0, size), rng.uniform(0, size), sersic, int(min(6 * re, size)), colour)
    fwhm, beta = rng.uniform(1.5, 5.0), rng.uniform(2.5, 4.5)
    n_stars = int(rng.integers(5, 300))
    fluxes = sky * 100.0 * rng.random(n_stars) ** (-1.0 / 1.5)
    full_well = sky * rng.uniform(50.0, 500.0)
    for flux in fluxes:
        colour = STAR_COLOURS[rng.integers(len(STAR_COLOURS))]
        radius = int(np.clip(3 * fwhm * (flux / sky) ** 0.25, 4, size // 2))
        y, x = rng.uniform(0, size, 2)
        _stamp(canvas, y, x, lambda dy, dx, f=flux: f * moffat(dy**2 + dx**2, fwhm, beta), radius, colour)
        if flux > 2000 * sky:  # diffraction spikes: thin Gaussian lines along the axes
            length, width = 2.0 * np.sqrt(flux / sky), 0.6
            spike = lambda dy, dx, f=flux, L=length: 1e-3 * f * (
                np.exp(-0.5 * (dx / width) ** 2) * np.exp(-np.abs(dy) / L)
                + np.exp(-0.5 * (dy / width) ** 2) * np.exp(-np.abs(dx) / L))
            _stamp(canvas, y, x, spike, int(min(3 * length, size // 2)), colour)
    canvas = np.minimum(canvas + sky, full_well)
    gain = 10 ** rng.uniform(0.3, 1.5)
    noisy = rng.poisson(np.maximum(canvas, 0) * gain) / gain + rng.normal(0, rng.uniform(0.1, 1.0), canvas.shape)
    if rng.random() < 0.3:  # a single-filter frame
        noisy = np.repeat(noisy.mean(axis=-1, keepdims=True), 3, axis=-1)
    return noisy.astype(np.float32)


def display_scene(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """`linear_scene` through the pipeline's default FITS stretch (one stretch for all channels).

    Returns:
        float32 `[size, size, 3]` in [0, 1].
    """
    scene = linear_scene(rng, size)
    stretch = fit_stretch("synthetic scene", scene)
    return stretch.apply(scene.reshape(size, -1)).reshape(scene.shape)
