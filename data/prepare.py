"""`python -m data.prepare --src DIR --out DIR`: tiles and a train/dev/test split.

Paper sec. 3: tiles of 2040x1356 cut from each image, overlapping where the size
does not divide, images smaller than a tile thrown out, PNG, split 80/10/10.
Here the split is by *source image* (no two tiles of one picture in different
splits) and deterministic: sources are ordered by a hash of their path relative
to `--src` and cut at the split fractions, so the same folder always gives the
same split, written down in `manifest.json` and `manifest.csv`.

Re-running is idempotent: unchanged tiles are not rewritten, and tiles that a
previous run of this command wrote but the new run no longer produces are
removed (nothing else in `--out` is touched).
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags

from data.preparation import PrepareConfig, prepare, summary

FLAGS = flags.FLAGS
flags.DEFINE_string("src", None, "Folder of source images (PNG/JPEG/TIFF/FITS), searched recursively.")
flags.DEFINE_string("out", None, "Output folder: train/, dev/, test/ tiles and manifest.json/.csv.")
flags.DEFINE_integer("tile_width", 2040, "Tile width in px (paper sec. 3: 2040).")
flags.DEFINE_integer("tile_height", 1356, "Tile height in px (paper sec. 3: 1356).")
flags.DEFINE_enum(
    "min_policy", "drop", ["drop", "pad", "keep"],
    "Images smaller than a tile: drop them (paper sec. 3), pad them with black to the tile size, "
    "or keep them whole as one tile (for small sets such as Stellarium's 256-1024 px images).",
)
flags.DEFINE_list("split", ["0.8", "0.1", "0.1"], "train,dev,test fractions (paper sec. 3: 80/10/10).")
flags.DEFINE_string("salt", "", "Changes the hash that orders sources, giving another deterministic split.")
flags.DEFINE_boolean("skip_grey", False, "Leave out greyscale sources (colour targets must be true colour).")
flags.DEFINE_boolean("hold_out", True, "Leave out the sources that --src/sources.json (data.fetch) marks as held "
                     "out for the cross-domain evaluation (Hubble-credited: data.domains.is_held_out_credit).")
flags.DEFINE_enum("bits", "8", ["8", "16"], "Bit depth of the PNG tiles.")

def main(argv: Sequence[str]) -> int:
    del argv
    if not FLAGS.src or not FLAGS.out:
        raise app.UsageError("--src and --out are required")
    config = PrepareConfig(
        src=FLAGS.src, out=FLAGS.out, tile_width=FLAGS.tile_width, tile_height=FLAGS.tile_height,
        min_policy=FLAGS.min_policy, split=tuple(float(x) for x in FLAGS.split), salt=FLAGS.salt,
        skip_grey=FLAGS.skip_grey, bits=int(FLAGS.bits), hold_out=FLAGS.hold_out,
    )
    try:
        manifest = prepare(config, progress=sys.stderr.isatty())
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = [s for s in manifest["sources"] if s["status"] == "error"]
    for s in failed:
        print(f"error: {s['source']}: {s['reason']}", file=sys.stderr)
    print(summary(manifest))
    if failed:
        print(f"{len(failed)} source(s) could not be read (listed above); the others were prepared.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
