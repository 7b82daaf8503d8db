"""`python -m srgan.train --data_dir DIR --workdir DIR`: train the paper's SRGAN.

Defaults are the paper's hyper-parameters (Peh & Marshland sec. 4.2 and 5.1,
after Ledig et al.'s SRGAN and tensorlayer/srgan). Restarting with the same
`--workdir` resumes from the last checkpoint, in the right phase. Ctrl-C or
SIGTERM (e.g. a pre-empted job) saves a checkpoint at the current step first.
Exit status: 0 done, 1 bad settings/data or non-finite loss, 130 interrupted.
"""
from __future__ import annotations

import signal
import sys
from typing import Sequence

from absl import app, flags, logging

from common.settings import define_flags, from_flags
from srgan.config import SRGANConfig

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Run folder: config.json, state/ (full state, resume), ckpt_mse/ + export_mse/ "
                    "(phase-1 SRResNet), history.jsonl, samples/, tb/ (TensorBoard), export/ (final SavedModel).")
# Every other flag is a field of SRGANConfig, with its default and help there.
define_flags(SRGANConfig)


def _stop_on_sigterm(signum, frame) -> None:
    # A pre-empted job gets SIGTERM: save a checkpoint like Ctrl-C does.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.data_dir or not FLAGS.workdir:
        raise app.UsageError("--data_dir and --workdir are required")
    from common.training import NonFiniteLossError
    from srgan.trainer import train

    config = from_flags(SRGANConfig)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        result = train(config, FLAGS.workdir)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; a checkpoint was saved: run the same command to resume", file=sys.stderr)
        return 130
    logging.info("finished at step %d; exported to %s/export", result.step, FLAGS.workdir)
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
