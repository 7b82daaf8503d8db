"""True colour from filters: frames of one field in several filters -> one RGB composite.

The frames' own measurements give the colour (Lupton et al. 2004; STIFF; HumVI),
the learned colouriser is not involved. Steps, each a plain function:

1. `read_frame`: the raw 2-D data (FITS row order, NaN where not finite), header
   and celestial WCS of each file; a frame without a celestial WCS is refused.
2. `order_frames`: red -> blue by wavelength (PHOTPLAM, WAVELEN, or the FILTER
   name, `pipeline.filters`), or as given.
3. `reproject_frames`: every frame onto the reference frame's pixel grid with
   `reproject` (bilinear `reproject_interp`; `reproject_exact` when flux
   conserving: it conserves surface brightness, i.e. pixel values are
   overlap-weighted means). What a frame does not cover stays marked: the
   coverage mask travels with the data to the outputs (NaN in FITS, transparent
   in PNG), never black sky.
4. `make_composite`: per-channel background (3-sigma-clipped median) subtracted,
   channels balanced, two filters -> green is their mean, then one common
   stretch (Lupton asinh, `astropy.visualization.make_lupton_rgb`) or the
   project's per-channel stretch (`data.io.fit_stretch`).

Arrays stay in FITS row order (row 0 at the bottom) until `Composite.display`
flips them, as `data.io.read_fits` does.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import numpy as np

from data.io import ImageReadError, STRETCHES, fit_stretch
from pipeline.filters import header_wavelength

class ComposeError(ValueError):
    """Frames that cannot be composited together (no overlap, no order); one line."""


@dataclasses.dataclass
class Frame:
    """One filter's frame.

    Attributes:
        path: the file.
        data: float32 `[H, W]` raw values in FITS row order, NaN where not finite.
        header: the image HDU's header (astropy `Header`), WCS keywords included.
        wcs: its 2-D celestial `astropy.wcs.WCS`.
        filter: the filter name found in the headers, or None.
        wavelength: Angstrom, or None when unknown.
        wavelength_source: where `wavelength` came from (keyword or table).
        photflam: PHOTFLAM (erg/s/cm2/A per count/s) when present, else None.
    """

    path: str
    data: np.ndarray
    header: object
    wcs: object
    filter: Optional[str]
    wavelength: Optional[float]
    wavelength_source: str
    photflam: Optional[float] = None

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def _celestial_wcs(path: str, header, hdul):
    """The frame's celestial WCS, with its distortion lookup tables when the file has them."""
    from astropy.wcs import WCS

    from data.io import _one_line

    error = None
    # fobj: HST D2IM/CPDIS tables live in other HDUs; a frame cut out of its file
    # lost them, and then is aligned without them (SIP kept). naxis=2: astropy
    # needs the 2-D axes picked for SIP on a cube header.
    for fobj, naxis in ((hdul, None), (hdul, 2), (None, None), (None, 2)):
        try:
            return WCS(header, fobj=fobj, relax=True, naxis=naxis).celestial
        except Exception as e:
            error = error or e
    raise ImageReadError(path, f"unreadable WCS ({_one_line(error)}); cannot align it with the other frames")


def read_frame(path: str, hdu: Optional[int] = None) -> Frame:
    """Reads one filter's frame: raw data, header, celestial WCS, wavelength.

    Raises:
        ImageReadError: unreadable file, no 2-D image, all-NaN data, or no
            celestial WCS (then it cannot be aligned with the others).
    """
    from astropy.io import fits

    # The same checks, size limit, scaling (BSCALE/BZERO/BLANK) and image-HDU choice as
    # data.fits_io.read_fits (cubes: first plane).
    from data.fits_io import _read_fits_data
    from data.io import MAX_PIXELS, _check_file, _one_line

    _check_file(path)
    data, header, index, _ = _read_fits_data(path, hdu, MAX_PIXELS)
    try:
        with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
            primary = hdul[0].header.copy()
            wcs = _celestial_wcs(path, header, hdul)
    except ImageReadError:
        raise
    except Exception as e:
        raise ImageReadError(path, f"cannot read FITS, file corrupt or truncated ({_one_line(e)})") from e
    data = np.array(data, dtype=np.float32)
    data[~np.isfinite(data)] = np.nan
    if not np.isfinite(data).any():
        raise ImageReadError(path, "no finite pixel values (all NaN/inf)")
    lo, hi = np.nanmin(data), np.nanmax(data)
    if not hi > lo:
        raise ImageReadError(path, f"image is constant (every finite pixel = {lo:g}); no colour to take from it")
    if not wcs.has_celestial or wcs.naxis != 2:
        raise ImageReadError(path, "no celestial WCS (CTYPE1/2 RA---/DEC--, CRVAL, CRPIX, CD or CDELT); "
                                   "cannot align it with the other frames")
    name, wl, source = header_wavelength([header, primary])
    photflam = header.get("PHOTFLAM", primary.get("PHOTFLAM"))
    photflam = float(photflam) if isinstance(photflam, (int, float)) and photflam > 0 else None
    return Frame(path=path, data=data, header=header, wcs=wcs, filter=name, wavelength=wl,
                 wavelength_source=source, photflam=photflam)


def order_frames(frames: Sequence[Frame], order: str = "wavelength") -> list[Frame]:
    """Frames red -> blue (longest wavelength first), or as given.

    Raises:
        ComposeError: `order="wavelength"` and a frame's wavelength is unknown.
    """
    if order == "given":
        return list(frames)
    if order != "wavelength":
        raise ValueError(f"unknown order {order!r}; choose wavelength or given")
    for f in frames:
        if f.wavelength is None:
            what = f"its FILTER {f.filter!r} is not in the table" if f.filter else "it names no filter"
            raise ComposeError(f"{f.path}: cannot order by wavelength: no PHOTPLAM/WAVELEN keyword and {what}; "
                               "use --order given (frames red, green, blue as listed)")
    return sorted(frames, key=lambda f: -f.wavelength)


def reproject_frames(frames: Sequence[Frame], reference: Frame, flux_conserving: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Every frame on the reference frame's pixel grid.

    Returns:
        (data float32 `[C, H, W]` NaN where uncovered, coverage bool `[C, H, W]`),
        FITS row order, C = len(frames), H x W the reference's shape.

    Raises:
        ComposeError: a frame that does not overlap the reference at all.
    """
    from reproject import reproject_exact, reproject_interp

    shape = reference.data.shape
    out = np.empty((len(frames),) + shape, np.float32)
    for c, f in enumerate(frames):
        if f is reference:
            out[c] = f.data  # the reference is its own grid: no resampling
            continue
        method = reproject_exact if flux_conserving else reproject_interp
        values, footprint = method((f.data, f.wcs), reference.wcs, shape_out=shape)
        values = np.asarray(values, np.float32)
        values[~(np.asarray(footprint) > 0)] = np.nan
        out[c] = values
        if not np.isfinite(out[c]).any():
            raise ComposeError(f"{f.path}: does not overlap the reference frame {reference.path} "
                               "(no pixel of it lands on the reference grid; check the frames show one field)")
    return out, np.isfinite(out)


def background_level(values: np.ndarray) -> tuple[float, float]:
    """(sky level, sky noise): 3-sigma-clipped median and std of the finite pixels."""
    from astropy.stats import sigma_clipped_stats

    finite = values[np.isfinite(values)]
    if finite.size > 2_000_000:
        finite = finite[:: finite.size // 1_000_000]  # a fixed sample: cheap and deterministic
    _, median, std = sigma_clipped_stats(finite, sigma=3.0, maxiters=5)
    return float(median), float(std)


@dataclasses.dataclass
class Composite:
    """The RGB composite on the reference grid.

    Attributes:
        rgb: float32 `[H, W, 3]` in [0, 1], FITS row order; 0 where uncovered.
        coverage: bool `[H, W, 3]`, FITS row order: which channel has data where.
        frames: the frames behind R, G, B (two filters: G is None, their mean).
        reference: the frame whose grid and header the composite has.
        notes: one line per frame saying what was done to it (for HISTORY).
    """

    rgb: np.ndarray
    coverage: np.ndarray
    frames: list
    reference: Frame
    notes: list

    def display(self) -> tuple[np.ndarray, np.ndarray]:
        """(rgb, coverage) with rows flipped to display order (top row first)."""
        return np.ascontiguousarray(self.rgb[::-1]), np.ascontiguousarray(self.coverage[::-1])


def lupton_stretch_for(level: float, Q: float) -> float:
    """The linear `stretch` of astropy's Lupton asinh that maps intensity `level` to 1.

    astropy's curve is y = asinh(Q x / stretch) * 0.1 / asinh(0.1 Q), so y = 1
    at x = stretch * sinh(10 asinh(0.1 Q)) / Q.
    """
    return float(level) * Q / np.sinh(10.0 * np.arcsinh(0.1 * Q))


@dataclasses.dataclass(frozen=True)
class CompositeOptions:
    """How frames become the composite (the defaults are the command line's).

    Attributes:
        flux_conserving: `reproject_exact` instead of bilinear `reproject_interp`.
        background: subtract each channel's 3-sigma-clipped median sky.
        balance: `percentile`: each channel divided by its own `percentile`
            level (white balance on the bright end); `photflam`: each multiplied
            by its PHOTFLAM (flux density f_lambda), then all divided by one
            common level, so colours are the measured flux ratios; `none`: raw units.
        stretch: `lupton`: one asinh on the common intensity (Lupton et al.
            2004; hue kept; the `percentile` level of intensity maps to white,
            `Q` sets the softening, `minimum` the black point in balanced
            units); or a `data.io` stretch (asinh, linear, sqrt, log) fitted
            per channel with `interval` and `percentile`.
    """

    # Defaults picked on frames made from three Hubble pictures
    # (docs/make_compose_figure.py): with the 99.9 % level at white, Q = 1-2
    # looks closest to the pictures (Q >= 4 lifts the sky noise into view,
    # 99.5 % saturates compact nebulae), and Q = 1 also gives back a picture
    # whose frames hold display values (per-channel correlation >= 0.994;
    # Q = 2: 0.985), so an already stretched input is not stretched again much.
    flux_conserving: bool = False
    background: bool = True
    balance: str = "percentile"
    stretch: str = "lupton"
    interval: str = "percentile"
    percentile: float = 99.9
    Q: float = 1.0
    minimum: float = 0.0


def make_composite(frames: Sequence[Frame], reference: Frame,
                   options: CompositeOptions = CompositeOptions()) -> Composite:
    """Frames (already ordered red -> blue, 2 or 3 of them) -> `Composite`.

    Args:
        frames: R, (G,) B. With two, green is the mean of the two balanced channels.
        reference: the frame (one of `frames`) giving the pixel grid and header.
        options: see `CompositeOptions`.

    Raises:
        ComposeError: a frame that does not overlap the reference, or
            `balance="photflam"` for a frame without PHOTFLAM.
    """
    o = options
    if len(frames) not in (2, 3):
        raise ValueError(f"a composite needs 2 or 3 frames, got {len(frames)}")
    if o.stretch != "lupton" and o.stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {o.stretch!r}; choose lupton or one of {STRETCHES}")
    data, cover = reproject_frames(frames, reference, o.flux_conserving)
    skies = [background_level(data[c])[0] if o.background else 0.0 for c in range(len(frames))]
    data -= np.array(skies, np.float32)[:, None, None]
    levels = _balance(data, frames, o)
    if len(frames) == 2:
        # The usual practice: the missing middle band is the mean of its neighbours.
        data = np.stack([data[0], 0.5 * (data[0] + data[1]), data[1]])
        cover = np.stack([cover[0], cover[0] & cover[1], cover[1]])
    filled = np.where(cover, data, 0.0).astype(np.float32)
    rgb, how = _stretch(data, filled, cover, frames, o)
    cover = np.moveaxis(cover, 0, -1)
    rgb[~cover] = 0.0
    names = "RGB" if len(frames) == 3 else "RB"
    # One HISTORY line per input frame (short enough for one card), then how.
    lines = [f"compose {ch}: {f.name} {f.filter or '-'} "
             f"{'%.0fA' % f.wavelength if f.wavelength else '?A'} sky {sky:.4g} /{level:.4g}"
             + (" (reference)" if f is reference else "")
             for ch, f, sky, level in zip(names, frames, skies, levels)]
    if len(frames) == 2:
        lines.append("compose G: mean of R and B (two filters)")
    lines.append(f"compose: reprojected by {'reproject_exact' if o.flux_conserving else 'reproject_interp'} "
                 "onto the reference grid")
    lines.append(f"compose: {how}")
    ordered = list(frames) if len(frames) == 3 else [frames[0], None, frames[1]]
    return Composite(rgb=rgb, coverage=cover, frames=ordered, reference=reference, notes=lines)


def _balance(data: np.ndarray, frames: Sequence[Frame], o: CompositeOptions) -> list[float]:
    """Scales the sky-subtracted channels `[C, H, W]` in place; returns each one's divisor."""
    if o.balance == "photflam":
        missing = [f.path for f in frames if f.photflam is None]
        if missing:
            raise ComposeError(f"{missing[0]}: no PHOTFLAM keyword for --balance photflam; use --balance percentile")
        data *= np.array([f.photflam for f in frames], np.float32)[:, None, None]
        levels = [float(np.nanpercentile(np.nanmean(data, axis=0), o.percentile))] * len(frames)
    elif o.balance == "percentile":
        levels = [float(np.nanpercentile(data[c], o.percentile)) for c in range(len(frames))]
    elif o.balance == "none":
        levels = [1.0] * len(frames)
    else:
        raise ValueError(f"unknown balance {o.balance!r}; choose percentile, photflam or none")
    # A channel with nothing above its sky keeps its scale rather than being blown up.
    levels = [lv if lv > 0 else 1.0 for lv in levels]
    data /= np.array(levels, np.float32)[:, None, None]
    return levels


def _stretch(data, filled, cover, frames, o: CompositeOptions) -> tuple[np.ndarray, str]:
    """The display stretch: (rgb float32 `[H, W, 3]` in [0, 1], what was done in words)."""
    if o.stretch == "lupton":
        from astropy.visualization import make_lupton_rgb

        intensity = filled.mean(axis=0)[cover.all(axis=0)]
        level = float(np.percentile(intensity, o.percentile)) if intensity.size else 1.0
        s = lupton_stretch_for(max(level - o.minimum, 1e-12), o.Q)
        with np.errstate(invalid="ignore", divide="ignore"):  # I = 0 pixels: astropy maps them to 0
            rgb = make_lupton_rgb(*filled, minimum=o.minimum, stretch=s, Q=o.Q, output_dtype=np.float64)
        how = f"Lupton asinh Q={o.Q:g} minimum={o.minimum:g} stretch={s:.4g}"
    else:
        planes = []
        for c in range(3):
            owner = frames[c] if len(frames) == 3 else frames[c // 2]  # G of two: named after R
            st = fit_stretch(owner.path, data[c], stretch=o.stretch, interval=o.interval, percentile=o.percentile)
            planes.append(st.apply(filled[c]))
        rgb = np.stack(planes, axis=-1)
        how = f"{o.stretch} stretch per channel ({o.interval})"
    return np.nan_to_num(np.asarray(rgb, np.float32), nan=0.0), how
