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

import re

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
