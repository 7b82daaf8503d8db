"""FITS in: the first image HDU (or a chosen one) as physical values, stretched to [0, 1] for the networks.

Stored values are turned into physical ones here (BLANK -> NaN, then BSCALE,
BZERO: uint16 camera frames, scaled integers), reading the raw data
memory-mapped; a cube gives its first plane, read alone, and says so in one
`InputWarning`; astropy's own warnings are caught and said once, naming the
file. Names are also importable from `data.io`.
"""
from __future__ import annotations

import dataclasses
import threading
import warnings
from typing import Optional

import numpy as np

from data.io import MAX_PIXELS, ImageReadError, _check_file, _one_line, _warn, check_declared_size

STRETCHES = ("asinh", "linear", "sqrt", "log")
INTERVALS = ("percentile", "zscale", "minmax")
#: The display stretch every FITS reader and full mode default to (written once here).
DEFAULT_STRETCH, DEFAULT_INTERVAL, DEFAULT_PERCENTILE, DEFAULT_ASINH_A = "asinh", "percentile", 99.5, 0.1


@dataclasses.dataclass(frozen=True)
class Stretch:
    """How raw FITS values were mapped into [0, 1], kept so it can be undone.

    forward: v = clip((x - vmin) / (vmax - vmin), 0, 1); y = f(v), with f the
    astropy stretch named by `name` (asinh uses parameter `a`, log uses `a` as
    its exponent base parameter).
    """

    name: str
    interval: str
    vmin: float
    vmax: float
    a: float

    def as_astropy(self):
        from astropy import visualization as vis

        if self.name == "asinh":
            return vis.AsinhStretch(a=self.a)
        if self.name == "log":
            return vis.LogStretch(a=self.a)
        if self.name == "sqrt":
            return vis.SqrtStretch()
        return vis.LinearStretch()

    def apply(self, raw: np.ndarray, rows_per_chunk: int = 256) -> np.ndarray:
        """Raw values -> float32 [0, 1]; non-finite pixels become 0.

        Works through the rows in chunks so a large frame needs little more
        memory than its float32 result.
        """
        raw = np.asarray(raw)
        out = np.empty(raw.shape, np.float32)
        f = self.as_astropy()
        for start in range(0, max(raw.shape[0], 1), rows_per_chunk):
            chunk = np.asarray(raw[start : start + rows_per_chunk], dtype=np.float64)
            finite = np.isfinite(chunk)
            v = np.clip((np.where(finite, chunk, self.vmin) - self.vmin) / (self.vmax - self.vmin), 0.0, 1.0)
            res = np.asarray(f(v, clip=True), dtype=np.float32)
            res[~finite] = 0.0
            out[start : start + rows_per_chunk] = res
        return out

    def invert(self, image: np.ndarray) -> np.ndarray:
        """[0, 1] -> raw units (float32). Values clipped by the interval stay clipped."""
        v = self.as_astropy().inverse(np.clip(np.asarray(image, np.float64), 0.0, 1.0))
        return (np.asarray(v) * (self.vmax - self.vmin) + self.vmin).astype(np.float32)


@dataclasses.dataclass
class FitsImage:
    """A FITS image stretched for the networks, with what is needed to go back.

    Attributes:
        image: float32 `[H, W, 1]` in [0, 1], rows in display order (FITS row 0
            is the bottom of the picture, so rows are flipped when `flipped`).
        header: the HDU's header (astropy `Header`), WCS keywords included.
        stretch: the `Stretch` applied.
        flipped: whether rows were flipped from FITS order to display order.
        hdu_index: which HDU the data came from.
        plane: index of the 2-D plane taken from a data cube (None for 2-D data).
        raw: float32 `[H, W]` the data in its own units, in the same (display)
            row order as `image`, NaN/inf kept (for flux-consistent SR).
    """

    image: np.ndarray
    header: object
    stretch: Stretch
    flipped: bool
    hdu_index: int
    plane: Optional[int] = None
    raw: Optional[np.ndarray] = None


def fit_stretch(
    path: str,
    raw: np.ndarray,
    stretch: str = DEFAULT_STRETCH,
    interval: str = DEFAULT_INTERVAL,
    percentile: float = DEFAULT_PERCENTILE,
    a: float = DEFAULT_ASINH_A,
) -> Stretch:
    """Chooses the display interval for raw data and returns the `Stretch`.

    Args:
        path: file name, for error messages.
        raw: array of raw values (NaN/inf ignored).
        stretch: one of `STRETCHES`.
        interval: `percentile` (central `percentile` %), `zscale` (IRAF's) or `minmax`.
        percentile: for the percentile interval.
        a: asinh softening / log parameter.

    Raises:
        ImageReadError: no finite values, or a constant image.
    """
    from astropy import visualization as vis

    if stretch not in STRETCHES:
        raise ValueError(f"unknown stretch {stretch!r}; choose from {STRETCHES}")
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; choose from {INTERVALS}")
    values = np.asarray(raw)
    finite = values[np.isfinite(values)]
    if finite.size > 2_000_000:
        # Intervals need the distribution, not every pixel: a fixed, evenly
        # spaced sample keeps huge frames cheap and the result deterministic.
        finite = finite[:: finite.size // 1_000_000]
    if finite.size == 0:
        raise ImageReadError(path, "no finite pixel values (all NaN/inf)")
    if interval == "percentile":
        vmin, vmax = vis.PercentileInterval(percentile).get_limits(finite)
    elif interval == "zscale":
        vmin, vmax = vis.ZScaleInterval().get_limits(finite)
    else:
        vmin, vmax = float(finite.min()), float(finite.max())
    if not vmax > vmin:
        vmin, vmax = float(finite.min()), float(finite.max())
    if not vmax > vmin:
        raise ImageReadError(path, f"image is constant (every finite pixel = {vmin:g}); nothing to show")
    return Stretch(name=stretch, interval=interval, vmin=float(vmin), vmax=float(vmax), a=float(a))


def _find_image_hdu(path: str, hdul) -> int:
    for i, hdu in enumerate(hdul):
        shape = getattr(hdu, "shape", None) or ()
        is_image = hdu.is_image if hasattr(hdu, "is_image") else False
        if is_image and len([n for n in shape if n > 1]) >= 2:
            return i
    raise ImageReadError(path, "no image HDU with 2-D data (primary and extensions checked)")


_FITS_LOCK = threading.Lock()


def _physical(raw, header) -> np.ndarray:
    """Stored FITS values -> float32 physical values: BLANK -> NaN, then x * BSCALE + BZERO.

    Done here rather than by astropy because astropy cannot memory-map scaled
    data (BZERO/BSCALE/BLANK present: every uint16 camera frame); reading the
    raw integers mapped and converting a band of rows at a time keeps memory at
    about the float32 result.
    """
    bscale, bzero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
    blank = header.get("BLANK") if np.issubdtype(raw.dtype, np.integer) else None
    out = np.empty(raw.shape, np.float32)
    for start in range(0, max(raw.shape[0], 1), 512):
        band = np.asarray(raw[start : start + 512])
        # float64 for the arithmetic: int32 data and BZERO = 2**31 are exact in it.
        values = band.astype(np.float64) * bscale + bzero
        if blank is not None:
            values[band == int(blank)] = np.nan
        out[start : start + 512] = values
    return out


def _read_fits_data(path: str, hdu: Optional[int], max_pixels: int):
    """(float32 2-D physical data in FITS row order, header, HDU index, the cube's shape or None)."""
    from astropy.io import fits

    try:
        with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
            index = _find_image_hdu(path, hdul) if hdu is None else hdu
            if index >= len(hdul):
                raise ImageReadError(path, f"HDU {index} does not exist ({len(hdul)} HDUs)")
            item = hdul[index]
            header = item.header.copy()
            shape = tuple(getattr(item, "shape", None) or ())
            if not shape or item.header.get("NAXIS", 0) == 0:
                raise ImageReadError(path, f"HDU {index} has no data")
            dims = [n for n in shape if n > 1] or [1]
            plane = None
            # The declared size, from the header alone: nothing is decompressed
            # or mapped yet (gzipped files too).
            check_declared_size(path, shape[-1], int(np.prod(shape[:-1])) if len(dims) <= 2 else shape[-2],
                                max_pixels)
            if len(dims) > 2 and shape[-1] > 1 and shape[-2] > 1:
                # Only the first plane is read (a section), not the whole cube.
                plane = shape
                raw = item.section[(0,) * (len(shape) - 2)]
            else:
                raw = item.data
                if raw is None:
                    raise ImageReadError(path, f"HDU {index} has no data")
                if len(dims) > 2:
                    check_declared_size(path, shape[-1], int(np.prod(shape[:-1])), max_pixels)  # read whole
                raw = raw.reshape(dims)
                if raw.ndim > 2:
                    plane = shape
                    raw = raw.reshape((-1,) + raw.shape[-2:])[0]
            if raw.ndim != 2:
                raise ImageReadError(path, f"HDU {index} data is not 2-D (shape {shape})")
            data = _physical(raw, header)
    except ImageReadError:
        raise
    except Exception as e:
        raise ImageReadError(path, f"cannot read FITS, file corrupt or truncated ({_one_line(e)})") from e
    return data, header, index, plane


def read_fits(
    path: str,
    stretch: str = DEFAULT_STRETCH,
    interval: str = DEFAULT_INTERVAL,
    percentile: float = DEFAULT_PERCENTILE,
    a: float = DEFAULT_ASINH_A,
    hdu: Optional[int] = None,
    max_pixels: int = MAX_PIXELS,
) -> FitsImage:
    """Reads the primary (or first image) HDU of a FITS file and stretches it to [0, 1].

    Data cubes give their first 2-D plane (recorded in `plane`). NaN/inf pixels
    are masked out of the interval and set to 0 in the result.

    Args:
        path: `.fits`, `.fit`, `.fts` (optionally `.gz`) file.
        stretch, interval, percentile, a: see `fit_stretch`.
        hdu: HDU index to use instead of the first image HDU.
        max_pixels: frames declaring more pixels in their header (the plane
            read) are refused before any data is read (`data.io.MAX_PIXELS`).

    Returns:
        `FitsImage` with `image` float32 `[H, W, 1]` in [0, 1].

    Raises:
        ImageReadError: unreadable/corrupt file, no image HDU, all-NaN or constant data.
    """
    _check_file(path)
    # Astropy's complaints (truncated file, non-standard keywords) are caught and
    # said once, naming the file. `catch_warnings` changes process-wide state,
    # so FITS reads from decoding threads take turns.
    with _FITS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data, header, index, cube = _read_fits_data(path, hdu, max_pixels)
    for text in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        _warn(path, text)
    plane = None
    if cube is not None:
        plane = 0
        _warn(path, f"data cube of shape {cube}: plane 1 of {int(np.prod(cube[:-2]))} used")
    return _stretched(path, data, header, index, plane, stretch, interval, percentile, a)


def _stretched(path, data, header, index, plane, stretch, interval, percentile, a) -> FitsImage:
    """The `FitsImage` of 2-D data in FITS row order: stretched, rows flipped to display order, raw kept."""
    s = fit_stretch(path, data, stretch=stretch, interval=interval, percentile=percentile, a=a)
    image = s.apply(data)[::-1, :, None]
    return FitsImage(
        image=np.ascontiguousarray(image), header=header, stretch=s, flipped=True, hdu_index=index, plane=plane,
        raw=data[::-1],
    )


def fits_image_from_hdus(
    hdul,
    name: str = "<HDUList>",
    stretch: str = DEFAULT_STRETCH,
    interval: str = DEFAULT_INTERVAL,
    percentile: float = DEFAULT_PERCENTILE,
    a: float = DEFAULT_ASINH_A,
    hdu: Optional[int] = None,
    max_pixels: int = MAX_PIXELS,
) -> FitsImage:
    """`read_fits` for HDUs already in memory (an astropy `HDUList`, or a list of HDUs).

    Args:
        hdul: the HDUs; the first image HDU is used unless `hdu` names one
            (astropy has already applied BSCALE/BZERO to in-memory data).
        name: what error messages call it (there is no file name).

    Raises:
        ImageReadError: no image HDU, too large, all-NaN or constant data.
    """
    try:
        index = _find_image_hdu(name, hdul) if hdu is None else hdu
        if index >= len(hdul):
            raise ImageReadError(name, f"HDU {index} does not exist ({len(hdul)} HDUs)")
        header = hdul[index].header.copy()
        data = hdul[index].data
        if data is None:
            raise ImageReadError(name, f"HDU {index} has no data")
        data = np.asarray(data)
        check_declared_size(name, data.shape[-1], int(np.prod(data.shape[:-1])) if data.ndim <= 2 else data.shape[-2],
                            max_pixels)
        plane = None
        data = data.reshape([n for n in data.shape if n > 1] or [1])
        if data.ndim > 2:
            plane = 0
            data = data.reshape((-1,) + data.shape[-2:])[0]
        if data.ndim != 2:
            raise ImageReadError(name, f"HDU {index} data is not 2-D (shape {data.shape})")
        data = np.array(data, dtype=np.float32)
    except ImageReadError:
        raise
    except Exception as e:
        raise ImageReadError(name, f"cannot read FITS data ({_one_line(e)})") from e
    return _stretched(name, data, header, index, plane, stretch, interval, percentile, a)


__all__ = ["STRETCHES", "INTERVALS", "Stretch", "FitsImage", "fit_stretch", "read_fits", "fits_image_from_hdus"]
