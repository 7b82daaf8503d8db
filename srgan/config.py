"""The SRGAN's training settings (`SRGANConfig`), beside `colorize.config`.

`SRGANConfig` is the one resolved config of a run (saved as `workdir/config.json`
beside its checkpoints). It is read by the trainer (`srgan.trainer`), by
restoring finished runs (`srgan.restore`) and by the command line
(`srgan.train`), so this module holds no training loop and reads no flags.
"""
from __future__ import annotations

import dataclasses

from common.settings import setting
from common.training import STRATEGIES, STRATEGY_HELP
from data.sr_examples import DEGRADATIONS
from srgan.model import ARCHS, VGG_LAYERS

#: Keras mixed-precision policies a run may train under.
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")
#: Settings a checkpoint's variables depend on: a resumed run must keep them.
#: Where a run keeps the generator at the end of phase 1 (`srgan.trainer`, `srgan.restore`).
MSE_DIR = "ckpt_mse"

MODEL_FIELDS = ("num_blocks", "filters", "scale", "arch", "hr_size", "mixed_precision")


@dataclasses.dataclass(frozen=True)
class SRGANConfig:
    """Resolved settings of one training run (saved as `workdir/config.json`).

    Defaults are the paper's (sec. 4.2, 5.1); each field's help (its `srgan.train`
    flag's, see `common.settings`) names its source.
    """

    data_dir: str = setting(help="Output of `python -m data.prepare` (train/ and dev/ folders).")
    num_blocks: int = setting(16, help="Residual blocks in the generator (paper sec. 4.2: 16).")
    filters: int = setting(64, help="Generator feature channels (paper sec. 4.2 / Ledig: 64).")
    scale: int = setting(4, help="Upscaling factor, a power of 2 (paper: 4).")
    arch: str = setting("residual", help=(
        "residual: bicubic + a learned residual, no batch norm, reflect padding, every convolution at LR "
        "resolution (srgan/residual.py; an untrained one is bicubic, so it cannot drift in colour or "
        "brightness); srresnet: Ledig's generator as in the paper (sec. 4.2: batch norm, PReLU, sub-pixel "
        "upsampling); tl: tensorlayer/srgan's exact generator (ReLU, tanh; x4 only), the one srgan.import_tl "
        "loads TL weights into."
    ), choices=ARCHS)
    degradation: str = setting("bicubic", help=(
        "How LR crops are made from HR: bicubic (antialiased, as the paper's evaluation and Ledig et al.), "
        "block (means of scale x scale pixels: a detector with bigger pixels, as raw frames are binned), or "
        "mixed (either, drawn per example)."
    ), choices=DEGRADATIONS)
    block_linear: bool = setting(False, help=(
        "Take block-mean LR in linear units (the display crop read as the FITS readers' default asinh "
        "stretch, undone, averaged, stretched again): how a raw frame's bigger pixel reaches the network in "
        "full mode, and the operator its consistency step assumes. Off: means of display values (the "
        "default models up to the consistency issue)."
    ))
    train_consistency: bool = setting(False, help=(
        "Put the pipeline's consistency step after the generator in training and evaluation "
        "(data.sr_examples.consistent: block crops get exact block means, in linear units with "
        "--block_linear; bicubic crops the bicubic back-projection), so the network learns what survives "
        "it; plus the MSE of the raw output degraded again against its input, so the network's own output "
        "stays consistent and an SR on its own. Off: the losses see the generator's raw output (the paper's)."
    ))
    hr_size: int = setting(96, help="HR crop side (paper/Ledig: 96, LR 24).")
    batch_size: int = setting(16, help="Batch size (Ledig: 16).")
    learning_rate: float = setting(1e-4, help="Adam learning rate (paper sec. 5.1: 1e-4).")
    beta_1: float = setting(0.9, help="Adam beta_1 (paper sec. 5.1: 0.9).")
    init_steps: int = setting(100_000, help=(
        "Phase 1: generator-only MSE steps (SRResNet; tensorlayer/srgan's 'init' epochs; the paper gives no "
        "count). Its result is also exported to WORKDIR/export_mse."
    ))
    steps: int = setting(1_000_000, help="Total steps, phase 1 included (paper sec. 5.1: 1e6 updates).")
    decay_every: int = setting(500_000, help=(
        "Phase 2: multiply the learning rate by --decay_factor every this many phase-2 steps "
        "(tensorlayer/srgan: once, half-way through its GAN epochs; Ledig et al.: 1e-4 for 1e5 updates, then "
        "1e-5; the paper (sec. 5.1) names no decay)."
    ))
    decay_factor: float = setting(0.1, help="Learning-rate step decay (tensorlayer/srgan and Ledig: x0.1).")
    vgg_layer: str = setting("conv5_4", help=(
        "Content-loss layer: conv5_4 (SRGAN paper's VGG54), pool4 (tensorlayer/srgan), conv2_2 (VGG22)."
    ), choices=tuple(VGG_LAYERS))
    vgg_weights: str = setting("imagenet", help=(
        "VGG19 weights for the content loss: imagenet (Keras download or its cached "
        "~/.keras/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5), none (random He-normal VGG "
        "features: a weaker but still defined perceptual loss, for tests and offline runs), or a local VGG19 "
        "no-top weights file (.h5)."
    ))
    content_weight: float = setting(1.0, help=(
        "Weight of the VGG content loss (paper sec. 4.2: 1; the loss is a mean over the feature map, Ledig "
        "eq. 5. Ledig also rescaled the features by 1/12.75, i.e. a weight of ~0.006)."
    ))
    adversarial_weight: float = setting(1e-3, help="Weight of -log D(G(LR)) (paper sec. 4.2: 1e-3).")
    pixel_weight: float = setting(0.0, help="Weight of pixel MSE in phase 2 (tensorlayer/srgan adds it with weight 1).")
    eval_every: int = setting(1000, help="Dev PSNR/SSIM every this many steps.")
    sample_every: int = setting(1000, help="Save a bicubic | SR | HR sample every this many steps.")
    checkpoint_every: int = setting(1000, help="Checkpoint every this many steps.")
    log_every: int = setting(100, help="Log losses and speed every this many steps.")
    eval_images: int = setting(32, help="Dev images used for evaluation.")
    seed: int = setting(0, help="Seed for weights, data order and augmentation.")
    mixed_precision: str = setting("none", help=(
        "Keras mixed-precision policy (GPU; mixed_float16 adds dynamic loss scaling). The SRResNet's last "
        "layer and D's logit stay float32."
    ), choices=PRECISIONS)
    jit_compile: bool = setting(False, help="Compile the train steps with XLA (faster on GPU; first step slower).")
    init_generator: str = setting("", help=(
        "Start a new run's generator from an exported SR SavedModel with the same "
        "num_blocks/filters/scale/arch (e.g. checkpoints/srgan with --init_steps 0: phase 2 only, fine-tuning"
        " a trained SRResNet as tensorlayer/srgan does after its init epochs). Ignored when resuming."
    ))
    strategy: str = setting("default", help=STRATEGY_HELP, choices=STRATEGIES)


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
    if config.mixed_precision not in PRECISIONS:
        raise ValueError(f"unknown mixed_precision {config.mixed_precision!r}")


def phase_of(config: SRGANConfig, step: int) -> int:
    """The phase (1: MSE, 2: GAN) that the update taking the run from `step` to `step + 1` belongs to."""
    return 1 if step < config.init_steps else 2


__all__ = ["SRGANConfig", "MODEL_FIELDS", "MSE_DIR", "validate", "phase_of"]
