"""Images in and out: the one place that reads PNG/JPEG/TIFF/FITS and writes PNG.

Everything returned is float32 in [0, 1], channels last, `[H, W, 1]` (grey) or
`[H, W, 3]` (RGB), via `data.normalize.normalize`. Every failure is an
`ImageReadError` whose message starts with the file's path, so a caller working
through a folder can print one clear line per bad file and go on.
"""
from __future__ import annotations

import dataclasses
import io
import os
from typing import Optional

import numpy as np

from common.training import atomic_write_bytes
from data.normalize import normalize, to_uint8, to_uint16

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz")
IMAGE_EXTENSIONS = RASTER_EXTENSIONS + FITS_EXTENSIONS

STRETCHES = ("asinh", "linear", "sqrt", "log")
INTERVALS = ("percentile", "zscale", "minmax")


class ImageReadError(ValueError):
    """An input file that cannot be used as an image; the message names the file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


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


def is_fits(path: str) -> bool:
    """True for FITS by extension, or by the `SIMPLE  =` card that opens every FITS file."""
    if path.lower().endswith(FITS_EXTENSIONS):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(9) == b"SIMPLE  ="
    except OSError:
        return False


def is_image_file(path: str) -> bool:
    """True when the name has an image or FITS extension (content is not checked)."""
    return os.path.basename(path).lower().endswith(IMAGE_EXTENSIONS)


def list_images(directory: str, recursive: bool = False) -> list[str]:
    """Image and FITS files under `directory`, sorted; hidden files skipped.

    Raises:
        ImageReadError: if `directory` is not a readable directory.
    """
    if not os.path.isdir(directory):
        raise ImageReadError(directory, "not a directory")
    found = []
    if recursive:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [os.path.join(root, f) for f in files if not f.startswith(".") and is_image_file(f)]
    else:
        found = [
            os.path.join(directory, f)
            for f in os.listdir(directory)
            if not f.startswith(".") and is_image_file(f)
        ]
    return sorted(found)


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise ImageReadError(path, "is a directory, not an image file")
    if not os.path.exists(path):
        if os.path.islink(path):
            raise ImageReadError(path, "broken or looping symbolic link")
        raise ImageReadError(path, "no such file")
    if not os.access(path, os.R_OK):
        raise ImageReadError(path, "permission denied (file is not readable)")
    if os.path.getsize(path) == 0:
        raise ImageReadError(path, "empty file (0 bytes)")


def check_image_file(path: str) -> None:
    """Cheap checks that need no decoding: a readable, non-empty regular file
    whose first bytes are PNG, JPEG, TIFF or FITS (gzipped FITS by name).

    Raises:
        ImageReadError: with the reason.
    """
    _check_file(path)
    if not is_fits(path):
        _raster_head(path)


def _channels_last(path: str, a: np.ndarray) -> np.ndarray:
    """Any decoded raster -> `[H, W, 1|3]`, same dtype; alpha composited onto black."""
    if a.ndim == 2:
        return a[..., None]
    if a.ndim != 3:
        raise ImageReadError(path, f"unsupported image layout with shape {a.shape}")
    c = a.shape[-1]
    if c in (1, 3):
        return a
    if c in (2, 4):
        # Composite onto a black sky: transparent borders (common in Stellarium
        # textures) must not contribute colour that was never meant to be seen.
        alpha = normalize(a[..., -1:])
        colour = normalize(a[..., :-1])
        return (colour * alpha).astype(np.float32)
    raise ImageReadError(path, f"unsupported number of channels {c} (shape {a.shape})")


def _png_bit_depth(head: bytes) -> int:
    # IHDR starts at byte 8: length(4) 'IHDR'(4) width(4) height(4) depth(1).
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 25:
        return head[24]
    return 0


def _read_png16(path: str) -> np.ndarray:
    import png  # pypng: Pillow truncates 16-bit colour PNGs to 8 bits.

    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).asDirect()
        planes = info["planes"]
        arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows])
    return arr.reshape(height, width, planes)


_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"II+\x00": "BigTIFF",
    b"MM\x00+": "BigTIFF",
}


def _sniff(head: bytes) -> Optional[str]:
    """The format named by the file's first bytes, or None."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def _one_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}" + ("..." if len(text) > limit else "")


def _raster_head(path: str) -> bytes:
    """The first bytes of a PNG/JPEG/TIFF file; `ImageReadError` when they are none of those."""
    with open(path, "rb") as f:
        head = f.read(32)
    if _sniff(head) is None:
        raise ImageReadError(path, "cannot decode image: content is not PNG, JPEG, TIFF or FITS")
    return head


def _read_raster(path: str) -> np.ndarray:
    import imageio.v3 as iio

    head = _raster_head(path)
    try:
        if _png_bit_depth(head) == 16:
            a = _read_png16(path)
        else:
            # Opened here so the file is closed even when decoding fails (a
            # decoder's exception would otherwise keep it open until GC).
            with open(path, "rb") as f:
                a = np.asarray(iio.imread(f, index=0, extension=os.path.splitext(path)[1].lower() or None))
    except Exception as e:  # decoders raise many types; report them uniformly
        raise ImageReadError(path, f"cannot decode image, file corrupt or truncated ({_one_line(e)})") from e
    if a.size == 0:
        raise ImageReadError(path, "image has no pixels")
    if a.ndim == 3 and a.shape[0] in (2, 3, 4) and a.shape[-1] > 4:
        # A planar TIFF ([C, H, W]): move channels last.
        a = np.moveaxis(a, 0, -1)
    if np.issubdtype(a.dtype, np.floating):
        finite = np.isfinite(a)
        if not finite.any():
            raise ImageReadError(path, "no finite pixel values (all NaN/inf)")
        lo, hi = float(a[finite].min()), float(a[finite].max())
        if lo < 0.0 or hi > 1.0:
            # Float TIFFs from astronomy software hold linear data in arbitrary
            # units: stretch them like FITS instead of clipping them away.
            stretch = fit_stretch(path, a)
            return _channels_last(path, stretch.apply(a))
    return _channels_last(path, a)


def fit_stretch(
    path: str,
    raw: np.ndarray,
    stretch: str = "asinh",
    interval: str = "percentile",
    percentile: float = 99.5,
    a: float = 0.1,
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


def read_fits(
    path: str,
    stretch: str = "asinh",
    interval: str = "percentile",
    percentile: float = 99.5,
    a: float = 0.1,
    hdu: Optional[int] = None,
) -> FitsImage:
    """Reads the primary (or first image) HDU of a FITS file and stretches it to [0, 1].

    Data cubes give their first 2-D plane (recorded in `plane`). NaN/inf pixels
    are masked out of the interval and set to 0 in the result.

    Args:
        path: `.fits`, `.fit`, `.fts` (optionally `.gz`) file.
        stretch, interval, percentile, a: see `fit_stretch`.
        hdu: HDU index to use instead of the first image HDU.

    Returns:
        `FitsImage` with `image` float32 `[H, W, 1]` in [0, 1].

    Raises:
        ImageReadError: unreadable/corrupt file, no image HDU, all-NaN or constant data.
    """
    from astropy.io import fits

    _check_file(path)
    try:
        with fits.open(path, memmap=True) as hdul:
            data, header, index, plane = _fits_plane(path, hdul, hdu)
    except ImageReadError:
        raise
    except Exception as e:
        raise ImageReadError(path, f"cannot read FITS, file corrupt or truncated ({_one_line(e)})") from e
    return _stretched(path, data, header, index, plane, stretch, interval, percentile, a)


def fits_image_from_hdus(
    hdul,
    name: str = "<HDUList>",
    stretch: str = "asinh",
    interval: str = "percentile",
    percentile: float = 99.5,
    a: float = 0.1,
    hdu: Optional[int] = None,
) -> FitsImage:
    """`read_fits` for HDUs already in memory (an astropy `HDUList`, or a list of HDUs).

    Args:
        hdul: the HDUs; the first image HDU is used unless `hdu` names one.
        name: what error messages call it (there is no file name).

    Raises:
        ImageReadError: no image HDU, all-NaN or constant data.
    """
    try:
        data, header, index, plane = _fits_plane(name, hdul, hdu)
    except ImageReadError:
        raise
    except Exception as e:
        raise ImageReadError(name, f"cannot read FITS data ({_one_line(e)})") from e
    return _stretched(name, data, header, index, plane, stretch, interval, percentile, a)


def _fits_plane(path: str, hdul, hdu: Optional[int]):
    """(float32 2-D data in FITS row order, header copy, HDU index, cube plane or None)."""
    index = _find_image_hdu(path, hdul) if hdu is None else hdu
    if index >= len(hdul):
        raise ImageReadError(path, f"HDU {index} does not exist ({len(hdul)} HDUs)")
    header = hdul[index].header.copy()
    data = hdul[index].data
    if data is None:
        raise ImageReadError(path, f"HDU {index} has no data")
    data = np.asarray(data)
    plane = None
    data = data.reshape([n for n in data.shape if n > 1] or [1])
    if data.ndim > 2:
        plane = 0
        data = data.reshape((-1,) + data.shape[-2:])[0]
    if data.ndim != 2:
        raise ImageReadError(path, f"HDU {index} data is not 2-D (shape {data.shape})")
    # Detach from the memmap in float32 (float64 would double the memory
    # of a large frame for no gain in a [0, 1] display stretch).
    return np.array(data, dtype=np.float32), header, index, plane


def _stretched(path, data, header, index, plane, stretch, interval, percentile, a) -> FitsImage:
    s = fit_stretch(path, data, stretch=stretch, interval=interval, percentile=percentile, a=a)
    image = s.apply(data)[::-1, :, None]
    return FitsImage(
        image=np.ascontiguousarray(image), header=header, stretch=s, flipped=True, hdu_index=index, plane=plane,
        raw=data[::-1],
    )


def read_image(path: str) -> np.ndarray:
    """Reads any supported image as float32 `[H, W, 1|3]` in [0, 1].

    PNG/JPEG/TIFF go through imageio (16-bit PNG through pypng, keeping all 16
    bits); palette images are expanded to RGB; alpha is composited onto black;
    FITS goes through `read_fits` with its default stretch (asinh, 99.5 %).

    Raises:
        ImageReadError: missing, empty, unreadable, corrupt, or unusable file.
    """
    _check_file(path)
    if is_fits(path):
        return read_fits(path).image
    a = _read_raster(path)
    out = normalize(a)
    if out.ndim != 3 or out.shape[-1] not in (1, 3):
        raise ImageReadError(path, f"unexpected decoded shape {out.shape}")
    return out


def read_rgb(path: str) -> np.ndarray:
    """`read_image` as float32 RGB `[H, W, 3]` in [0, 1]: grey images are repeated to three channels."""
    image = read_image(path)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def _png16_bytes(a: np.ndarray) -> bytes:
    import png

    h, w, c = a.shape
    buf = io.BytesIO()
    png.Writer(width=w, height=h, bitdepth=16, greyscale=(c == 1), compression=6).write(
        buf, a.reshape(h, w * c)
    )
    return buf.getvalue()


def encode_png(image: np.ndarray, bits: int = 8) -> bytes:
    """Encodes float [0, 1] `[H, W]`, `[H, W, 1]` or `[H, W, 3]` as PNG bytes (8 or 16 bit)."""
    import imageio.v3 as iio

    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise ValueError(f"expected [H, W, 1|3] image, got shape {a.shape}")
    if bits == 8:
        q = to_uint8(a)
        return iio.imwrite("<bytes>", q[..., 0] if q.shape[-1] == 1 else q, extension=".png")
    if bits == 16:
        return _png16_bytes(to_uint16(a))
    raise ValueError(f"bits must be 8 or 16, got {bits}")


def write_png(path: str, image: np.ndarray, bits: int = 8) -> None:
    """Writes a float [0, 1] image as PNG atomically (temporary file, then rename)."""
    atomic_write_bytes(path, encode_png(image, bits=bits))


def write_tiff16(path: str, image: np.ndarray) -> None:
    """Writes a float [0, 1] image as a 16-bit TIFF atomically."""
    import imageio.v3 as iio

    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    atomic_write_bytes(path, iio.imwrite("<bytes>", to_uint16(a), extension=".tif"))


__all__ = [
    "ImageReadError", "Stretch", "FitsImage", "IMAGE_EXTENSIONS", "is_fits", "is_image_file",
    "list_images", "fit_stretch", "read_fits", "read_image", "read_rgb", "encode_png", "write_png", "write_tiff16",
]
