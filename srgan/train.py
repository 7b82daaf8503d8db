"""`python -m srgan.train --data_dir DIR --workdir DIR`: train the paper's SRGAN.

Defaults are the paper's hyper-parameters (Peh & Marshland sec. 4.2 and 5.1,
after Ledig et al.'s SRGAN and tensorlayer/srgan). Restarting with the same
`--workdir` resumes from the last checkpoint, in the right phase. Ctrl-C or
SIGTERM (e.g. a pre-empted job) saves a checkpoint at the current step first.
Exit status: 0 done, 1 bad settings/data or non-finite loss, 130 interrupted.
"""
from __future__ import annotations

import dataclasses
import signal
import sys
from typing import Sequence

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Output of `python -m data.prepare` (train/ and dev/ folders).")
flags.DEFINE_string("workdir", None, "Run folder: config.json, ckpt/ (full state, resume), ckpt_mse/ + export_mse/ (phase-1 "
                    "SRResNet), history.jsonl, samples/, tb/ (TensorBoard), export/ (final SavedModel).")
flags.DEFINE_integer("num_blocks", 16, "Residual blocks in the generator (paper sec. 4.2: 16).")
flags.DEFINE_integer("filters", 64, "Generator feature channels (paper sec. 4.2 / Ledig: 64).")
flags.DEFINE_integer("scale", 4, "Upscaling factor, a power of 2 (paper: 4).")
flags.DEFINE_enum("arch", "residual", ["residual", "srresnet", "tl"],
                  "residual: bicubic + a learned residual, no batch norm, reflect padding, every convolution at LR "
                  "resolution (srgan/residual.py; an untrained one is bicubic, so it cannot drift in colour or "
                  "brightness); srresnet: Ledig's generator as in the paper (sec. 4.2: batch norm, PReLU, "
                  "sub-pixel upsampling); tl: tensorlayer/srgan's exact generator (ReLU, tanh; x4 only), the one "
                  "srgan.import_tl loads TL weights into.")
flags.DEFINE_enum("degradation", "bicubic", ["bicubic", "block", "mixed"],
                  "How LR crops are made from HR: bicubic (antialiased, as the paper's evaluation and Ledig et al.), "
                  "block (means of scale x scale pixels: a detector with bigger pixels, as raw frames are binned), "
                  "or mixed (either, drawn per example).")
flags.DEFINE_integer("hr_size", 96, "HR crop side (paper/Ledig: 96, LR 24).")
flags.DEFINE_integer("batch_size", 16, "Batch size (Ledig: 16).")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate (paper sec. 5.1: 1e-4).")
flags.DEFINE_float("beta_1", 0.9, "Adam beta_1 (paper sec. 5.1: 0.9).")
flags.DEFINE_integer("init_steps", 100_000,
                     "Phase 1: generator-only MSE steps (SRResNet; tensorlayer/srgan's 'init' epochs; the paper "
                     "gives no count). Its result is also exported to WORKDIR/export_mse.")
flags.DEFINE_integer("steps", 1_000_000, "Total steps, phase 1 included (paper sec. 5.1: 1e6 updates).")
flags.DEFINE_integer("decay_every", 500_000,
                     "Phase 2: multiply the learning rate by --decay_factor every this many phase-2 steps "
                     "(tensorlayer/srgan: once, half-way through its GAN epochs; Ledig et al.: 1e-4 for 1e5 "
                     "updates, then 1e-5; the paper (sec. 5.1) names no decay).")
flags.DEFINE_float("decay_factor", 0.1, "Learning-rate step decay (tensorlayer/srgan and Ledig: x0.1).")
flags.DEFINE_enum("vgg_layer", "conv5_4", ["conv5_4", "pool4", "conv2_2"],
                  "Content-loss layer: conv5_4 (SRGAN paper's VGG54), pool4 (tensorlayer/srgan), conv2_2 (VGG22).")
flags.DEFINE_string("vgg_weights", "imagenet",
                    "VGG19 weights for the content loss: imagenet (Keras download or its cached "
                    "~/.keras/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5), none (random "
                    "He-normal VGG features: a weaker but still defined perceptual loss, for tests and offline runs), or a "
                    "local VGG19 no-top weights file (.h5).")
flags.DEFINE_float("content_weight", 1.0,
                   "Weight of the VGG content loss (paper sec. 4.2: 1; the loss is a mean over the feature map, "
                   "Ledig eq. 5. Ledig also rescaled the features by 1/12.75, i.e. a weight of ~0.006).")
flags.DEFINE_float("adversarial_weight", 1e-3, "Weight of -log D(G(LR)) (paper sec. 4.2: 1e-3).")
flags.DEFINE_float("pixel_weight", 0.0, "Weight of pixel MSE in phase 2 (tensorlayer/srgan adds it with weight 1).")
flags.DEFINE_integer("eval_every", 1000, "Dev PSNR/SSIM every this many steps.")
flags.DEFINE_integer("sample_every", 1000, "Save a bicubic | SR | HR sample every this many steps.")
flags.DEFINE_integer("checkpoint_every", 1000, "Checkpoint every this many steps.")
flags.DEFINE_integer("log_every", 100, "Log losses and speed every this many steps.")
flags.DEFINE_integer("eval_images", 32, "Dev images used for evaluation.")
flags.DEFINE_integer("seed", 0, "Seed for weights, data order and augmentation.")
flags.DEFINE_enum("mixed_precision", "none", ["none", "mixed_float16", "mixed_bfloat16"],
                  "Keras mixed-precision policy (GPU; mixed_float16 adds dynamic loss scaling). The "
                  "SRResNet's last layer and D's logit stay float32.")
flags.DEFINE_string("init_generator", "",
                    "Start a new run's generator from an exported SR SavedModel with the same num_blocks/filters/"
                    "scale/arch (e.g. checkpoints/srgan with --init_steps 0: phase 2 only, fine-tuning a trained "
                    "SRResNet as tensorlayer/srgan does after its init epochs). Ignored when resuming.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: default (one device), mirrored (all GPUs of this host, else all logical CPUs), "
                  "multi_worker (MultiWorkerMirroredStrategy across hosts, from the TF_CONFIG environment variable). "
                  "--batch_size is the global batch, split evenly across replicas. See README 'Scaling out'.")
flags.DEFINE_boolean("jit_compile", False, "Compile the train steps with XLA (faster on GPU; first step slower).")


def _stop_on_sigterm(signum, frame) -> None:
    # A pre-empted job gets SIGTERM: save a checkpoint like Ctrl-C does.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.data_dir or not FLAGS.workdir:
        raise app.UsageError("--data_dir and --workdir are required")
    from common.training import NonFiniteLossError
    from srgan.config import SRGANConfig
    from srgan.trainer import train

    config = SRGANConfig(**{f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(SRGANConfig)})
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
