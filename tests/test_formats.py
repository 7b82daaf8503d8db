"""The one file-format table (`data.formats`): every listed extension is listed, split and read."""
import gzip
import os

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from data.formats import FITS_EXTENSIONS, IMAGE_EXTENSIONS, RASTER_EXTENSIONS, is_image_file, split_extension
from data.io import list_images, read_rgb

# A small RGB gradient with 256 distinct colours (so GIF's palette can hold it).
_RGB = np.stack([*np.meshgrid(np.arange(16) * 16, np.arange(16) * 16), np.full((16, 16), 128)], -1).astype(np.uint8)
# Integer counts: FITS tile compression (.fz) keeps integers exactly.
_COUNTS = (np.arange(16 * 12, dtype=np.int16).reshape(12, 16) * 7)
_PILLOW = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF",
           ".bmp": "BMP", ".webp": "WEBP"}
_LOSSLESS = (".png", ".tif", ".tiff", ".bmp", ".webp")  # WebP written with lossless=True


def _write(path: str, ext: str) -> None:
    if ext in RASTER_EXTENSIONS:
        Image.fromarray(_RGB).save(path, _PILLOW[ext], **({"lossless": True} if ext == ".webp" else {}))
    elif ext.endswith(".fz"):
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(_COUNTS)]).writeto(path)
    else:
        hdul = fits.HDUList([fits.PrimaryHDU(_COUNTS)])
        if ext.endswith(".gz"):
            import io

            buf = io.BytesIO()
            hdul.writeto(buf)
            with open(path, "wb") as f:
                f.write(gzip.compress(buf.getvalue()))
        else:
            hdul.writeto(path)


def test_the_table_lists_each_extension_once_and_fits_names_split_whole():
    assert len(set(IMAGE_EXTENSIONS)) == len(IMAGE_EXTENSIONS) == len(RASTER_EXTENSIONS) + len(FITS_EXTENSIONS)
    assert split_extension("m51.fits.gz") == ("m51", ".fits.gz")
    assert split_extension("dir/M51.FTS.GZ") == ("dir/M51", ".FTS.GZ")
    assert split_extension("a.b.png") == ("a.b", ".png")
    assert split_extension(".fits.gz") == (".fits", ".gz")  # a hidden file, not an empty stem
    assert not is_image_file("notes.txt") and not is_image_file("raw.cr2")


@pytest.mark.parametrize("ext", IMAGE_EXTENSIONS)
def test_every_listed_extension_is_listed_and_read(tmp_path, ext):
    name = "frame" + ext.upper()  # extensions match in any case
    path = str(tmp_path / name)
    _write(path, ext)
    assert is_image_file(path) and split_extension(name) == ("frame", ext.upper())
    assert list_images(str(tmp_path)) == [path]
    image = read_rgb(path)
    if ext in FITS_EXTENSIONS:
        # Every FITS name decodes to what the plain .fits of the same data gives (same stretch, same bits).
        plain = str(tmp_path / "plain" / "frame.fits")
        os.makedirs(os.path.dirname(plain))
        fits.PrimaryHDU(_COUNTS).writeto(plain)
        assert image.shape == (12, 16, 3)
        np.testing.assert_array_equal(image, read_rgb(plain))
    elif ext in _LOSSLESS:
        # 8-bit levels / 255 in float32: exact.
        np.testing.assert_array_equal(image, _RGB.astype(np.float32) / 255.0)
    else:
        # Lossy (JPEG) or palette (GIF) files: the pixels Pillow itself decodes from the file.
        with Image.open(path) as im:
            expected = np.asarray(im.convert("RGB"), np.float32) / 255.0
        np.testing.assert_array_equal(image, expected)
