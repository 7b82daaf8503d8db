"""Makes multi-filter test frames from one colour picture, composes them back, and draws the README figure.

    python docs/make_compose_figure.py --image tests/data/images/n3314.png --frames_dir frames --out docs/compose.jpg

No multi-filter set of one field exists among the Debian-packaged FITS files
here, so the frames are made: the picture's channels are taken as the sky in
three HST filters (R = F814W, G = F555W, B = F435W), linearised by assuming a
display gamma of 2.2 (the picture's real stretch is unknown), and each is
observed by its own 224x224 frame with its own WCS (rotated by 0, +6 and -8
degrees, shifted by a few pixels), different gain, sky level and Gaussian noise,
with PHOTPLAM and FILTER keywords. The frames are written to `--frames_dir`
(listed G, B, R, out of wavelength order), composed back with
`pipeline.compose_job.compose` (default settings, x4 with `--srgan_model`), and
the figure shows the three frames, the x4 composite (gaps, where a frame does
not reach, drawn as a checkerboard: they are transparent in the PNG) and the
picture itself.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PIX = 0.1 / 3600  # degrees per px of the picture (and the frames)
CENTRE = (202.47, 47.19)
#: (file, channel, filter, PHOTPLAM, rotation deg, shift px, gain, sky, noise sigma in gain units)
FRAMES = [
    ("f555w.fits", 1, "F555W", 5361.0, 0.0, (0.0, 0.0), 40.0, 12.0, 0.004),
    ("f435w.fits", 2, "F435W", 4329.0, 6.0, (9.0, -6.0), 9.0, 2.0, 0.006),
    ("f814w.fits", 0, "F814W", 8045.0, -8.0, (-7.0, 8.0), 120.0, 45.0, 0.003),
]


def _wcs(size: int, rot_deg: float, shift):
    import numpy as np
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = CENTRE
    w.wcs.crpix = [size / 2 + 0.5 + shift[0], size / 2 + 0.5 + shift[1]]
    t = np.radians(rot_deg)
    w.wcs.cd = PIX * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    return w


def make_frames(image, folder: str, size: int = 224, seed: int = 0) -> list[str]:
    """Writes the three FITS frames of `image` (`[H, W, 3]` in [0, 1], display order) into `folder`."""
    import numpy as np
    from astropy.io import fits
    from scipy import ndimage

    h, w = image.shape[:2]
    truth = _wcs(h, 0.0, (0.0, 0.0))
    linear = np.asarray(image, np.float64)[::-1] ** 2.2  # FITS row order; assumed display gamma
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, channel, filt, plam, rot, shift, gain, sky, noise in FRAMES:
        wcs = _wcs(size, rot, shift)
        y, x = np.mgrid[0:size, 0:size]
        tx, ty = truth.world_to_pixel(wcs.pixel_to_world(x, y))
        flux = ndimage.map_coordinates(linear[..., channel], [ty, tx], order=3, mode="nearest")
        data = gain * (np.clip(flux, 0, None) + rng.normal(0.0, noise, flux.shape)) + sky
        header = wcs.to_header()
        header["FILTER"], header["PHOTPLAM"], header["BUNIT"] = filt, plam, "ELECTRONS/S"
        header["COMMENT"] = "synthetic frame made by docs/make_compose_figure.py from a colour picture"
        path = os.path.join(folder, name)
        fits.PrimaryHDU(data.astype(np.float32), header).writeto(path, overwrite=True)
        paths.append(path)
    return paths


def _checker(rgba):
    import numpy as np

    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    yy, xx = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]]
    board = np.where(((yy // 32 + xx // 32) % 2)[..., None] == 0, 0.55, 0.75)
    return rgb * alpha + board * (1 - alpha)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=os.path.join(ROOT, "tests", "data", "images", "n3314.png"))
    parser.add_argument("--frames_dir", default=None, help="where to write the FITS frames (default: a temp folder)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "compose.jpg"))
    parser.add_argument("--srgan_model", default=os.path.join(ROOT, "checkpoints", "srgan"))
    args = parser.parse_args()

    import numpy as np

    from data.io import read_fits, read_rgb
    from data.normalize import normalize
    from pipeline.compose_job import ComposeConfig, compose
    from pipeline.figures import side_by_side

    image = read_rgb(args.image)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_frames(image, args.frames_dir or os.path.join(tmp, "frames"))
        result = compose(ComposeConfig(filters=tuple(paths), output=os.path.join(tmp, "out"),
                                       srgan_model=args.srgan_model, formats=("png",)))
        import png

        width, height, rows, _ = png.Reader(filename=result.written[0]).asDirect()
        rgba = normalize(np.vstack([np.asarray(r, np.uint8) for r in rows]).reshape(height, width, 4))
        panels = [(f"{os.path.basename(p)} ({FRAMES[i][2]})", read_fits(p).image) for i, p in enumerate(paths)]
    panels += [("composite x4 (gaps: checkerboard)", _checker(rgba)), ("the picture", image)]
    side_by_side(args.out, panels, title="True colour from three filter frames (synthetic, from "
                 f"{os.path.basename(args.image)})", zoom=True)
    if args.out.lower().endswith((".jpg", ".jpeg")):
        # JPEG keeps the repository's figure small (a PNG of it is ~650 KB).
        import io

        from PIL import Image

        from common.files import atomic_write_bytes

        buf = io.BytesIO()
        Image.open(args.out).convert("RGB").save(buf, format="JPEG", quality=90)
        atomic_write_bytes(args.out, buf.getvalue())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
