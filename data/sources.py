"""Where each training image came from: the manifest `sources.json` and what it says of a file.

One record per image file in a `data.fetch` output folder, saying where it
came from, its credit, sha256, format, size and whether it is true colour
(palette and greyscale images make poor colour targets). The sources
themselves are `data.stellarium` and `data.downloads`; nothing here reads flags.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from typing import Optional

import numpy as np

from common.files import atomic_write_bytes

MANIFEST = "sources.json"
# Above this many pixels the grey/colour content check is skipped (a full decode
# of the largest Hubble mosaics needs gigabytes); the mode-based flags remain.
MAX_CHECK_PIXELS = 120_000_000
# How much of a file `describe_image` sniffs (`sniff_format`: 64 KiB is plenty).
_SNIFF_BYTES = 1 << 16


class FetchError(RuntimeError):
    """A source that cannot be fetched; the message says what to do about it."""


# --------------------------------------------------------------------------- image inspection


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sniff_format(head: bytes, name: str = "") -> Optional[str]:
    """The format ("png", "jpeg", "tiff" or "fits") named by a file's first bytes (64 KiB is plenty), or None.

    Gzip counts as FITS only when the name ends in `.gz` and the start of the
    decompressed stream is a FITS header.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"SIMPLE  ="):
        return "fits"
    if head.startswith(b"\x1f\x8b") and name.lower().endswith(".gz"):
        try:
            if zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 16).startswith(b"SIMPLE  ="):
                return "fits"
        except zlib.error:
            return None
    return None


def _grey_and_chroma(rgb: np.ndarray) -> tuple[bool, float]:
    """`rgb [H, W, 3]` uint8 -> (all channels equal, mean of max-min over channels in 8-bit levels)."""
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    return bool(not spread.any()), round(float(spread.mean()), 3)


def _describe_fits(path: str) -> dict:
    from astropy.io import fits

    with fits.open(path, memmap=True) as hdul:
        for hdu in hdul:  # the header alone gives the shape; no pixel is read
            naxis = int(hdu.header.get("NAXIS", 0)) if hdu.is_image else 0
            shape = tuple(int(hdu.header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))
            if naxis >= 2 and all(shape):
                break
        else:
            raise ValueError("no image data in any HDU")
    rgb = len(shape) == 3 and shape[0] == 3
    # FITS planes are filter bands mapped to colours by choice, never a photograph's colour.
    return {"width": int(shape[-1]), "height": int(shape[-2]), "mode": "rgb" if rgb else "grey",
            "grey": not rgb, "chroma": None if rgb else 0.0, "true_colour": False}


def describe_image(path: str, name: str = "") -> dict:
    """What a file holds, without changing it (`name`, default the path, tells gzipped FITS apart).

    Returns:
        `{"format": "png"|"jpeg"|"tiff"|"fits", "width", "height",
        "mode": "rgb"|"rgba"|"palette"|"grey", "grey": bool (content has no
        colour: single channel, or all colour channels equal everywhere, or a
        palette of greys), "chroma": mean max-min channel spread in 8-bit levels
        (0 for grey; None when not computed), "true_colour": bool (RGB/RGBA
        storage with colour content)}`.

    Raises:
        ValueError: not an image this project reads, or corrupt/truncated.
    """
    with open(path, "rb") as f:
        fmt = sniff_format(f.read(_SNIFF_BYTES), name or path)
    if fmt is None:
        raise ValueError("content is not PNG, JPEG, TIFF or FITS")
    if fmt == "fits":
        try:
            return {"format": fmt, **_describe_fits(path)}
        except Exception as e:  # astropy raises many types for broken files
            raise ValueError(f"unreadable FITS ({type(e).__name__}: {e})") from e
    from PIL import Image

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # sizes are checked below instead
    try:
        with Image.open(path) as im:
            im.verify()  # walks the whole stream: catches truncation and bad CRCs
        with Image.open(path) as im:
            width, height, pil_mode = im.width, im.height, im.mode
            mode = {"P": "palette", "PA": "palette", "RGB": "rgb", "RGBA": "rgba", "RGBX": "rgb",
                    "CMYK": "rgb", "YCbCr": "rgb", "LAB": "rgb", "HSV": "rgb"}.get(pil_mode, "grey")
            grey, chroma = (True, 0.0) if mode == "grey" else (None, None)
            if mode != "grey" and width * height <= MAX_CHECK_PIXELS:
                if mode == "palette":
                    im = im.convert("RGBA" if "transparency" in im.info or pil_mode == "PA" else "RGB")
                grey, chroma = _grey_and_chroma(np.asarray(im.convert("RGB")))
    except Exception as e:  # decoders raise many types (OSError, SyntaxError, struct.error ...)
        raise ValueError(f"cannot decode, corrupt or truncated ({type(e).__name__}: {e})") from e
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    return {"format": fmt, "width": width, "height": height, "mode": mode, "grey": grey, "chroma": chroma,
            "true_colour": mode in ("rgb", "rgba") and grey is not True}


# --------------------------------------------------------------------------- manifest


def load_manifest(out: str) -> list[dict]:
    """Records of `out/sources.json` (empty when there is none).

    Raises:
        FetchError: the manifest exists but is not a JSON list (it is never silently replaced).
    """
    path = os.path.join(out, MANIFEST)
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except (OSError, ValueError) as e:
        raise FetchError(f"{path}: unreadable manifest ({e}); move it away to start a new one") from e
    if not isinstance(records, list) or not all(isinstance(r, dict) and "file" in r for r in records):
        raise FetchError(f"{path}: not a list of records with a 'file' field; move it away to start a new one")
    return records


def save_manifest(out: str, records: list[dict]) -> str:
    """Writes the records of files that exist in `out` (and of held-out ones, never copied), by file name, atomically."""
    keep = sorted((r for r in records if r.get("held_out") or os.path.isfile(os.path.join(out, r["file"]))),
                  key=lambda r: r["file"])
    path = os.path.join(out, MANIFEST)
    atomic_write_bytes(path, (json.dumps(keep, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def extension_for(fmt: str) -> str:
    return {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "fits": ".fits"}[fmt]

