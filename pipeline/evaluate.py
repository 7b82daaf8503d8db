"""`python -m pipeline.evaluate --data DIR --output DIR`: the paper's table, honestly.

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

from pipeline.evaluation import EvalConfig, evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Colour test images: a folder, or a data.prepare output (its test/ is used).")
flags.DEFINE_string("output", "eval", "Folder for results.md, results.csv and figures/.")
flags.DEFINE_string("colorize_model", "checkpoints/colorize", "Exported colouriser SavedModel folder.")
flags.DEFINE_list("srgan_model", ["checkpoints/srgan"], "Exported SR SavedModel folder(s); each gets its own rows.")
flags.DEFINE_integer("size", 224, "Colouriser working size (paper sec. 5.2: 224).")
flags.DEFINE_string("inception_weights", "imagenet",
                    "Inception v3 weights for the Inception Score (paper's table): imagenet (needs internet), "
                    "a local weights file, or none.")
flags.DEFINE_integer("max_images", 0, "Evaluate at most this many images (0: all).")
flags.DEFINE_integer("figures", 4, "How many images get side-by-side figures.")

def main(argv: Sequence[str]) -> int:
    del argv
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
