"""`python -m srgan.export --workdir DIR --output checkpoints/srgan`: a run's generator as a SavedModel.

Restores a checkpoint of a `srgan.train` run using its `config.json` (which
fixes the architecture: `--arch`, `--num_blocks`, `--filters`, `--scale` of
the run) and writes the serving SavedModel (see `srgan.saved_model`):
`serving_default(lr [B,H,W,3] float32 in [0,1]) -> {"sr": [B,sH,sW,3]}`.

`--phase mse` exports the PSNR-oriented SRResNet kept at the end of phase 1,
`--phase gan` the adversarially trained generator, `--phase latest` (default)
whatever the newest checkpoint holds. Exit status 0 on success, 1 on error.
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A srgan.train run folder (config.json, state/, ckpt_mse/).")
flags.DEFINE_string("output", "checkpoints/srgan", "SavedModel folder to write (the pipeline's default).")
flags.DEFINE_enum("phase", "latest", ["latest", "gan", "mse"],
                  "Which generator: mse (SRResNet at the end of phase 1), gan (after adversarial training) or "
                  "latest (the saved state).")
flags.DEFINE_string("checkpoint", None, "An explicit folder with generator.weights.h5 and step.json (e.g. "
                    "WORKDIR/state, WORKDIR/ckpt_mse) or a snapshot WORKDIR/weights/step_0009000.weights.h5 "
                    "(overrides --phase).")
flags.DEFINE_boolean("overwrite", False, "Replace a non-empty --output.")


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    import dataclasses

    from common.export import ExportError, check_output_dir

    try:
        # Fails fast, before TensorFlow is imported and the model restored.
        check_output_dir(FLAGS.output, FLAGS.overwrite)
        from srgan.saved_model import export_saved_model
        from srgan.restore import restore_generator

        generator, config, step = restore_generator(FLAGS.workdir, FLAGS.checkpoint, FLAGS.phase)
        phase = "mse" if step <= config.init_steps else "gan"
        meta = dataclasses.asdict(config) | {"trained": step > 0}
        path = export_saved_model(generator, FLAGS.output, meta, overwrite=FLAGS.overwrite, steps_trained=step,
                                  phase=phase)
    except (ExportError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from common.litert import summary

    print(f"exported step {step} ({phase}) to {path}")
    print(summary(path))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
