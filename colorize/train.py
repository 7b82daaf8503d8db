"""`python -m colorize.train --data_dir PREPARED --workdir RUN`: train the colouriser.

Defaults are the paper's (Peh & Marshland sec. 4.1 / 5.1, after Guo's
residual encoder). Restarting with the same `--workdir` resumes from the last
checkpoint; the resolved config is saved as `RUN/config.json`; the trained
model is exported as a SavedModel to `RUN/export` (and `--export_dir`).
See `colorize.trainer` for what the run writes.
"""
from __future__ import annotations

from absl import app, flags, logging

from colorize.config import ColorizeConfig
from common.settings import define_flags, from_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, samples, TensorBoard logs, config.json, export.")
flags.DEFINE_boolean(
    "portable", False,
    "Train with Keras model.fit on the active Keras backend (e.g. KERAS_BACKEND=jax on a GPU machine without "
    "TensorFlow) instead of the TensorFlow trainer; writes weights, not tf checkpoints, and no samples, "
    "TensorBoard or export: run colorize.export --workdir on it afterwards. See colorize.portable.",
)
# Every other flag is a field of ColorizeConfig, with its default and help there (chroma_bins is found in
# the data).
define_flags(ColorizeConfig, skip=("chroma_bins",))


def config_from_flags() -> ColorizeConfig:
    """The frozen config of the parsed flags."""
    return from_flags(ColorizeConfig, skip=("chroma_bins",))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from common.training import NonFiniteLossError

    if FLAGS.portable:
        from colorize.portable import train
    else:
        from colorize.trainer import train

    try:
        config = config_from_flags()
        result = train(config, FLAGS.workdir)
    except (NonFiniteLossError, ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    if FLAGS.portable:
        logging.info("done: step %d; export with python -m colorize.export --workdir %s", result.step, FLAGS.workdir)
    else:
        logging.info("done: step %d; exported to %s", result.step, ", ".join(result.exported) or "(no export)")


if __name__ == "__main__":
    flags.mark_flags_as_required(["data_dir", "workdir"])
    app.run(main)
