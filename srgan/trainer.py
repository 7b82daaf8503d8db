"""SRGAN training as library code (`srgan.train` is its command line).

Two phases over one global step counter (paper sec. 4.2 / 5.1, after
tensorlayer/srgan's "init" epochs):

1. steps [0, init_steps): the generator alone on pixel MSE (SRResNet). At the
   end of phase 1 its weights are exported to `workdir/export_mse`.
2. steps [init_steps, steps): adversarial training, D then G each step (k=1);
   G minimises content (VGG19 features) + 1e-3 x adversarial (+ pixel MSE
   weight); the learning rate drops x0.1 every `decay_every` phase-2 steps.

Everything needed to continue (both networks, the three optimisers, the step)
is in `workdir/ckpt/`; a restart resumes at the saved step, in the right phase,
and never redoes phase 1 (a known tensorlayer/srgan complaint).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from common.training import TrainState, check_finite, save_config, set_seed
from srgan import losses
from srgan.model import build_discriminator, build_generator, build_vgg_features
from srgan.saved_model import export_saved_model


@dataclasses.dataclass(frozen=True)
class SRGANConfig:
    """Resolved settings of one training run (saved as `workdir/config.json`)."""

    data_dir: str
    num_blocks: int = 16
    filters: int = 64
    scale: int = 4
    arch: str = "srresnet"
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


@dataclasses.dataclass
class TrainResult:
    step: int
    history: list
    dev: dict


def validate(config: SRGANConfig) -> None:
    """Raises ValueError for settings that cannot work, with the reason."""
    if config.hr_size % config.scale:
        raise ValueError(f"hr_size {config.hr_size} must be a multiple of scale {config.scale}")
    if not 0 <= config.init_steps <= config.steps:
        raise ValueError(f"need 0 <= init_steps ({config.init_steps}) <= steps ({config.steps})")
    if config.decay_every <= 0:
        raise ValueError("decay_every must be positive")
    if config.mixed_precision not in ("none", "mixed_float16", "mixed_bfloat16"):
        raise ValueError(f"unknown mixed_precision {config.mixed_precision!r}")


def learning_rate_at(config: SRGANConfig, step: int) -> float:
    """Phase 1: the base rate; phase 2: x decay_factor every decay_every phase-2 steps."""
    if step < config.init_steps:
        return config.learning_rate
    return config.learning_rate * config.decay_factor ** ((step - config.init_steps) // config.decay_every)


class _Models:
    """Networks, optimisers and compiled steps of one run."""

    def __init__(self, config: SRGANConfig) -> None:
        self.config = config
        self.generator = build_generator(config.num_blocks, config.filters, config.scale, config.arch)
        self.discriminator = build_discriminator(config.hr_size)
        weights = None if config.vgg_weights == "none" else config.vgg_weights
        self.vgg = build_vgg_features(config.vgg_layer, weights)

        def adam():
            opt = keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1)
            if config.mixed_precision == "mixed_float16":
                opt = keras.optimizers.LossScaleOptimizer(opt)
            return opt

        self.g_init_opt, self.g_opt, self.d_opt = adam(), adam(), adam()
        self.g_init_opt.build(self.generator.trainable_variables)
        self.g_opt.build(self.generator.trainable_variables)
        self.d_opt.build(self.discriminator.trainable_variables)
        jit = config.jit_compile
        self.mse_step = tf.function(self._mse_step, jit_compile=jit)
        self.gan_step = tf.function(self._gan_step, jit_compile=jit)

    @staticmethod
    def _apply(opt, tape, loss, variables):
        scaled = opt.scale_loss(loss) if hasattr(opt, "scale_loss") else loss
        opt.apply_gradients(zip(tape.gradient(scaled, variables), variables))

    def _mse_step(self, lr, hr):
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            loss = losses.pixel_mse(hr, sr)
        self._apply(self.g_init_opt, tape, loss, self.generator.trainable_variables)
        return {"mse": loss}

    def _gan_step(self, lr, hr):
        c = self.config
        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
        sr = self.generator(lr, training=True)
        with tf.GradientTape() as d_tape:
            d_loss = losses.discriminator_loss(
                self.discriminator(hr, training=True), self.discriminator(sr, training=True)
            )
        self._apply(self.d_opt, d_tape, d_loss, d_vars)
        with tf.GradientTape() as g_tape:
            sr = self.generator(lr, training=True)
            parts = losses.generator_loss(
                hr, sr, self.discriminator(sr, training=True), self.vgg,
                adversarial_weight=c.adversarial_weight, content_weight=c.content_weight, pixel_weight=c.pixel_weight,
            )
        self._apply(self.g_opt, g_tape, parts["total"], g_vars)
        return {"d": d_loss, "g": parts["total"], "content": parts["content"], "adversarial": parts["adversarial"],
                "mse": parts["pixel"]}

    def set_learning_rate(self, value: float) -> None:
        # Restoring a checkpoint also restores the learning-rate variables;
        # set them from the schedule every step so flags and decay win.
        for opt in (self.g_init_opt, self.g_opt, self.d_opt):
            inner = getattr(opt, "inner_optimizer", opt)
            inner.learning_rate.assign(value)


def evaluate_dev(generator: keras.Model, dataset) -> dict:
    """Dev PSNR/SSIM (dB, [0, 1] scale) of the generator and of bicubic, per-image means."""
    from pipeline.metrics import psnr, ssim

    sums = {"psnr": 0.0, "ssim": 0.0, "psnr_bicubic": 0.0}
    n = 0
    for lr, hr in dataset:
        sr = tf.clip_by_value(tf.cast(generator(lr, training=False), tf.float32), 0.0, 1.0)
        bic = tf.clip_by_value(tf.image.resize(lr, tf.shape(hr)[1:3], "bicubic"), 0.0, 1.0)
        b = int(lr.shape[0])
        sums["psnr"] += float(psnr(hr, sr)) * b
        sums["ssim"] += float(ssim(hr, sr)) * b
        sums["psnr_bicubic"] += float(psnr(hr, bic)) * b
        n += b
    return {k: v / max(n, 1) for k, v in sums.items()}


def _write_sample(path: str, generator, lr, hr) -> None:
    from data.io import write_png

    sr = np.clip(np.asarray(generator(lr[:1], training=False), np.float32)[0], 0, 1)
    bic = np.clip(tf.image.resize(lr[:1], hr.shape[1:3], "bicubic").numpy()[0], 0, 1)
    write_png(path, np.concatenate([bic, sr, np.asarray(hr[0])], axis=1))


def _scalars(writer, values: dict, step: int) -> None:
    from common.summaries import write_scalars

    write_scalars(writer, values, step)


def train(config: SRGANConfig, workdir: str) -> TrainResult:
    """Trains (or resumes) in `workdir`; exports to `workdir/export` at the end.

    Raises:
        ValueError: bad settings or no training images.
        common.training.NonFiniteLossError: a loss became NaN/inf (names the step).
    """
    from data.datasets import split_files, sr_dataset

    validate(config)
    os.makedirs(workdir, exist_ok=True)
    if config.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        set_seed(config.seed)
        train_files = split_files(config.data_dir, "train")
        try:
            dev_files = split_files(config.data_dir, "dev")[: config.eval_images]
        except ValueError:
            dev_files = []
        save_config(config, workdir)
        m = _Models(config)
        state = TrainState(os.path.join(workdir, "ckpt"), generator=m.generator, discriminator=m.discriminator,
                           g_init_opt=m.g_init_opt, g_opt=m.g_opt, d_opt=m.d_opt)
        start = state.restore()
        if start:
            logging.info("resumed from %s at step %d (phase %d)", state.latest, start,
                         1 if start < config.init_steps else 2)
        # A resumed run must not replay the batches it already saw.
        data = iter(sr_dataset(train_files, config.hr_size, config.scale, config.batch_size, True,
                               config.seed + start))
        dev = sr_dataset(dev_files, config.hr_size, config.scale, min(config.batch_size, 8), False) if dev_files else None
        writer = tf.summary.create_file_writer(os.path.join(workdir, "tb"))
        history, dev_metrics = [], {}
        t0, t_steps = time.perf_counter(), 0
        step = start
        try:
            while step < config.steps:
                lr, hr = next(data)
                m.set_learning_rate(learning_rate_at(config, step))
                phase = 1 if step < config.init_steps else 2
                out = m.mse_step(lr, hr) if phase == 1 else m.gan_step(lr, hr)
                values = {k: float(v) for k, v in out.items()}
                check_finite(values, step + 1)
                step += 1
                t_steps += 1
                history.append({"step": step, "phase": phase, **values})
                if step % config.log_every == 0 or step == config.steps:
                    rate = t_steps / max(time.perf_counter() - t0, 1e-9)
                    logging.info("step %d phase %d %s (%.2f steps/s)", step, phase,
                                 " ".join(f"{k}={v:.5f}" for k, v in values.items()), rate)
                    _scalars(writer, {f"train/{k}": v for k, v in values.items()} | {"train/lr": learning_rate_at(config, step - 1)}, step)
                if dev is not None and (step % config.eval_every == 0 or step == config.steps):
                    dev_metrics = evaluate_dev(m.generator, dev)
                    logging.info("step %d dev %s", step, " ".join(f"{k}={v:.4f}" for k, v in dev_metrics.items()))
                    _scalars(writer, {f"dev/{k}": v for k, v in dev_metrics.items()}, step)
                if step % config.sample_every == 0:
                    _write_sample(os.path.join(workdir, "samples", f"step_{step:08d}.png"), m.generator, lr, hr)
                if step == config.init_steps and config.init_steps > 0:
                    state.save(step)
                    export_saved_model(m.generator, os.path.join(workdir, "export_mse"), _meta(config),
                                       overwrite=True, steps_trained=step, phase="mse")
                elif step % config.checkpoint_every == 0:
                    state.save(step)
        except KeyboardInterrupt:
            state.save(step)
            logging.info("interrupted: saved step %d", step)
            raise
        if state.latest is None or not state.latest.endswith(f"-{step}"):
            state.save(step)
        phase = "mse" if step <= config.init_steps else "gan"
        export_saved_model(m.generator, os.path.join(workdir, "export"), _meta(config), overwrite=True,
                           steps_trained=step, phase=phase)
        with open(os.path.join(workdir, "history.jsonl"), "a", encoding="utf-8") as f:
            for h in history:
                f.write(json.dumps(h) + "\n")
        return TrainResult(step=step, history=history, dev=dev_metrics)
    finally:
        if config.mixed_precision != "none":
            keras.mixed_precision.set_global_policy("float32")


def _meta(config: SRGANConfig) -> dict:
    meta = dataclasses.asdict(config)
    meta["trained"] = True
    return meta


def restore_generator(workdir: str, checkpoint: Optional[str] = None) -> tuple[keras.Model, SRGANConfig, int]:
    """Rebuilds the generator of a run from `workdir/config.json` and its checkpoint.

    Returns:
        (generator, config, step).
    """
    from common.training import load_config

    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no config.json; is {workdir} a srgan.train workdir?")
    config = SRGANConfig(**load_config(path))
    generator = build_generator(config.num_blocks, config.filters, config.scale, config.arch)
    ckpt = checkpoint or tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))
    if not ckpt:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'ckpt')}")
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(generator=generator, step=step).restore(ckpt).expect_partial()
    return generator, config, int(step.numpy())
