"""SR exports side by side on one training run's dev pairs: the check the SR default is replaced by.

    nice python bench/sr_dev.py --run_config runs/res8x32_lin/config.json checkpoints/srgan NEW_EXPORT ...

The dev pairs are the trainer's own (`srgan.trainer._dev_pairs` of that
run's config: its first `eval_images` dev images, central `hr_size` crops, the
block flags drawn from its `seed`), so every export named is scored on the
very same crops; each with the block-mean LR in linear units and in display
values (`data.sr_examples.degrade`'s `block_linear`), by
`srgan.trainer.evaluate_dev` (per-image PSNR, bicubic beside it). Each
generator is rebuilt from its own config.json (num_blocks, filters, scale,
arch). `--consistency`: each after the pipeline's consistency step, as a user
gets it by default. A minute or so on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_config", required=True, help="config.json of the srgan.train run whose dev pairs to use")
    parser.add_argument("exports", nargs="+", help="SR SavedModel folders")
    parser.add_argument("--consistency", action="store_true",
                        help="score each export after the pipeline's consistency step (data.sr_examples.consistent)")
    args = parser.parse_args()

    from common.training import load_config
    from srgan.config import SRGANConfig
    from srgan.model import build_generator
    from srgan.restore import load_generator_weights
    from srgan.trainer import _dev_pairs, evaluate_dev

    config = SRGANConfig(**load_config(args.run_config))
    dev, _ = _dev_pairs(config, None, None)
    if dev is None:
        raise SystemExit(f"{config.data_dir}: no dev split")
    print(f"{len(dev[0])} dev pairs of {config.data_dir}, {config.hr_size} px, seed {config.seed}")
    print("| export | block LR | PSNR | bicubic |\n|---|---|---|---|")
    for path in args.exports:
        meta = load_config(os.path.join(path, "config.json"))
        settings = {k: meta[k] for k in ("num_blocks", "filters", "scale", "arch")}
        generator = build_generator(**settings)
        load_generator_weights(generator, path, settings)
        for linear in (True, False):
            values = evaluate_dev(generator, *dev, config.scale, block_linear=linear, consistency=args.consistency)
            print(f"| {path} | {'linear units' if linear else 'display values'} | {values['psnr']:.2f} | "
                  f"{values['psnr_bicubic']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
