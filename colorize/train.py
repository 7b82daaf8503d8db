"""`python -m colorize.train --data_dir PREPARED --workdir RUN`: train the colouriser.

Defaults are the paper's (Peh & Marshland sec. 4.1 / 5.1, after Guo's
residual encoder). Training is Keras `model.fit` on the active Keras backend
(`KERAS_BACKEND`: TensorFlow by default, with `--strategy`; or JAX, e.g. on a
GPU machine without TensorFlow). Restarting with the same `--workdir` resumes
from the saved state; the resolved config is saved as `RUN/config.json`; under
TensorFlow the trained model is exported as a SavedModel to `RUN/export` (and
`--export_dir`), otherwise `python -m colorize.export --workdir RUN` writes it.
Ctrl-C or SIGTERM saves the state at the current step first (exit status 130). See
`colorize.trainer` for what the run writes.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging

from colorize.config import ColorizeConfig
from common.settings import define_flags, from_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder: state, weights, samples, TensorBoard logs, config.json, export.")
# Every other flag is a field of ColorizeConfig, with its default and help there (chroma_bins is found in
# the data).
define_flags(ColorizeConfig, skip=("chroma_bins",))


def config_from_flags() -> ColorizeConfig:
    """The frozen config of the parsed flags."""
    return from_flags(ColorizeConfig, skip=("chroma_bins",))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from colorize.trainer import train
    from common.training import NonFiniteLossError

    try:
        config = config_from_flags()
        result = train(config, FLAGS.workdir)
    except (NonFiniteLossError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:
        print("interrupted; the state was saved: run the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
    if result.exported:
        logging.info("done: step %d; exported to %s", result.step, ", ".join(result.exported))
    else:
        logging.info("done: step %d; export with python -m colorize.export --workdir %s", result.step, FLAGS.workdir)


if __name__ == "__main__":
    flags.mark_flags_as_required(["data_dir", "workdir"])
    app.run(main)
