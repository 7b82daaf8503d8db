"""Writing images: float [0, 1] arrays as 8/16-bit PNG and 16-bit TIFF, atomically.

The write side of `data.io` (which reads): files are written through
`common.files.atomic_write_bytes`, so a reader never sees a partial file.
"""
from __future__ import annotations

import io

import numpy as np

from common.files import atomic_write_bytes
from data.normalize import to_uint8, to_uint16

#: zlib level of every PNG written (Pillow's and pypng's default is 6). On the default
#: pipeline's 896^2 outputs, level 4 made files 6 % larger in half the encode time
#: (bench/results.md); the pixels are the same whatever the level.
PNG_COMPRESSION = 4


def _png16_bytes(a: np.ndarray) -> bytes:
    import png

    h, w, c = a.shape
    buf = io.BytesIO()
    png.Writer(width=w, height=h, bitdepth=16, greyscale=(c == 1), compression=PNG_COMPRESSION).write(
        buf, a.reshape(h, w * c)
    )
    return buf.getvalue()


def encode_png(image: np.ndarray, bits: int = 8) -> bytes:
    """Encodes float [0, 1] `[H, W]`, `[H, W, 1]` or `[H, W, 3]` as PNG bytes (8 or 16 bit)."""
    from PIL import Image

    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise ValueError(f"expected [H, W, 1|3] image, got shape {a.shape}")
    if bits == 8:
        q = to_uint8(a)
        buf = io.BytesIO()
        Image.fromarray(q[..., 0] if q.shape[-1] == 1 else q).save(buf, format="PNG", compress_level=PNG_COMPRESSION)
        return buf.getvalue()
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


__all__ = ["PNG_COMPRESSION", "encode_png", "write_png", "write_tiff16"]
