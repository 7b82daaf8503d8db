"""FITS output: the colour result as a float32 cube with the input header and WCS.

Layout chosen: one primary HDU holding a cube `[3, H, W]` (NAXIS3 = 3, planes R,
G, B, named by keywords PLANE1..3), because most FITS viewers (ds9, astropy,
SAOImage) open a cube as one object and step through its planes, and the 2-D
celestial WCS stays valid for every plane (WCSAXES = 2).

The WCS is rescaled for the new pixel grid: for a scale s, pixel centre p (1-based)
of the input lands at p' = (p - 0.5) s + 0.5, so CRPIX' = (CRPIX - 0.5) s + 0.5,
and CDELT, or the CD matrix, is divided by s (a PC matrix is unchanged).

SIP distortion (A_p_q, B_p_q for pixel -> sky, AP_p_q, BP_p_q for the inverse)
is a polynomial in pixel offsets from CRPIX, u = p - CRPIX, whose result is
again a pixel offset. On the new grid the offsets are U = s u and the
distortion must be s f(U/s, V/s), so each coefficient becomes
A'_pq = A_pq s^(1-p-q) (and likewise B, AP, BP). TPV/PV distortions act on
intermediate world coordinates (degrees) and need no change.
"""
from __future__ import annotations

import re
from typing import Iterator, Optional

import numpy as np

from common.files import atomic_file
from data.io import Stretch

_CD_KEYS = ("CD1_1", "CD1_2", "CD2_1", "CD2_2")
_SIP_KEY = re.compile(r"^(A|B|AP|BP)_(\d+)_(\d+)$")


def scale_header(header, scale: float, history: Optional[list[str]] = None):
    """A copy of `header` with its 2-D WCS rescaled for an image `scale` times larger.

    Args:
        header: astropy `Header` of the input HDU.
        scale: the magnification of the pixel grid (4 for the SR model).
        history: HISTORY lines to add.

    Returns:
        A new `Header`.
    """
    from astropy.io import fits

    out = fits.Header(header, copy=True)
    for key in ("CRPIX1", "CRPIX2"):
        if key in out:
            out[key] = (float(out[key]) - 0.5) * scale + 0.5
    has_cd = any(k in out for k in _CD_KEYS)
    if has_cd:
        for key in _CD_KEYS:
            if key in out:
                out[key] = float(out[key]) / scale
    else:
        for key in ("CDELT1", "CDELT2"):
            if key in out:
                out[key] = float(out[key]) / scale
    for key in list(out.keys()):
        match = _SIP_KEY.match(key)
        if match:
            p, q = int(match[2]), int(match[3])
            out[key] = float(out[key]) * float(scale) ** (1 - p - q)
    # Structural keywords are rewritten by astropy from the data; drop stale
    # ones (and any checksums, which no longer hold).
    for key in ("NAXIS1", "NAXIS2", "NAXIS3", "BITPIX", "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM"):
        out.remove(key, ignore_missing=True, remove_all=True)
    for line in history or []:
        out.add_history(line)
    return out


def write_fits_stream(path: str, bands: Iterator[np.ndarray], header, transform=None) -> None:
    """Writes row bands into a FITS cube `[3, H, W]` (header from `pipeline.fits_out`), atomically.

    Bands come in display order (top first); FITS stores the bottom row first,
    so each band is written, flipped, at its mirrored position in every plane.

    Args:
        header: complete header with NAXIS=3, NAXIS1=W, NAXIS2=H, NAXIS3=3, BITPIX=-32.
        transform: optional function applied to each band first (e.g. the inverse stretch).
    """
    width, height = int(header["NAXIS1"]), int(header["NAXIS2"])
    head_bytes = header.tostring().encode("ascii")
    data_bytes = 3 * height * width * 4
    pad = (-data_bytes) % 2880
    with atomic_file(path) as f:
        f.write(head_bytes)
        start = f.tell()
        f.truncate(start + data_bytes + pad)
        row = 0
        for band in bands:
            fits_row = height - row - band.shape[0]
            for c in range(3):
                # One channel at a time, flipped to FITS row order: small temporaries.
                plane = band[::-1, :, c]
                if transform is not None:
                    plane = transform(plane)
                f.seek(start + ((c * height) + fits_row) * width * 4)
                f.write(np.ascontiguousarray(plane, dtype=">f4").tobytes())
            row += band.shape[0]
        if row != height:
            raise RuntimeError(f"wrote {row} rows of {height}")


def fits_header_for(header, height: int, width: int, scale: int, stretch, linear: bool, history: list[str]):
    """The output cube's full header: input metadata, rescaled WCS, our keywords."""
    from astropy.io import fits

    base = scale_header(header, scale, history) if header is not None else fits.Header()
    out = fits.Header()
    out["SIMPLE"] = True
    out["BITPIX"] = -32
    out["NAXIS"] = 3
    out["NAXIS1"] = width
    out["NAXIS2"] = height
    out["NAXIS3"] = 3
    skip = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "END"}
    for card in base.cards:
        if card.keyword not in skip and not card.keyword.startswith("NAXIS"):
            out.append(card)
    if header is None:
        for line in history:
            out.add_history(line)
    out["WCSAXES"] = 2
    for i, name in enumerate("RGB", start=1):
        out[f"PLANE{i}"] = (name, f"cube plane {i} holds the {name} channel")
    if stretch is not None:
        out["STRETCH"] = (stretch.name, "stretch applied to the input")
        out["STRINTV"] = (stretch.interval, "interval of that stretch")
        out["STRVMIN"] = (stretch.vmin, "raw value mapped to 0")
        out["STRVMAX"] = (stretch.vmax, "raw value mapped to 1")
        out["STRA"] = (stretch.a, "stretch parameter a")
    out["DATAUNIT"] = ("linear" if linear else "stretched", "linear=input units, stretched=[0,1]")
    return out


def write_fits(
    path: str,
    rgb: np.ndarray,
    header=None,
    scale: float = 1.0,
    stretch: Optional[Stretch] = None,
    linear: bool = False,
    flipped: bool = True,
    history: Optional[list[str]] = None,
) -> None:
    """Writes an RGB result held in memory as a float32 FITS cube `[3, H, W]`, atomically.

    Args:
        path: output `.fits` path.
        rgb: `[H, W, 3]` float in [0, 1], rows in display order.
        header: the input's header (WCS and metadata kept), or None.
        scale: pixel-grid magnification relative to the input (WCS is updated).
        stretch: the stretch applied on reading; needed for `linear`.
        linear: write the input's physical units (each channel through the
            inverse stretch) instead of [0, 1] display values.
        flipped: rows are in display order (flipped from FITS order on reading).
        history: HISTORY lines saying what was done.
    """
    data = np.asarray(rgb, np.float32)
    if linear and stretch is None:
        raise ValueError("linear output needs the input's stretch (FITS input)")
    if not flipped:
        data = data[::-1]
    head = fits_header_for(header, data.shape[0], data.shape[1], scale, stretch, linear, history or [])
    write_fits_stream(path, iter([data]), head, transform=stretch.invert if linear else None)
