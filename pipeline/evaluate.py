"""`python -m pipeline.evaluate --data DIR --output DIR`: the paper's table, honestly.

`python -m pipeline.evaluate --cross_domain --packages_root DIR --output DIR`:
the cross-domain table instead (`pipeline.crossdomain`): SR and colour scored
on each held-out domain of `data.domains` (Hubble-credited Stellarium images,
the Hubble Deep Field, raw HST frames), never trained on.

Writes `results.md` and `results.csv` (one row per method and section) and
side-by-side figures under `figures/`. See `pipeline.evaluation` for the exact
protocol; in short, all errors are float64 on 8-bit levels (the paper's own
script wrapped its uint8 differences modulo 256, so its MSE of 201.8 / 180.3 and
the 38.09 dB derived from it are not comparable), LR by antialiased bicubic.
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags

from data.domains import DOMAINS, HDF_CROP, RAW_CROP
from pipeline.evaluation import EvalConfig, evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Colour test images: a folder, or a data.prepare output (its test/ is used).")
flags.DEFINE_string("output", "eval", "Folder for results.md, results.csv and figures/.")
flags.DEFINE_string("colorize_model", "checkpoints/colorize", "Exported colouriser SavedModel folder (found as "
                    "pipeline.run finds models: checkpoints/NAME from any folder).")
flags.DEFINE_list("srgan_model", ["checkpoints/srgan"], "Exported SR SavedModel folder(s), found as pipeline.run "
                  "finds models; each gets its own rows.")
flags.DEFINE_integer("size", 224, "Colouriser working size (paper sec. 5.2: 224).")
flags.DEFINE_string("inception_weights", "imagenet",
                    "Inception v3 weights for the Inception Score (paper's table): imagenet (needs internet), "
                    "a local weights file, or none.")
flags.DEFINE_integer("max_images", 0, "Evaluate at most this many images (0: all); with --cross_domain, per domain.")
flags.DEFINE_integer("figures", 4, "How many images get side-by-side figures.")
flags.DEFINE_bool("cross_domain", False, "Score the held-out domains (data.domains) instead of --data's test split; "
                  "writes crossdomain.md, crossdomain_sr.csv, crossdomain_colour.csv and the colour grid.")
flags.DEFINE_string("packages_root", None, "With --cross_domain: the folder where the Debian packages "
                    "(stellarium-data, python3-stsci.tools, libastro-fits-cfitsio-perl) were unpacked (dpkg-deb -x).")
flags.DEFINE_list("domains", list(DOMAINS), "With --cross_domain: which held-out domains to score.")
flags.DEFINE_integer("hdf_crop", HDF_CROP, "With --cross_domain: side of the Hubble Deep Field's fixed crops.")
flags.DEFINE_integer("raw_crop", RAW_CROP, "With --cross_domain: side of the raw frames' central crop (0: whole).")
flags.DEFINE_string("crossdomain_figure", "", "With --cross_domain: the colour grid PNG "
                    "(default: colour_crossdomain.png in --output).")

def cross_domain() -> int:
    from data.domains import DomainDataError
    from pipeline.crossdomain import CrossDomainConfig
    from pipeline.evaluation import evaluate_cross_domain
    from pipeline.models import ModelLoadError

    if not FLAGS.packages_root:
        raise app.UsageError("--cross_domain needs --packages_root")
    unknown = sorted(set(FLAGS.domains) - set(DOMAINS))
    if unknown:
        raise app.UsageError(f"--domains: unknown {unknown}; choose from {list(DOMAINS)}")
    config = CrossDomainConfig(
        packages_root=FLAGS.packages_root, output=FLAGS.output, domains=tuple(FLAGS.domains), size=FLAGS.size,
        hdf_crop=FLAGS.hdf_crop, raw_crop=FLAGS.raw_crop, max_images=FLAGS.max_images,
        figure=FLAGS.crossdomain_figure,
    )
    try:
        evaluate_cross_domain(config, FLAGS.srgan_model, FLAGS.colorize_model)
    except (DomainDataError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str]) -> int:
    del argv
    if FLAGS.cross_domain:
        return cross_domain()
    if not FLAGS.data:
        raise app.UsageError("--data is required")
    config = EvalConfig(
        data=FLAGS.data, output=FLAGS.output, colorize_model=FLAGS.colorize_model,
        srgan_models=tuple(FLAGS.srgan_model), size=FLAGS.size, inception_weights=FLAGS.inception_weights,
        max_images=FLAGS.max_images, figures=FLAGS.figures,
    )
    from data.io import ImageReadError
    from pipeline.models import ModelLoadError

    try:
        evaluate(config)
    except (ImageReadError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
