"""The colouriser's training settings.

`ColorizeConfig` is the one resolved config of a run (saved as `config.json`
beside its state). `colorize.trainer` trains with Keras `model.fit` on
whatever Keras backend is active (TensorFlow, with `tf.distribute`, or e.g.
JAX on a GPU machine without TensorFlow), so this module imports neither
TensorFlow nor flags.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from absl import logging

from colorize.model import ARCHITECTURE_FIELDS, BACKBONES, SIZE_MULTIPLE
from common.settings import setting
from common.training import STRATEGIES, STRATEGY_HELP, load_config


LOSSES = ("blurred_mse", "classification")


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    """Resolved settings of one colouriser training run (defaults: the paper's).

    Each field's help is its `colorize.train` flag's (see `common.settings`).
    """

    data_dir: str = setting(help="Output folder of `python -m data.prepare` (holds train/ and dev/).")
    iterations: int = setting(41000, help="Training steps (paper sec. 5.1: ~41,000; overfitting after ~30,000).")
    batch_size: int = setting(6, help="Images per step (the paper gives none; 6 is Guo's config.py).")
    size: int = setting(224, help="Training image side (paper sec. 4.1: 224); a multiple of 16.")
    learning_rate: float = setting(1e-3, help="Adam learning rate (paper sec. 5.1).")
    lr_decay_steps: tuple = setting((), help=(
        "Steps at which the learning rate is multiplied by --lr_decay_factor (none: the paper's constant "
        "rate, sec. 5.1)."
    ))
    lr_decay_factor: float = setting(0.3, help="Learning-rate factor at each of --lr_decay_steps.")
    beta_1: float = setting(0.9, help="Adam beta_1 (paper sec. 5.1).")
    beta_2: float = setting(0.999, help="Adam beta_2 (paper sec. 5.1).")
    epsilon: float = setting(1e-8, help="Adam epsilon (paper sec. 5.1).")
    backbone_weights: str = setting("imagenet", help=(
        "VGG16 weights (paper sec. 4.1: ImageNet): 'imagenet' (Keras downloads them once; needs internet), "
        "'none' (random init), or the path of a VGG16 no-top .h5 file."
    ))
    freeze_backbone: bool = setting(True, help="Keep the VGG16 weights fixed, as Guo did (sec. 4.1).")
    backbone: str = setting("vgg16", help=(
        "Encoder: 'vgg16' (paper sec. 4.1, Guo) or 'compact', a quarter-width VGG-style encoder trained from "
        "scratch (for machines without ImageNet weights; --backbone_weights and --freeze_backbone do not "
        "apply)."
    ), choices=BACKBONES)
    global_context: bool = setting(False, help=(
        "Fuse an image-wide summary of the deepest features into every position (Iizuka et al. 2016; not in "
        "the paper), so colours can follow the whole frame."
    ))
    output_batchnorm: bool = setting(True, help=(
        "Batch norm before the output sigmoid, as in Guo's network (paper sec. 4.1). It forces every training"
        " batch's chroma to the same spread; --nooutput_batchnorm lets a network without ImageNet features "
        "learn."
    ))
    low_saturation_weight: float = setting(0.0, help=(
        "Extra weight on pixels predicted greyer than the target (the paper's future work against washed-out "
        "colours, sec. 6); 0 = the paper's loss."
    ))
    loss: str = setting("blurred_mse", help=(
        "blurred_mse: the paper's (Guo's) MSE of the chroma plain and after 3x3 and 5x5 Gaussian blurs (sec. "
        "4.1); classification: Zhang et al. 2016, class-rebalanced cross-entropy over quantised UV bins, "
        "decoded by the annealed mean (colorize.chroma)."
    ), choices=LOSSES)
    chroma_bin_width: float = setting(0.04, help=(
        "--loss classification: UV grid spacing of the bins (the bins the training pixels fall in are kept)."
    ))
    chroma_bins: tuple = ()  # classification: the kept bins' grid indices, found in the training data at the start
    chroma_neighbours: int = setting(5, help=(
        "--loss classification: nearest bins in each soft target (Zhang: 5; 1 = one-hot)."
    ))
    chroma_loss_stride: int = setting(4, help=(
        "--loss classification: take the loss on every Nth pixel each way (Zhang et al.: a quarter of the "
        "resolution; 1 = every pixel)."
    ))
    rebalance_lambda: float = setting(0.5, help=(
        "--loss classification: class weights ((1-l) p + l/Q)^-1 (Zhang: 0.5; 1 = no rebalancing)."
    ))
    temperature: float = setting(0.38, help=(
        "--loss classification: annealed-mean temperature for the dev metrics and the export's default "
        "(Zhang: 0.38; toward 0 the mode, 1 the mean)."
    ))
    brightness_jitter: float = setting(0.0, help=(
        "Training crops' RGB gain in [1-b, 1+b] (hue kept; 0 = off)."
    ))
    contrast_jitter: float = setting(0.0, help=(
        "Training crops' contrast about their mean luma in [1-c, 1+c] (hue kept; 0 = off)."
    ))
    seed: int = setting(0, help="Seed for initialisation, shuffling and augmentation.")
    log_every: int = setting(50, help="Log loss and steps/s every N steps.")
    sample_every: int = setting(1000, help="Save grey|prediction|truth sheets every N steps (sec. 5.1: 1000).")
    num_samples: int = setting(4, help="Images per sample sheet (from the dev split when there is one).")
    eval_every: int = setting(1000, help="Dev-set loss/MSE every N steps.")
    eval_images: int = setting(0, help="Dev images used per evaluation (0 = all).")
    checkpoint_every: int = setting(1000, help="Save the full training state every N steps.")
    max_to_keep: int = setting(5, help="Recent checkpoints kept.")
    keep_best: bool = setting(True, help="Also keep the weights with the lowest dev loss (workdir/best).")
    export: bool = setting(True, help=(
        "Export a SavedModel to workdir/export at the end (TensorFlow backend; elsewhere run colorize.export)."
    ))
    export_dir: str = setting("", help="Also export there at the end (e.g. checkpoints/colorize; replaced).")
    tensorboard: bool = setting(True, help="Write TensorBoard logs to workdir/tensorboard.")
    progress: Optional[bool] = setting(None, help="Show a progress bar (default: when stderr is a terminal).")
    strategy: str = setting("default", help=STRATEGY_HELP, choices=STRATEGIES)

    def __post_init__(self):
        # Flags and config.json give lists; a frozen config holds a tuple.
        try:
            steps = tuple(int(s) for s in self.lr_decay_steps)
        except (TypeError, ValueError):
            raise ValueError(f"lr_decay_steps must be step numbers, got {list(self.lr_decay_steps)!r}") from None
        object.__setattr__(self, "lr_decay_steps", steps)
        object.__setattr__(self, "chroma_bins", tuple(tuple(int(i) for i in b) for b in self.chroma_bins))


# Fields a resumed run may change without changing what is learned.
BOOKKEEPING_FIELDS = (
    "iterations", "log_every", "sample_every", "num_samples", "eval_every", "eval_images", "checkpoint_every",
    "max_to_keep", "keep_best", "export", "export_dir", "tensorboard", "progress", "strategy",
)


def validate(config: ColorizeConfig) -> None:
    """Raises ValueError for settings that cannot work, with the reason."""
    if config.size <= 0 or config.size % SIZE_MULTIPLE:
        raise ValueError(f"size must be a positive multiple of {SIZE_MULTIPLE} (224 in the paper), got {config.size}")
    for name in ("iterations", "batch_size", "log_every", "sample_every", "eval_every", "checkpoint_every", "max_to_keep"):
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(config, name)}")
    if config.low_saturation_weight < 0:
        raise ValueError("low_saturation_weight must be >= 0")
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; choose from {LOSSES}")
    if config.loss == "classification":
        if not 0 < config.chroma_bin_width <= 0.5:
            raise ValueError(f"chroma_bin_width must be in (0, 0.5] UV units, got {config.chroma_bin_width}")
        if config.chroma_loss_stride < 1:
            raise ValueError(f"chroma_loss_stride must be >= 1, got {config.chroma_loss_stride}")
        if config.chroma_neighbours < 1:
            raise ValueError(f"chroma_neighbours must be >= 1, got {config.chroma_neighbours}")
        if not 0 <= config.rebalance_lambda <= 1:
            raise ValueError(f"rebalance_lambda must be in [0, 1], got {config.rebalance_lambda}")
        if not config.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {config.temperature}")
        if config.low_saturation_weight:
            raise ValueError("low_saturation_weight re-weights the blurred MSE; it does not apply to --loss classification")
    if not (0 <= config.brightness_jitter < 1 and 0 <= config.contrast_jitter < 1):
        raise ValueError("brightness_jitter and contrast_jitter must be in [0, 1)")
    if not config.learning_rate > 0:
        raise ValueError("learning_rate must be positive")
    if list(config.lr_decay_steps) != sorted(set(config.lr_decay_steps)) or any(s <= 0 for s in config.lr_decay_steps):
        raise ValueError(f"lr_decay_steps must be increasing positive steps, got {list(config.lr_decay_steps)}")
    if not 0 < config.lr_decay_factor <= 1:
        raise ValueError(f"lr_decay_factor must be in (0, 1], got {config.lr_decay_factor}")
    if config.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {config.strategy!r}; choose from {STRATEGIES}")
    if config.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {config.backbone!r}; choose from {BACKBONES}")


def learning_rate(config: ColorizeConfig):
    """The learning rate: `config.learning_rate`, times `lr_decay_factor` at each of `lr_decay_steps`.

    Returns a float when there is no decay (so a resumed run can be given a
    new rate), else a Keras schedule on the optimiser's iteration count.
    """
    if not config.lr_decay_steps:
        return float(config.learning_rate)
    import keras

    values = [config.learning_rate * config.lr_decay_factor ** i for i in range(len(config.lr_decay_steps) + 1)]
    # The schedule sees the iterations done before an update and keeps values[0] while that is <= its
    # first boundary: boundary N - 1 makes update N + 1, the first after step N, the first at the lower rate.
    return keras.optimizers.schedules.PiecewiseConstantDecay([s - 1 for s in config.lr_decay_steps], values)


def make_optimizer(config: ColorizeConfig):
    """Adam with the paper's settings (sec. 5.1) and the run's learning-rate steps."""
    import keras

    return keras.optimizers.Adam(
        learning_rate=learning_rate(config), beta_1=config.beta_1, beta_2=config.beta_2, epsilon=config.epsilon
    )


def use_config_learning_rate(optimizer, config: ColorizeConfig) -> None:
    """After a restore: the config's learning rate wins over the one saved with the optimiser.

    A restored optimiser carries its old rate; a resumed run may be given a new
    `--learning_rate` (a float). A step schedule follows the restored iteration count.
    """
    if not config.lr_decay_steps:
        optimizer.learning_rate = config.learning_rate


def check_resume_config(workdir: str, config: ColorizeConfig) -> None:
    """Refuses to resume `workdir` as a different network; logs other changed settings.

    Raises:
        ValueError: the run in `workdir` has another architecture (see `colorize.model.ARCHITECTURE_FIELDS`).
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        return
    old = load_config(path)
    new = json.loads(json.dumps(dataclasses.asdict(config)))  # as config.json holds it (lists, not tuples)
    # A change of architecture makes the checkpoint a different model.
    for key in ARCHITECTURE_FIELDS:
        if key in old and old[key] != new[key]:
            raise ValueError(
                f"{workdir} holds a run with {key}={old[key]!r}; this run asks for {new[key]!r}. "
                "Use a new --workdir or the old setting."
            )
    changed = {k: (old.get(k), v) for k, v in new.items() if k in old and old[k] != v}
    learning = {k: v for k, v in changed.items() if k not in BOOKKEEPING_FIELDS}
    if learning:
        logging.warning("resuming %s with changed training settings (old, new): %s", workdir, learning)
    elif changed:
        logging.info("resuming %s with changed settings (old, new): %s", workdir, changed)


__all__ = ["ColorizeConfig", "LOSSES", "BOOKKEEPING_FIELDS", "validate", "learning_rate", "make_optimizer", "use_config_learning_rate",
           "check_resume_config"]
