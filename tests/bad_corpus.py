"""Generates the bad-input corpus: every way an archive download can go wrong.

`make_corpus(folder, good_png, good_fits)` writes, from two real good files:
truncated PNG/JPEG/FITS, a zero-byte file, text named `.png`, all-NaN and
all-zero FITS, FITS with no image HDU, a 1x1 image, a 3x100000 strip, 16-bit and
float TIFF, RGBA and palette PNG, a symlink loop, an unreadable file, and a
directory named like an image. Returns {name: expected outcome}: "ok" for
inputs the tool must process, else a fragment of the expected error message.
"""
from __future__ import annotations

import gzip
import os
import shutil
import sys

import numpy as np


def make_corpus(folder: str, good_png: str, good_fits: str, palette_png: str, rgba_png: str) -> dict[str, str]:
    import imageio.v3 as iio
    from astropy.io import fits

    os.makedirs(folder, exist_ok=True)
    out: dict[str, str] = {}

    def path(name: str) -> str:
        return os.path.join(folder, name)

    png = open(good_png, "rb").read()
    with open(path("truncated.png"), "wb") as f:
        f.write(png[: len(png) // 3])
    out["truncated.png"] = "corrupt or truncated"
    rgb = iio.imread(good_png)
    jpg = iio.imwrite("<bytes>", rgb, extension=".jpg")
    with open(path("truncated.jpg"), "wb") as f:
        f.write(jpg[: len(jpg) // 4])
    out["truncated.jpg"] = "corrupt or truncated"
    raw = gzip.open(good_fits).read() if good_fits.endswith(".gz") else open(good_fits, "rb").read()
    with open(path("truncated.fits"), "wb") as f:
        f.write(raw[: len(raw) // 2])
    out["truncated.fits"] = "truncated"
    open(path("empty.png"), "wb").close()
    out["empty.png"] = "empty file"
    with open(path("text.png"), "w") as f:
        f.write("<html>404 Not Found</html>\n")
    out["text.png"] = "not PNG, JPEG, TIFF or FITS"
    fits.PrimaryHDU(np.full((32, 32), np.nan, np.float32)).writeto(path("all_nan.fits"))
    out["all_nan.fits"] = "no finite pixel"
    fits.PrimaryHDU(np.zeros((32, 32), np.float32)).writeto(path("all_zero.fits"))
    out["all_zero.fits"] = "constant"
    table = fits.BinTableHDU.from_columns([fits.Column("flux", "E", array=np.arange(3, dtype=np.float32))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path("table_only.fits"))
    out["table_only.fits"] = "no image HDU"
    iio.imwrite(path("one_pixel.png"), np.array([[[200, 100, 50]]], np.uint8))
    out["one_pixel.png"] = "at least 2x2"
    strip = np.tile(rgb[:3, :, :], (1, 100_000 // rgb.shape[1] + 1, 1))[:, :100_000]
    iio.imwrite(path("strip_3x100000.png"), strip)
    out["strip_3x100000.png"] = "ok"
    iio.imwrite(path("grey16.tif"), (rgb[..., 0].astype(np.uint16) * 257))
    out["grey16.tif"] = "ok"
    iio.imwrite(path("float.tif"), rgb[..., 1].astype(np.float32) * 12.5 - 100.0)
    out["float.tif"] = "ok"
    shutil.copy(rgba_png, path("rgba.png"))
    out["rgba.png"] = "ok"
    shutil.copy(palette_png, path("palette.png"))
    out["palette.png"] = "ok"
    os.symlink("loop_b.png", path("loop_a.png"))
    os.symlink("loop_a.png", path("loop_b.png"))
    out["loop_a.png"] = "symbolic link"
    out["loop_b.png"] = "symbolic link"
    shutil.copy(good_png, path("unreadable.png"))
    os.chmod(path("unreadable.png"), 0)
    # root reads everything: only expect the error where permissions bind.
    out["unreadable.png"] = "ok" if os.access(path("unreadable.png"), os.R_OK) else "permission denied"
    os.mkdir(path("folder.png"))
    out["folder.png"] = "is a directory"
    return out


def main(argv: list[str]) -> int:
    """`python tests/bad_corpus.py OUT_DIR`: writes the corpus from the committed fixtures and lists it."""
    import glob
    import json

    if len(argv) != 2:
        print("usage: python tests/bad_corpus.py OUT_DIR", file=sys.stderr)
        return 2
    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
    if os.path.lexists(argv[1]) and [n for n in os.listdir(argv[1]) if n not in ("README.md", ".gitignore")]:
        print(f"{argv[1]} is not empty; remove the generated files first", file=sys.stderr)
        return 1
    good_png = sorted(glob.glob(os.path.join(data, "images", "*.png")))[0]
    outcomes = make_corpus(argv[1], good_png, os.path.join(data, "formats", "m51.fits.gz"),
                           os.path.join(data, "formats", "palette_p33423.png"),
                           os.path.join(data, "formats", "rgba_u1810.png"))
    print(json.dumps(outcomes, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
