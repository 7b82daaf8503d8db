"""`python -m colorize.export --workdir RUN --output checkpoints/colorize`: write the SavedModel.

Loads weights of a `colorize.train` run (rebuilding the model from
`RUN/config.json`; a run trained under any Keras backend, e.g. JAX) and writes
the TensorFlow SavedModel that `pipeline.run` loads: signature
`serving_default`, `grey [B,H,W,1]` in [0,1] -> `{"rgb": [B,H,W,3] in [0,1],
"uv": [B,H,W,2]}`, the luminance of `rgb` equal to the input. It refuses to replace a non-empty `--output` unless `--overwrite`.

`--temperature T` sets a classification model's default decoding temperature
(its `with_temperature` signature takes any).

`--untrained` exports freshly initialised weights instead (no run needed), to
try the pipeline end to end; such models say so in their `config.json` and the
pipeline warns that their colours mean nothing.
"""
from __future__ import annotations

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The colorize.train --workdir to export from.")
flags.DEFINE_string("output", "checkpoints/colorize", "SavedModel folder to write (the pipeline's default).")
flags.DEFINE_string(
    "checkpoint", "latest",
    "Which weights: 'latest', 'best' (lowest dev loss; the paper saw overfitting after ~30k steps, sec. 5.1) "
    "or a step number still in workdir/weights.",
)
flags.DEFINE_float("temperature", None, "Classification models (--loss classification): the serving default's "
                   "annealed-mean temperature (default: the run's --temperature); chosen on the dev split.")
flags.DEFINE_boolean("overwrite", False, "Replace a non-empty --output.")
flags.DEFINE_boolean("untrained", False, "Export a freshly initialised model (no --workdir; for trying the pipeline).")
flags.DEFINE_string(
    "untrained_backbone_weights", "none",
    "With --untrained: VGG16 weights, 'none', 'imagenet' (needs internet) or a .h5 path.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from colorize.saved_model import ExportError, check_output_dir, export_colorizer, restore_colorizer

    try:
        # Fail before the slow part (building and restoring the model).
        check_output_dir(FLAGS.output, FLAGS.overwrite)
        if FLAGS.untrained:
            if FLAGS.workdir:
                raise app.UsageError("--untrained exports fresh weights; do not give --workdir")
            from colorize.model import build_colorizer

            weights = FLAGS.untrained_backbone_weights
            model = build_colorizer(weights, freeze_backbone=True)
            config, step, trained = {"backbone_weights": weights, "size": 224}, 0, False
        else:
            if not FLAGS.workdir:
                raise app.UsageError("give --workdir (a colorize.train run) or --untrained")
            model, step, config = restore_colorizer(FLAGS.workdir, FLAGS.checkpoint)
            trained = step > 0
            if FLAGS.temperature is not None:
                if config.get("loss") != "classification":
                    raise ValueError("--temperature applies to --loss classification models only")
                if not FLAGS.temperature > 0:
                    raise ValueError(f"--temperature must be > 0, got {FLAGS.temperature}")
                config = dict(config, temperature=FLAGS.temperature)
        out = export_colorizer(model, FLAGS.output, config, steps_trained=step, trained=trained, overwrite=FLAGS.overwrite)
    except (ExportError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    logging.info("wrote %s (step %d)", out, step)
    from common.litert import summary

    print(f"exported the colouriser ({'step %d' % step if trained else 'untrained'}) to {out}")
    print(summary(out))


if __name__ == "__main__":
    app.run(main)
