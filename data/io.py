"""Reading images: the one place that reads PNG/JPEG/TIFF/FITS (writing is `data.writers`).

Everything returned is float32 in [0, 1], channels last, `[H, W, 1]` (grey) or
`[H, W, 3]` (RGB), via `data.normalize.normalize`. Every failure is an
`ImageReadError` whose message starts with the file's path, so a caller working
through a folder can print one clear line per bad file and go on.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional

import numpy as np

from data.formats import UNSUPPORTED_EXTENSIONS, has_fits_extension, is_image_file
from data.normalize import normalize




#: Largest frame any reader decodes, in pixels of the plane read (width x height)
#: as the file's header declares it, checked before a pixel is decoded: a
#: decompression bomb (a few KB of PNG, gzipped FITS or TIFF declaring 45000^2)
#: is refused in one line instead of exhausting memory. Full mode reads with this
#: bound (it works through the frame in tiles); faithful mode, which decodes the
#: whole frame only to shrink it to 224 px, passes the smaller
#: `pipeline.inference.MAX_PIXELS`.
MAX_PIXELS = 2**29  # 536.9 Mpx, e.g. 23170 x 23170


class InputWarning(UserWarning):
    """Something about a readable input worth one line (astropy's complaints, the plane of a cube);
    the message starts with the file's path."""


def _warn(path: str, text: str) -> None:
    warnings.warn(f"{printable_path(path)}: {' '.join(str(text).split())}", InputWarning, stacklevel=3)


def printable_path(path: str) -> str:
    """`path` with control characters (a newline in a file name) and undecodable bytes escaped
    (`\\n`, `\\udcff`), so that a message naming it stays on one line; other text is unchanged."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in path)


class ImageReadError(ValueError):
    """An input file that cannot be used as an image; the message names the file (on one line:
    see `printable_path`); `path` keeps the real name."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{printable_path(path)}: {reason}")
        self.path = path
        self.reason = reason


def is_fits(path: str) -> bool:
    """True for FITS by extension, or by the `SIMPLE  =` card that opens every FITS file."""
    if has_fits_extension(path):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(9) == b"SIMPLE  ="
    except OSError:
        return False


def list_images(directory: str, recursive: bool = False, unsupported: Optional[list] = None) -> list[str]:
    """Image and FITS files under `directory`, sorted; hidden files skipped.

    Args:
        unsupported: when given, image files of a format this module does not
            read (`UNSUPPORTED_EXTENSIONS`: camera raw, HEIC, JPEG 2000...)
            are appended to it, sorted, so the caller can say so.

    Raises:
        ImageReadError: if `directory` is not a readable directory.
    """
    if not os.path.isdir(directory):
        raise ImageReadError(directory, "not a directory")
    names = []
    if recursive:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            names += [os.path.join(root, f) for f in files if not f.startswith(".")]
    else:
        names = [os.path.join(directory, f) for f in os.listdir(directory) if not f.startswith(".")]
    if unsupported is not None:
        unsupported += sorted(n for n in names if n.lower().endswith(UNSUPPORTED_EXTENSIONS))
    return sorted(n for n in names if is_image_file(n))


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
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
}


def _sniff(head: bytes) -> Optional[str]:
    """The format named by the file's first bytes, or None."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _one_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}" + ("..." if len(text) > limit else "")


def _raster_head(path: str) -> bytes:
    """The first bytes of a PNG/JPEG/TIFF file; `ImageReadError` when they are none of those."""
    with open(path, "rb") as f:
        head = f.read(32)
    if _sniff(head) is None:
        raise ImageReadError(path, "cannot decode image: content is not PNG, JPEG, TIFF or FITS (nor GIF, BMP, WebP)")
    return head


# Read through Pillow itself: EXIF orientation, CMYK and palette modes need its conversions.
_PILLOW_FORMATS = ("JPEG", "GIF", "BMP", "WebP")


def _read_pillow(path: str) -> np.ndarray:
    """JPEG/GIF/BMP/WebP (first frame) as uint8 `[H, W]`, `[H, W, 3]` or `[H, W, 4]`, upright.

    The EXIF orientation tag is applied (cameras store portrait frames
    sideways), CMYK and YCbCr become RGB through Pillow's conversion (taking
    CMYK's four channels as RGBA would give a black image), palettes expand to
    RGB (RGBA when they have a transparent entry).
    """
    from PIL import ImageOps

    with _pillow().open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
        elif im.mode == "1":
            im = im.convert("L")
        elif im.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
        return np.asarray(im)


def check_declared_size(path: str, width: int, height: int, max_pixels: int) -> None:
    """Refuses a frame whose declared `width` x `height` exceeds `max_pixels` (see `MAX_PIXELS`).

    Raises:
        ImageReadError: naming the size and the limit.
    """
    if width * height > max_pixels:
        raise ImageReadError(path, f"image declares {width}x{height} px ({width * height / 1e6:.1f} Mpx), over this "
                             f"mode's limit of {max_pixels / 1e6:.1f} Mpx; refused before decoding")


def check_frame_size(path: str, width: int, height: int, error: type = ImageReadError) -> None:
    """Refuses a frame under 2x2 px (nothing to resize, colourise or tile), as `error(path, reason)`."""
    if width < 2 or height < 2:
        raise error(path, f"image is {width}x{height} px; at least 2x2 is needed")


def _pillow():
    """Pillow, with its own decompression-bomb check off: every file this module
    opens is checked first against the caller's bound (`check_declared_size`),
    and Pillow's fixed 179 Mpx error would refuse frames that bound allows."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    return Image


def declared_raster_size(path: str, head: bytes) -> Optional[tuple[int, int]]:
    """(width, height) a PNG/JPEG/TIFF/GIF/BMP/WebP declares in its header, without decoding pixels.

    PNG: the IHDR chunk; TIFF: the first page's tags (tifffile reads only the
    directory); the rest: Pillow's lazy open. None when the header cannot be
    parsed (decoding then reports the damage).
    """
    fmt = _sniff(head)
    try:
        if fmt == "PNG":
            if head[12:16] == b"IHDR" and len(head) >= 24:
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            return None
        if fmt in ("TIFF", "BigTIFF"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                return int(page.imagewidth), int(page.imagelength)
        if fmt in _PILLOW_FORMATS:
            with _pillow().open(path) as im:
                return im.size
    except Exception:  # a damaged header: the decoder says what is wrong
        return None
    return None


def _read_tiff_page(path: str) -> Optional[np.ndarray]:
    """The first page of a TIFF through tifffile, channels last; a stack of pages is said in one warning.

    (imageio's `index=0` gives a whole multi-page series, whose pages would
    then be taken as colour channels.) None when tifffile cannot decode it
    (a compression it lacks): the caller falls back to imageio.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            a = page.asarray()
            pages = len(tif.pages)
            separate = page.planarconfig == 2 and page.samplesperpixel > 1
    except Exception:
        return None
    if separate and a.ndim == 3:
        a = np.moveaxis(a, 0, -1)  # planar [C, H, W]
    if pages > 1:
        _warn(path, f"TIFF with {pages} pages: page 1 used")
    return a


def _read_raster(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    import imageio.v3 as iio

    head = _raster_head(path)
    size = declared_raster_size(path, head)
    if size is not None:
        check_declared_size(path, size[0], size[1], max_pixels)
    try:
        if _png_bit_depth(head) == 16:
            a = _read_png16(path)
        elif _sniff(head) in _PILLOW_FORMATS:
            a = _read_pillow(path)
        elif _sniff(head) in ("TIFF", "BigTIFF") and (tiff := _read_tiff_page(path)) is not None:
            a = tiff
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
            from data.fits_io import fit_stretch

            stretch = fit_stretch(path, a)
            return _channels_last(path, stretch.apply(a))
    return _channels_last(path, a)


def read_image(path: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Reads any supported image as float32 `[H, W, 1|3]` in [0, 1].

    PNG/JPEG/TIFF go through imageio (16-bit PNG through pypng, keeping all 16
    bits); palette images are expanded to RGB; alpha is composited onto black;
    FITS goes through `read_fits` with its default stretch (asinh, 99.5 %).
    A frame declaring more than `max_pixels` is refused before decoding.

    Raises:
        ImageReadError: missing, empty, unreadable, corrupt, or unusable file.
    """
    _check_file(path)
    if is_fits(path):
        from data.fits_io import read_fits

        return read_fits(path, max_pixels=max_pixels).image
    a = _read_raster(path, max_pixels)
    out = normalize(a)
    if out.ndim != 3 or out.shape[-1] not in (1, 3):
        raise ImageReadError(path, f"unexpected decoded shape {out.shape}")
    return out


def read_rgb(path: str) -> np.ndarray:
    """`read_image` as float32 RGB `[H, W, 3]` in [0, 1]: grey images are repeated to three channels."""
    image = read_image(path)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


_FITS_NAMES = ("Stretch", "FitsImage", "STRETCHES", "INTERVALS", "fit_stretch", "read_fits", "fits_image_from_hdus")


def __getattr__(name: str):
    # FITS reading lives in data.fits_io (which imports this module); its names
    # are also importable from here, as they always were.
    if name in _FITS_NAMES:
        from data import fits_io

        return getattr(fits_io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ImageReadError", "InputWarning", "Stretch", "FitsImage", "is_fits",
    "list_images", "fit_stretch", "read_fits", "read_image", "read_rgb",
]
