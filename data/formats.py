"""The one table of image file names the project reads, and how a name splits into stem and extension.

Everything that decides by name whether a file is an image (listing inputs,
fetching sources, preparing data, naming outputs) asks here, so the lists
cannot disagree. Content is not checked: `data.io.is_fits` also recognises an
unnamed FITS file by its first card, and `data.io.read_image` decides in the end.
"""
from __future__ import annotations

import os

#: Raster formats Pillow decodes (`data.io.read_image`).
RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp", ".webp")
#: FITS names: plain, gzip-compressed, or tile-compressed (`.fz`, fpack's name).
FITS_EXTENSIONS = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz")
IMAGE_EXTENSIONS = RASTER_EXTENSIONS + FITS_EXTENSIONS
#: Image formats found in camera and astronomy folders that are not decoded here:
#: `data.io.list_images` reports them so they are said to be refused, not silently skipped.
UNSUPPORTED_EXTENSIONS = (".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".rw2", ".raf", ".raw", ".heic", ".heif",
                          ".avif", ".jp2", ".j2k", ".jxl", ".xisf", ".psd", ".tga", ".pgm", ".ppm", ".pnm", ".ico")
# The two-part extensions, longest first, so `a.fits.gz` is `a` + `.fits.gz`, not `a.fits` + `.gz`.
_COMPOUND = tuple(sorted((e for e in IMAGE_EXTENSIONS if e.count(".") > 1), key=len, reverse=True))


def is_image_file(path: str) -> bool:
    """True when the name has an image or FITS extension (any case; content is not checked)."""
    return os.path.basename(path).lower().endswith(IMAGE_EXTENSIONS)


def has_fits_extension(path: str) -> bool:
    """True when the name has one of `FITS_EXTENSIONS` (any case)."""
    return path.lower().endswith(FITS_EXTENSIONS)


def split_extension(name: str) -> tuple[str, str]:
    """(stem, extension) of a file name, a compressed FITS extension kept whole.

    `m51.fits.gz` -> (`m51`, `.fits.gz`); `a.PNG` -> (`a`, `.PNG`); otherwise
    `os.path.splitext` (the case of the name is kept).
    """
    lower = name.lower()
    for ext in _COMPOUND:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)], name[-len(ext):]
    return os.path.splitext(name)


__all__ = ["RASTER_EXTENSIONS", "FITS_EXTENSIONS", "IMAGE_EXTENSIONS", "UNSUPPORTED_EXTENSIONS", "is_image_file",
           "has_fits_extension", "split_extension"]
