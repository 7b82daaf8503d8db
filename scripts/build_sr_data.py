"""Builds the default SR model's training sources from unpacked Debian packages.

    python scripts/build_sr_data.py --packages_root PKG --out raw_sr --synthetic 400
    python -m data.prepare --src raw_sr --out prepared_sr --tile_width 256 --tile_height 256 \
        --min_policy keep --bits 16

`PKG` is a folder where `stellarium-data` and `eso-midas-testdata` were unpacked
(`dpkg-deb -x X.deb PKG`). Writes, under `--out`:

* `stellarium/`: links to every Stellarium nebula image NOT credited to Hubble
  (`data.domains.is_held_out_credit`: those are a held-out evaluation domain);
* `fits/`: the `data.domains.TRAIN_FITS` raw frames (ESO-MIDAS test data), each
  through the pipeline's default stretch, as 16-bit PNG;
* `synthetic/`: `--synthetic` scenes of `data.synthetic` (seeded), 16-bit PNG.

Nothing from the held-out domains (Hubble-credited images, the HDF, the raw HST
frames of `data.domains.HELD_OUT_FITS`) is written.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data.domains import STELLARIUM_DIR, TRAIN_FITS, is_held_out_credit  # noqa: E402
from data.io import ImageReadError, read_fits  # noqa: E402
from data.writers import write_png  # noqa: E402
from data.formats import is_image_file  # noqa: E402
from data.stellarium import parse_textures_json  # noqa: E402
from data.synthetic import display_scene  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages_root", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--synthetic", type=int, default=400, help="synthetic scenes to render")
    parser.add_argument("--size", type=int, default=256, help="side of a synthetic scene")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = os.path.join(args.packages_root, STELLARIUM_DIR)
    with open(os.path.join(folder, "textures.json"), encoding="utf-8") as f:
        credits = parse_textures_json(f.read())
    counts = {"stellarium": 0, "held_out": 0, "fits": 0, "synthetic": 0}
    os.makedirs(os.path.join(args.out, "stellarium"), exist_ok=True)
    for name in sorted(os.listdir(folder)):
        if not is_image_file(name):
            continue
        if is_held_out_credit(credits.get(name, {}).get("credit", "")):
            counts["held_out"] += 1
            continue
        link = os.path.join(args.out, "stellarium", name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(folder, name)), link)
        counts["stellarium"] += 1
    os.makedirs(os.path.join(args.out, "fits"), exist_ok=True)
    for rel, hdu, _ in TRAIN_FITS:
        try:
            frame = read_fits(os.path.join(args.packages_root, rel), hdu=hdu)
        except ImageReadError as e:
            print(f"warning: skipped {e}", file=sys.stderr)
            continue
        stem = os.path.basename(rel).split(".fits")[0].replace(":", "_")
        write_png(os.path.join(args.out, "fits", f"{stem}_hdu{hdu}.png"), frame.image, bits=16)
        counts["fits"] += 1
    os.makedirs(os.path.join(args.out, "synthetic"), exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for i in range(args.synthetic):
        write_png(os.path.join(args.out, "synthetic", f"scene_{i:04d}.png"), display_scene(rng, args.size), bits=16)
        counts["synthetic"] += 1
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
