"""The colouriser's training settings, shared by both trainers.

`ColorizeConfig` is the one resolved config of a run (saved as `config.json`
beside its checkpoints). It is used by `colorize.trainer` (TensorFlow,
`tf.distribute`, tf.train checkpoints) and by `colorize.portable` (Keras
`model.fit` on whatever Keras backend is active, e.g. JAX on a GPU machine
without TensorFlow), so this module imports neither TensorFlow nor flags.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from absl import logging

from colorize.model import ARCHITECTURE_FIELDS, BACKBONES, SIZE_MULTIPLE
from common.training import STRATEGIES, load_config


LOSSES = ("blurred_mse", "classification")


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    """Resolved settings of one colouriser training run (defaults: the paper's)."""

    data_dir: str
    iterations: int = 41000  # sec. 5.1: ~41k, overfitting after ~30k
    batch_size: int = 6  # Guo's config.py (the paper gives none)
    size: int = 224  # sec. 4.1 / 5.2
    learning_rate: float = 1e-3  # sec. 5.1, Adam
    lr_decay_steps: tuple = ()  # steps where the learning rate is multiplied by lr_decay_factor (none in the paper)
    lr_decay_factor: float = 0.3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8
    backbone_weights: str = "imagenet"  # 'imagenet', 'none' or a .h5 path
    freeze_backbone: bool = True  # Guo kept the VGG16 fixed
    backbone: str = "vgg16"  # Guo's; 'compact' = small encoder trained from scratch
    global_context: bool = False  # image-wide features fused in (Iizuka et al.); not in Guo's network
    output_batchnorm: bool = True  # Guo's BN before the output sigmoid
    low_saturation_weight: float = 0.0  # paper's future work; 0 = the paper's loss
    loss: str = "blurred_mse"  # the paper's (Guo's); 'classification' = Zhang et al. 2016 (colorize.chroma)
    chroma_bin_width: float = 0.04  # classification: UV grid spacing of the chroma bins
    chroma_bins: tuple = ()  # classification: the kept bins' grid indices, found in the training data at the start
    chroma_neighbours: int = 5  # classification: bins in each soft target (1 = one-hot)
    chroma_loss_stride: int = 4  # classification: the loss on every 4th pixel each way (Zhang: 1/4 resolution)
    rebalance_lambda: float = 0.5  # classification: mix with the uniform distribution in the class weights
    temperature: float = 0.38  # classification: annealed-mean decoding temperature (Zhang's), the export's default
    brightness_jitter: float = 0.0  # training crops' RGB gain drawn in [1 - b, 1 + b] (0 = off)
    contrast_jitter: float = 0.0  # training crops' contrast about their mean luma, in [1 - c, 1 + c] (0 = off)
    seed: int = 0
    log_every: int = 50
    sample_every: int = 1000  # sec. 5.1: inspected every 1000 iterations
    num_samples: int = 4
    eval_every: int = 1000
    eval_images: int = 0  # 0 = the whole dev split
    checkpoint_every: int = 1000
    max_to_keep: int = 5
    keep_best: bool = True
    export: bool = True
    export_dir: str = ""
    tensorboard: bool = True
    progress: Optional[bool] = None  # None: a bar when stderr is a terminal
    strategy: str = "default"  # tf.distribute: default | mirrored | multi_worker

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
