"""`python -m colorize.train --data_dir PREPARED --workdir RUN`: train the colouriser.

Defaults are the paper's (Peh & Marshland sec. 4.1 / 5.1, after Guo's
residual encoder). Restarting with the same `--workdir` resumes from the last
checkpoint; the resolved config is saved as `RUN/config.json`; the trained
model is exported as a SavedModel to `RUN/export` (and `--export_dir`).
See `colorize.trainer` for what the run writes.
"""
from __future__ import annotations

import dataclasses

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Output folder of `python -m data.prepare` (holds train/ and dev/).")
flags.DEFINE_string("workdir", None, "Run folder: checkpoints, samples, TensorBoard logs, config.json, export.")
flags.DEFINE_integer("iterations", 41000, "Training steps (paper sec. 5.1: ~41,000; overfitting after ~30,000).")
flags.DEFINE_integer("batch_size", 6, "Images per step (the paper gives none; 6 is Guo's config.py).")
flags.DEFINE_integer("size", 224, "Training image side (paper sec. 4.1: 224); a multiple of 16.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (paper sec. 5.1).")
flags.DEFINE_list("lr_decay_steps", [], "Steps at which the learning rate is multiplied by --lr_decay_factor "
                  "(none: the paper's constant rate, sec. 5.1).")
flags.DEFINE_float("lr_decay_factor", 0.3, "Learning-rate factor at each of --lr_decay_steps.")
flags.DEFINE_float("beta_1", 0.9, "Adam beta_1 (paper sec. 5.1).")
flags.DEFINE_float("beta_2", 0.999, "Adam beta_2 (paper sec. 5.1).")
flags.DEFINE_float("epsilon", 1e-8, "Adam epsilon (paper sec. 5.1).")
flags.DEFINE_string(
    "backbone_weights", "imagenet",
    "VGG16 weights (paper sec. 4.1: ImageNet): 'imagenet' (Keras downloads them once; needs internet), "
    "'none' (random init), or the path of a VGG16 no-top .h5 file.",
)
flags.DEFINE_boolean("freeze_backbone", True, "Keep the VGG16 weights fixed, as Guo did (sec. 4.1).")
flags.DEFINE_enum(
    "backbone", "vgg16", ["vgg16", "compact"],
    "Encoder: 'vgg16' (paper sec. 4.1, Guo) or 'compact', a quarter-width VGG-style encoder trained from "
    "scratch (for machines without ImageNet weights; --backbone_weights and --freeze_backbone do not apply).",
)
flags.DEFINE_boolean(
    "global_context", False,
    "Fuse an image-wide summary of the deepest features into every position (Iizuka et al. 2016; not in the "
    "paper), so colours can follow the whole frame.",
)
flags.DEFINE_boolean(
    "output_batchnorm", True,
    "Batch norm before the output sigmoid, as in Guo's network (paper sec. 4.1). It forces every training "
    "batch's chroma to the same spread; --nooutput_batchnorm lets a network without ImageNet features learn.",
)
flags.DEFINE_float(
    "low_saturation_weight", 0.0,
    "Extra weight on pixels predicted greyer than the target (the paper's future work against washed-out "
    "colours, sec. 6); 0 = the paper's loss.",
)
flags.DEFINE_enum(
    "loss", "blurred_mse", ["blurred_mse", "classification"],
    "blurred_mse: the paper's (Guo's) MSE of the chroma plain and after 3x3 and 5x5 Gaussian blurs (sec. 4.1); "
    "classification: Zhang et al. 2016, class-rebalanced cross-entropy over quantised UV bins, decoded by the "
    "annealed mean (colorize.chroma; --portable only).",
)
flags.DEFINE_float("chroma_bin_width", 0.04, "--loss classification: UV grid spacing of the bins (the bins "
                   "the training pixels fall in are kept).")
flags.DEFINE_integer("chroma_neighbours", 5, "--loss classification: nearest bins in each soft target (Zhang: 5; "
                     "1 = one-hot).")
flags.DEFINE_integer("chroma_loss_stride", 4, "--loss classification: take the loss on every Nth pixel each way "
                     "(Zhang et al.: a quarter of the resolution; 1 = every pixel).")
flags.DEFINE_float("rebalance_lambda", 0.5, "--loss classification: class weights ((1-l) p + l/Q)^-1 (Zhang: 0.5; "
                   "1 = no rebalancing).")
flags.DEFINE_float("temperature", 0.38, "--loss classification: annealed-mean temperature for the dev metrics and "
                   "the export's default (Zhang: 0.38; toward 0 the mode, 1 the mean).")
flags.DEFINE_float("brightness_jitter", 0.0, "--portable: training crops' RGB gain in [1-b, 1+b] (hue kept; 0 = off).")
flags.DEFINE_float("contrast_jitter", 0.0, "--portable: training crops' contrast about their mean luma in [1-c, 1+c] "
                   "(hue kept; 0 = off).")
flags.DEFINE_integer("seed", 0, "Seed for initialisation, shuffling and augmentation.")
flags.DEFINE_integer("log_every", 50, "Log loss and steps/s every N steps.")
flags.DEFINE_integer("sample_every", 1000, "Save grey|prediction|truth sheets every N steps (sec. 5.1: 1000).")
flags.DEFINE_integer("num_samples", 4, "Images per sample sheet (from the dev split when there is one).")
flags.DEFINE_integer("eval_every", 1000, "Dev-set loss/MSE every N steps.")
flags.DEFINE_integer("eval_images", 0, "Dev images used per evaluation (0 = all).")
flags.DEFINE_integer("checkpoint_every", 1000, "Save the full training state every N steps.")
flags.DEFINE_integer("max_to_keep", 5, "Recent checkpoints kept.")
flags.DEFINE_boolean("keep_best", True, "Also keep the weights with the lowest dev loss (workdir/ckpt_best).")
flags.DEFINE_boolean("export", True, "Export a SavedModel to workdir/export at the end.")
flags.DEFINE_string("export_dir", "", "Also export there at the end (e.g. checkpoints/colorize; replaced).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: default (one device), mirrored (all GPUs of this host, else all logical CPUs), "
                  "multi_worker (MultiWorkerMirroredStrategy across hosts, from the TF_CONFIG environment variable). "
                  "--batch_size is the global batch, split evenly across replicas. See README 'Scaling out'.")
flags.DEFINE_boolean("tensorboard", True, "Write TensorBoard logs to workdir/tensorboard.")
flags.DEFINE_boolean(
    "portable", False,
    "Train with Keras model.fit on the active Keras backend (e.g. KERAS_BACKEND=jax on a GPU machine without "
    "TensorFlow) instead of the TensorFlow trainer; writes weights, not tf checkpoints, and no samples, "
    "TensorBoard or export: run colorize.export --workdir on it afterwards. See colorize.portable.",
)
flags.DEFINE_boolean("progress", None, "Show a progress bar (default: when stderr is a terminal).")


def config_from_flags():
    """The frozen config of the parsed flags."""
    from colorize.config import ColorizeConfig

    names = [f.name for f in dataclasses.fields(ColorizeConfig) if f.name != "chroma_bins"]  # found in the data
    return ColorizeConfig(**{name: FLAGS[name].value for name in names})


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
