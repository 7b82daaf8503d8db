"""Which real data is held out for the cross-domain evaluation, and which may be trained on.

A model that wins on its own collection's test split can lose everywhere else
(the project's first SR model did: +0.72 dB in-domain, -1.5 dB on Hubble pictures
it never saw). So whole *domains* are kept out of training and tuning:

* `stellarium-hubble`: every image of Stellarium's nebula set whose credit names
  Hubble / STScI / NASA (not a ground survey such as DSS or Pan-STARRS); about 48
  of its 555 pictures. `is_held_out_credit` is the one rule, used by `data.prepare`
  (which leaves them out of train/dev/test) and by the evaluation (which scores them).
* `hdf`: scikit-image's Hubble eXtreme Deep Field (never a training source).
* `raw-hst`: raw HST frames shipped in Debian packages: WFPC2 `u40x010hm_c0f.fits`
  (python3-stsci.tools, 4 chips of 800x800) and WF/PC `m51.fits.gz`
  (libastro-fits-cfitsio-perl). Grey, linear units.

Raw frames of *other* packages (`TRAIN_FITS`: ESO-MIDAS test images and IRAF's
`pix`) may be used for training. Paths are relative to the root where the Debian
packages were unpacked (`dpkg-deb -x PKG.deb ROOT`).
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Optional

import numpy as np

HUBBLE_CREDIT = re.compile(r"hubble|st ?sci|space telescope|\bacs\b", re.IGNORECASE)
NASA_CREDIT = re.compile(r"\bnasa\b", re.IGNORECASE)
GROUND_SURVEY = re.compile(r"digitized sky survey|pan-starrs", re.IGNORECASE)

STELLARIUM_DIR = "usr/share/stellarium/nebulae/default"

# (path under the unpacked-package root, HDU index or None for the first image HDU, planes to use)
HELD_OUT_FITS = (
    ("usr/lib/python3/dist-packages/stsci/tools/tests/data/u40x010hm_c0f.fits", 0, (0, 1, 2, 3)),
    ("usr/share/doc/libastro-fits-cfitsio-perl/examples/m51.fits.gz", 0, None),
)
TRAIN_FITS = (
    ("usr/lib/eso-midas/22FEB/test/prim/ISAAC.2006-04-13T06:32:38.944.fits", 0, None),
    ("usr/lib/eso-midas/22FEB/test/prim/NOT.fits", 1, None),
    ("usr/lib/eso-midas/22FEB/test/prim/ccd.fits", 0, None),
    ("usr/lib/eso-midas/22FEB/test/prim/hbo.fits", 0, None),
    ("usr/lib/eso-midas/22FEB/test/prim/image_M12c.fits", 0, None),
    ("usr/lib/eso-midas/22FEB/test/prim/vimos.fits", 1, None),
    ("usr/lib/eso-midas/22FEB/test/prim/vimos.fits", 2, None),
)
DOMAINS = ("stellarium-hubble", "hdf", "raw-hst")


def is_held_out_credit(credit: str) -> bool:
    """True for a Stellarium image credited to Hubble (held out of every training split).

    Args:
        credit: the image's credit line from Stellarium's `textures.json`.

    Returns:
        Whether it names Hubble, STScI, the Space Telescope or ACS, or NASA
        without a ground survey (DSS, Pan-STARRS) beside it.
    """
    credit = credit or ""
    return bool(HUBBLE_CREDIT.search(credit) or (NASA_CREDIT.search(credit) and not GROUND_SURVEY.search(credit)))


# --------------------------------------------------------------------------- loaders
#
# Each loader turns an unpacked-packages root into the domain's images, always
# the same images in the same order (sorted names, fixed crops), so every number
# of the cross-domain table can be reproduced.

# Which Debian package ships what, for the error message when it is missing.
PACKAGE_OF = {
    STELLARIUM_DIR: "stellarium-data",
    HELD_OUT_FITS[0][0]: "python3-stsci.tools",
    HELD_OUT_FITS[1][0]: "libastro-fits-cfitsio-perl",
    **{rel: "eso-midas-testdata" for rel, _, _ in TRAIN_FITS},
}
HDF_CROP = 256
RAW_CROP = 512


class DomainDataError(FileNotFoundError):
    """A domain's source is missing under the packages root; the message says which package to unpack."""


@dataclasses.dataclass(frozen=True)
class DomainImage:
    """One image of a held-out domain.

    Attributes:
        domain: one of `DOMAINS`.
        name: stable identifier (file name, crop or chip).
        image: picture domains: float32 RGB `[H, W, 3]` in [0, 1]; raw-hst: None.
        linear: raw-hst: float32 `[H, W]` in the file's own (linear) units, rows
            in display order as `data.io.read_fits` gives them; pictures: None.
        credit: the image's credit line (Stellarium) or source.
    """

    domain: str
    name: str
    image: Optional[np.ndarray] = None
    linear: Optional[np.ndarray] = None
    credit: str = ""


def _missing(root: str, rel: str) -> DomainDataError:
    package = PACKAGE_OF.get(rel, "?")
    return DomainDataError(
        f"{os.path.join(root, rel)}: missing; unpack Debian package {package} there "
        f"(apt-get download {package} && dpkg-deb -x {package}_*.deb {root})")


def crop_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """The top-left `[H - H % m, W - W % m]` part (the SR evaluation's mod-crop)."""
    return image[: image.shape[0] - image.shape[0] % multiple, : image.shape[1] - image.shape[1] % multiple]


def grid_crops(image: np.ndarray, size: int) -> list[tuple[tuple[int, int], np.ndarray]]:
    """Non-overlapping `size` x `size` crops on a grid centred in the image.

    Returns:
        [((top, left), crop)] in row-major order; the whole image (mod-cropped to
        4) as the one entry when it is smaller than `size` either way.
    """
    h, w = image.shape[:2]
    rows, cols = h // size, w // size
    if rows == 0 or cols == 0:
        return [((0, 0), crop_to_multiple(image, 4))]
    top0, left0 = (h - rows * size) // 2, (w - cols * size) // 2
    out = []
    for r in range(rows):
        for c in range(cols):
            top, left = top0 + r * size, left0 + c * size
            out.append(((top, left), image[top : top + size, left : left + size]))
    return out


def load_stellarium_hubble(root: str, multiple: int = 4) -> list[DomainImage]:
    """Every Stellarium nebula image whose `textures.json` credit is held out (`is_held_out_credit`).

    Read with `data.io.read_rgb` (palette expanded, alpha composited onto black,
    grey repeated to RGB), mod-cropped to `multiple`; sorted by file name.

    Raises:
        DomainDataError: no `textures.json`, or a listed held-out image is missing.
    """
    from data.io import read_rgb
    from data.stellarium import parse_textures_json

    folder = os.path.join(root, STELLARIUM_DIR)
    textures = os.path.join(folder, "textures.json")
    if not os.path.isfile(textures):
        raise _missing(root, STELLARIUM_DIR)
    with open(textures, encoding="utf-8") as f:
        credits = parse_textures_json(f.read(), textures)
    out = []
    for name in sorted(credits):
        credit = credits[name]["credit"]
        if not is_held_out_credit(credit):
            continue
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise DomainDataError(f"{path}: listed in {textures} but missing")
        out.append(DomainImage("stellarium-hubble", os.path.splitext(name)[0],
                               image=crop_to_multiple(read_rgb(path), multiple), credit=credit))
    if not out:
        raise DomainDataError(f"{textures}: no image with a held-out (Hubble) credit")
    return out


def load_hdf(crop: int = HDF_CROP) -> list[DomainImage]:
    """scikit-image's Hubble eXtreme Deep Field cut into fixed non-overlapping `crop` px squares.

    Raises:
        DomainDataError: scikit-image is not installed (`pip install scikit-image`,
            the `eval` extra).
    """
    try:
        import skimage.data
    except ImportError as e:
        raise DomainDataError("hdf: needs scikit-image (pip install scikit-image, or the 'eval' extra)") from e
    from data.normalize import normalize

    hdf = normalize(skimage.data.hubble_deep_field())
    return [DomainImage("hdf", f"hdf_y{top}_x{left}", image=np.ascontiguousarray(c),
                        credit="NASA, ESA, Hubble eXtreme Deep Field (scikit-image)")
            for (top, left), c in grid_crops(hdf, crop)]


def _fits_planes(path: str, hdu: int, planes) -> list[tuple[str, np.ndarray]]:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        data = np.asarray(hdul[hdu].data, dtype=np.float32)
    data = data.reshape([n for n in data.shape if n > 1])
    if data.ndim == 2:
        return [("", data)]
    return [(f"_chip{p}", data[p]) for p in (planes if planes is not None else range(data.shape[0]))]


def load_raw_hst(root: str, crop: int = RAW_CROP, max_frames: int = 0, files=HELD_OUT_FITS) -> list[DomainImage]:
    """The `HELD_OUT_FITS` frames as linear float data, each chip/plane its own image.

    Rows are flipped to display order (as `data.io.read_fits` does); a frame
    larger than `crop` gives its central `crop` px square (0: whole frames);
    everything is mod-cropped to 4.

    Args:
        root: the unpacked-packages root.
        crop: side of the central crop (0 keeps whole frames).
        max_frames: keep only the first this many images (0: all).
        files: (path, HDU, planes) entries; `TRAIN_FITS` gives the training
            side's raw frames (for checks that must not touch the held-out ones).

    Raises:
        DomainDataError: a frame's package is not unpacked under `root`.
    """
    out = []
    for rel, hdu, planes in files:
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            raise _missing(root, rel)
        stem = os.path.basename(rel).split(".")[0] + (f"_hdu{hdu}" if hdu else "")  # two HDUs of one file: two names
        for suffix, plane in _fits_planes(path, hdu, planes):
            plane = plane[::-1]
            if crop and min(plane.shape) > crop:
                top, left = (plane.shape[0] - crop) // 2, (plane.shape[1] - crop) // 2
                plane = plane[top : top + crop, left : left + crop]
            out.append(DomainImage("raw-hst", stem + suffix, linear=np.ascontiguousarray(crop_to_multiple(plane, 4)),
                                   credit=f"{PACKAGE_OF[rel]}: {rel}"))
    return out[:max_frames] if max_frames else out


def load_domain(domain: str, root: str, max_images: int = 0, hdf_crop: int = HDF_CROP,
                raw_crop: int = RAW_CROP) -> list[DomainImage]:
    """The images of one held-out domain (see the loaders); `max_images` > 0 keeps the first that many."""
    if domain == "stellarium-hubble":
        images = load_stellarium_hubble(root)
    elif domain == "hdf":
        images = load_hdf(hdf_crop)
    elif domain == "raw-hst":
        images = load_raw_hst(root, raw_crop)
    else:
        raise ValueError(f"unknown domain {domain!r}; choose from {DOMAINS}")
    return images[:max_images] if max_images else images
