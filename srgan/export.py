"""`python -m srgan.export --workdir DIR --output checkpoints/srgan`: a run's generator as a SavedModel.

Restores the latest checkpoint (or `--checkpoint`) of a `srgan.train` run using
its `config.json`, and writes the serving SavedModel (see `srgan.saved_model`).
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A srgan.train run folder.")
flags.DEFINE_string("output", "checkpoints/srgan", "SavedModel folder to write.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix to export (default: the latest).")
flags.DEFINE_boolean("overwrite", False, "Replace a non-empty --output.")


def main(argv: Sequence[str]) -> int:
    del argv
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required")
    import dataclasses

    from common.export import ExportError, check_output_dir
    from srgan.saved_model import export_saved_model
    from srgan.trainer import restore_generator

    try:
        check_output_dir(FLAGS.output, FLAGS.overwrite)
        generator, config, step = restore_generator(FLAGS.workdir, FLAGS.checkpoint)
        meta = dataclasses.asdict(config) | {"trained": step > 0}
        phase = "mse" if step <= config.init_steps else "gan"
        path = export_saved_model(generator, FLAGS.output, meta, overwrite=FLAGS.overwrite, steps_trained=step,
                                  phase=phase)
    except (ExportError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"exported step {step} ({phase}) to {path}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
