"""`python -m srgan.train --data_dir DIR --workdir DIR`: train the paper's SRGAN.

Defaults are the paper's hyper-parameters (Peh & Marshland sec. 4.2 and 5.1,
after Ledig et al.'s SRGAN and tensorlayer/srgan). Restarting with the same
`--workdir` resumes from the last checkpoint, in the right phase.
"""
from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Output of `python -m data.prepare` (train/ and dev/ folders).")
flags.DEFINE_string("workdir", None, "Run folder: config.json, ckpt/, samples/, tb/, export/.")
flags.DEFINE_integer("num_blocks", 16, "Residual blocks in the generator (paper sec. 4.2: 16).")
flags.DEFINE_integer("filters", 64, "Generator feature channels (paper sec. 4.2 / Ledig: 64).")
flags.DEFINE_integer("scale", 4, "Upscaling factor, a power of 2 (paper: 4).")
flags.DEFINE_enum("arch", "srresnet", ["srresnet", "tl"],
                  "srresnet: Ledig's generator (PReLU); tl: tensorlayer/srgan's exact generator (ReLU, tanh).")
flags.DEFINE_integer("hr_size", 96, "HR crop side (paper/Ledig: 96, LR 24).")
flags.DEFINE_integer("batch_size", 16, "Batch size (Ledig: 16).")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate (paper sec. 5.1: 1e-4).")
flags.DEFINE_float("beta_1", 0.9, "Adam beta_1 (paper sec. 5.1: 0.9).")
flags.DEFINE_integer("init_steps", 100_000,
                     "Phase 1: generator-only MSE steps (SRResNet; tensorlayer/srgan's 'init' epochs).")
flags.DEFINE_integer("steps", 1_000_000, "Total steps, phase 1 included (paper sec. 5.1: 1e6 updates).")
flags.DEFINE_integer("decay_every", 500_000, "Phase 2: multiply the learning rate by --decay_factor this often.")
flags.DEFINE_float("decay_factor", 0.1, "Learning-rate step decay (tensorlayer/srgan and Ledig: x0.1).")
flags.DEFINE_enum("vgg_layer", "conv5_4", ["conv5_4", "pool4", "conv2_2"],
                  "Content-loss layer: conv5_4 (SRGAN paper's VGG54), pool4 (tensorlayer/srgan), conv2_2 (VGG22).")
flags.DEFINE_string("vgg_weights", "imagenet",
                    "VGG19 weights: imagenet (downloads; needs internet), none (random features: a weaker but "
                    "still defined perceptual loss), or a local .h5 file.")
flags.DEFINE_float("content_weight", 1.0, "Weight of the VGG content loss (paper: 1).")
flags.DEFINE_float("adversarial_weight", 1e-3, "Weight of -log D(G(LR)) (paper sec. 4.2: 1e-3).")
flags.DEFINE_float("pixel_weight", 0.0, "Weight of pixel MSE in phase 2 (tensorlayer/srgan adds it with weight 1).")
flags.DEFINE_integer("eval_every", 1000, "Dev PSNR/SSIM every this many steps.")
flags.DEFINE_integer("sample_every", 1000, "Save a bicubic | SR | HR sample every this many steps.")
flags.DEFINE_integer("checkpoint_every", 1000, "Checkpoint every this many steps.")
flags.DEFINE_integer("log_every", 100, "Log losses and speed every this many steps.")
flags.DEFINE_integer("eval_images", 32, "Dev images used for evaluation.")
flags.DEFINE_integer("seed", 0, "Seed for weights, data order and augmentation.")
flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"],
                  "Keras mixed-precision policy (GPU).")
flags.DEFINE_boolean("jit_compile", False, "Compile the train steps with XLA.")


def main(argv: Sequence[str]) -> int:
    del argv
    if not FLAGS.data_dir or not FLAGS.workdir:
        raise app.UsageError("--data_dir and --workdir are required")
    from common.training import NonFiniteLossError
    from srgan.trainer import SRGANConfig, train

    names = [f.name for f in __import__("dataclasses").fields(SRGANConfig)]
    config = SRGANConfig(**{n: getattr(FLAGS, n) for n in names})
    try:
        result = train(config, FLAGS.workdir)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    logging.info("finished at step %d; exported to %s/export", result.step, FLAGS.workdir)
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
