"""FITS output: the colour result as a float32 cube with the input header and WCS.

Layout chosen: one primary HDU holding a cube `[3, H, W]` (NAXIS3 = 3, planes R,
G, B, named by keywords PLANE1..3), because most FITS viewers (ds9, astropy,
SAOImage) open a cube as one object and step through its planes, and the 2-D
celestial WCS stays valid for every plane (WCSAXES = 2).

The WCS is rescaled for the new pixel grid: for a scale s, pixel centre p (1-based)
of the input lands at p' = (p - 0.5) s + 0.5, so CRPIX' = (CRPIX - 0.5) s + 0.5,
and CDELT, or the CD matrix, is divided by s (a PC matrix is unchanged).
"""
from __future__ import annotations

import io
from typing import Optional

import numpy as np

from common.training import atomic_write_bytes
from data.io import Stretch

_CD_KEYS = ("CD1_1", "CD1_2", "CD2_1", "CD2_2")


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
    # Structural keywords are rewritten by astropy from the data; drop stale
    # ones (and any checksums, which no longer hold).
    for key in ("NAXIS1", "NAXIS2", "NAXIS3", "BITPIX", "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM"):
        out.remove(key, ignore_missing=True, remove_all=True)
    for line in history or []:
        out.add_history(line)
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
    """Writes an RGB result as a float32 FITS cube `[3, H, W]`, atomically.

    Args:
        path: output `.fits` path.
        rgb: `[H, W, 3]` float in [0, 1], rows in display order.
        header: the input's header (WCS and metadata kept), or None.
        scale: pixel-grid magnification relative to the input (WCS is updated).
        stretch: the stretch applied on reading; needed for `linear`.
        linear: write the input's physical units (each channel through the
            inverse stretch) instead of [0, 1] display values.
        flipped: rows were flipped from FITS order on reading; flip them back.
        history: HISTORY lines saying what was done.
    """
    from astropy.io import fits

    data = np.asarray(rgb, np.float32)
    if flipped:
        data = data[::-1]
    if linear:
        if stretch is None:
            raise ValueError("linear output needs the input's stretch (FITS input)")
        data = stretch.invert(data)
    cube = np.ascontiguousarray(np.moveaxis(data, -1, 0).astype(np.float32))
    head = scale_header(header, scale, history) if header is not None else fits.Header(
        [("HISTORY", h) for h in history or []]
    )
    hdu = fits.PrimaryHDU(cube, header=head)
    hdu.header["WCSAXES"] = 2
    for i, name in enumerate("RGB", start=1):
        hdu.header[f"PLANE{i}"] = (name, f"cube plane {i} holds the {name} channel")
    hdu.header["BUNIT"] = (header.get("BUNIT", "") if (linear and header is not None) else "display")
    if stretch is not None:
        hdu.header["STRETCH"] = (stretch.name, "stretch applied to the input")
        hdu.header["STRINTV"] = (stretch.interval, "interval of that stretch")
        hdu.header["STRVMIN"] = (stretch.vmin, "raw value mapped to 0")
        hdu.header["STRVMAX"] = (stretch.vmax, "raw value mapped to 1")
        hdu.header["STRA"] = (stretch.a, "stretch parameter a")
    hdu.header["DATAUNIT"] = ("linear" if linear else "stretched", "linear=input units, stretched=[0,1]")
    buf = io.BytesIO()
    hdu.writeto(buf, output_verify="silentfix")
    atomic_write_bytes(path, buf.getvalue())
