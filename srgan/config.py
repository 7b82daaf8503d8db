"""The SRGAN's training settings (`SRGANConfig`), beside `colorize.config`.

`SRGANConfig` is the one resolved config of a run (saved as `workdir/config.json`
beside its checkpoints). It is read by the trainer (`srgan.trainer`), by
restoring finished runs (`srgan.restore`) and by the command line
(`srgan.train`), so this module holds no training loop and reads no flags.
"""
from __future__ import annotations

import dataclasses

from common.training import STRATEGIES
from data.datasets import DEGRADATIONS
from srgan.model import ARCHS, VGG_LAYERS

#: Settings a checkpoint's variables depend on: a resumed run must keep them.
MODEL_FIELDS = ("num_blocks", "filters", "scale", "arch", "hr_size", "mixed_precision")


@dataclasses.dataclass(frozen=True)
class SRGANConfig:
    """Resolved settings of one training run (saved as `workdir/config.json`).

    Defaults are the paper's (sec. 4.2, 5.1; see `srgan.train` for each source).
    """

    data_dir: str
    num_blocks: int = 16
    filters: int = 64
    scale: int = 4
    arch: str = "residual"
    degradation: str = "bicubic"
    hr_size: int = 96
    batch_size: int = 16
    learning_rate: float = 1e-4
    beta_1: float = 0.9
    init_steps: int = 100_000
    steps: int = 1_000_000
    decay_every: int = 500_000
    decay_factor: float = 0.1
    vgg_layer: str = "conv5_4"
    vgg_weights: str = "imagenet"
    content_weight: float = 1.0
    adversarial_weight: float = 1e-3
    pixel_weight: float = 0.0
    eval_every: int = 1000
    sample_every: int = 1000
    checkpoint_every: int = 1000
    log_every: int = 100
    eval_images: int = 32
    seed: int = 0
    mixed_precision: str = "none"
    jit_compile: bool = False
    init_generator: str = ""
    strategy: str = "default"


def validate(config: SRGANConfig) -> None:
    """Raises ValueError for settings that cannot work, with the reason."""
    if config.degradation not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {config.degradation!r}; choose from {DEGRADATIONS}")
    if config.arch not in ARCHS:
        raise ValueError(f"unknown arch {config.arch!r}; choose from {ARCHS}")
    if config.vgg_layer not in VGG_LAYERS:
        raise ValueError(f"unknown vgg_layer {config.vgg_layer!r}; choose from {sorted(VGG_LAYERS)}")
    if config.scale < 2 or config.scale & (config.scale - 1):
        raise ValueError(f"scale must be a power of 2 (2, 4, 8, ...), got {config.scale}")
    if config.hr_size % config.scale:
        raise ValueError(f"hr_size {config.hr_size} must be a multiple of scale {config.scale}")
    if not 0 <= config.init_steps <= config.steps:
        raise ValueError(f"need 0 <= init_steps ({config.init_steps}) <= steps ({config.steps})")
    for name in ("batch_size", "decay_every", "eval_every", "sample_every", "checkpoint_every", "log_every"):
        if getattr(config, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(config, name)}")
    if config.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {config.strategy!r}; choose from {STRATEGIES}")
    if config.mixed_precision not in ("none", "mixed_float16", "mixed_bfloat16"):
        raise ValueError(f"unknown mixed_precision {config.mixed_precision!r}")


def phase_of(config: SRGANConfig, step: int) -> int:
    """The phase (1: MSE, 2: GAN) that the update taking the run from `step` to `step + 1` belongs to."""
    return 1 if step < config.init_steps else 2


def learning_rate_at(config: SRGANConfig, step: int) -> float:
    """Phase 1: the base rate; phase 2: x decay_factor every decay_every phase-2 steps."""
    if step < config.init_steps:
        return config.learning_rate
    return config.learning_rate * config.decay_factor ** ((step - config.init_steps) // config.decay_every)



__all__ = ["SRGANConfig", "MODEL_FIELDS", "validate", "phase_of", "learning_rate_at"]
