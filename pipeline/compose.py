"""`python -m pipeline.compose --filters A.fits,B.fits[,C.fits] --output DIR`: true colour from filters.

Frames of one field taken in different filters are ordered red -> blue by
wavelength (PHOTPLAM, WAVELEN or the FILTER name), reprojected onto the
reference frame's WCS, sky-subtracted, balanced and stretched together into an
RGB composite, then super-resolved x4 (each channel alone by default, `--sr_on`,
measured by `bench/compose_sr.py`) and written as PNG and as a FITS cube with
the reference header and the WCS rescaled. Pixels a filter does not cover are
transparent in PNG and NaN in FITS. One filter falls back to the learned
colouriser (`pipeline.run --mode full`). Library: `pipeline.compose_job.compose`.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Sequence

from absl import app, flags

from data.io import INTERVALS, STRETCHES
from pipeline.compose_job import FORMATS, ComposeConfig
from pipeline.compose_models import GREENS, SR_ON
from pipeline.consistency import MODES
from pipeline.composite import CompositeOptions

_C = CompositeOptions()
_J = ComposeConfig(filters=(), output="")

FLAGS = flags.FLAGS
flags.DEFINE_list("filters", None, "1-3 FITS frames of one field, one per filter (comma-separated).")
flags.DEFINE_string("output", "out", "Folder for the results (created if missing).")
flags.DEFINE_string("reference", None, "The frame (path or file name among --filters) whose pixel grid and header "
                    "the result gets; default: the first given.")
flags.DEFINE_enum("order", _J.order, ["wavelength", "given"],
                  "wavelength: red -> blue by PHOTPLAM / WAVELEN / FILTER name. given: R, G, B as listed.")
flags.DEFINE_boolean("flux_conserving", _C.flux_conserving,
                     "Reproject with reproject_exact (overlap-weighted, surface brightness conserved) instead of "
                     "bilinear reproject_interp.")
flags.DEFINE_boolean("background", _C.background, "Subtract each channel's 3-sigma-clipped median sky.")
flags.DEFINE_enum("balance", _C.balance, ["percentile", "photflam", "none"],
                  "percentile: each channel divided by its own --percentile level. photflam: by PHOTFLAM "
                  "(measured flux ratios), then one common level. none: raw units.")
flags.DEFINE_enum("stretch", _C.stretch, ["lupton"] + list(STRETCHES),
                  "lupton: one asinh on the common intensity (hue kept). Others: that stretch per channel.")
flags.DEFINE_float("Q", _C.Q, "Lupton asinh softening (small: near linear; large: faint parts brought up).")
flags.DEFINE_float("minimum", _C.minimum, "Lupton black point, in balanced units (1 = the --percentile level).")
flags.DEFINE_enum("interval", _C.interval, list(INTERVALS), "Interval of a per-channel stretch.")
flags.DEFINE_float("percentile", _C.percentile, "Level that maps to white (balance, Lupton, percentile interval).")
flags.DEFINE_boolean("upscale", _J.upscale, "Super-resolve the composite; --noupscale writes the composite alone.")
flags.DEFINE_enum("sr_on", _J.sr_on, list(SR_ON),
                  "What the SR model sees: rgb: the composite in one pass; channels: each channel alone as a grey "
                  "picture; luminance: the luminance, chroma upsampled by bicubic (bench/compose_sr.py measures them).")
flags.DEFINE_enum("consistency", _J.consistency, list(MODES),
                  "Correct the SR so that downscaling it gives the composite back (auto: antialiased bicubic).")
flags.DEFINE_enum("two_filter_green", _J.two_filter_green, list(GREENS),
                  "Two filters only: mean: G = (R + B) / 2; colouriser: the learned colouriser's G relative to "
                  "R and B, times their mean (R, B kept as measured).")
flags.DEFINE_list("output_format", list(_J.formats), f"Any of {', '.join(FORMATS)} (comma-separated).")
flags.DEFINE_string("srgan_model", _J.srgan_model, "Exported SR generator SavedModel folder.")
flags.DEFINE_string("colorize_model", _J.colorize_model,
                    "Exported colouriser (one filter, or --two_filter_green colouriser).")
flags.DEFINE_integer("size", _J.full.size, "Colouriser working size (a multiple of 16).")
flags.DEFINE_integer("tile", _J.full.tile, "SR tile side in input px (memory is bounded by the tile).")
flags.DEFINE_integer("tile_overlap", _J.full.tile_overlap, "Least overlap between SR tiles in input px.")
flags.DEFINE_integer("batch_size", _J.full.tile_batch, "SR tiles per model call.")


def main(argv: Sequence[str]) -> int:
    del argv
    if not FLAGS.filters:
        raise app.UsageError("--filters is required: 1-3 FITS frames of one field, comma-separated")
    config = ComposeConfig(
        filters=tuple(FLAGS.filters), output=FLAGS.output, reference=FLAGS.reference, order=FLAGS.order,
        composite=CompositeOptions(
            flux_conserving=FLAGS.flux_conserving, background=FLAGS.background, balance=FLAGS.balance,
            stretch=FLAGS.stretch, interval=FLAGS.interval, percentile=FLAGS.percentile, Q=FLAGS.Q,
            minimum=FLAGS.minimum),
        upscale=FLAGS.upscale, sr_on=FLAGS.sr_on, consistency=FLAGS.consistency,
        two_filter_green=FLAGS.two_filter_green, srgan_model=FLAGS.srgan_model, colorize_model=FLAGS.colorize_model,
        formats=tuple(FLAGS.output_format),
        full=dataclasses.replace(_J.full, size=FLAGS.size, tile=FLAGS.tile, tile_overlap=FLAGS.tile_overlap,
                                 tile_batch=FLAGS.batch_size),
    )
    from data.io import ImageReadError
    from pipeline.compose_job import compose
    from pipeline.models import ModelLoadError
    from pipeline.runner import OutputError

    try:
        compose(config)
    except (ImageReadError, ModelLoadError, OutputError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
