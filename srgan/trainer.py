"""SRGAN training as library code (`srgan.train` is its command line).

Two phases over one global step counter (paper sec. 4.2 / 5.1, after
tensorlayer/srgan's "init" epochs):

1. steps [0, init_steps): the generator alone on pixel MSE (SRResNet). At the
   end of phase 1 its weights are kept in `workdir/ckpt_mse/` and exported to
   `workdir/export_mse` (the PSNR-oriented model).
2. steps [init_steps, steps): adversarial training, D then G each step (k=1);
   G minimises content (VGG19 features) + 1e-3 x adversarial (+ pixel MSE
   weight); the learning rate drops x`decay_factor` every `decay_every`
   phase-2 steps.

Everything needed to continue (both networks, the three optimisers, the step)
is in `workdir/ckpt/`; a restart resumes at the saved step, in the phase that
step implies, and never redoes phase 1 (a known tensorlayer/srgan complaint).

Workdir layout: `config.json`, `ckpt/`, `ckpt_mse/`, `history.jsonl` (one JSON
line per logged step and per dev evaluation), `samples/step_*.png`
(bicubic | SR | HR), `tb/` (TensorBoard), `export_mse/`, `export/`.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from common.distribute import (STRATEGIES, check_batch, checkpoint_dir, distribute_dataset, is_chief,
                               make_strategy, remove_scratch)
from common.training import TrainState, check_finite, load_config, next_batch, save_config, set_seed
from data.datasets import DEGRADATIONS
from srgan.model import ARCHS, VGG_LAYERS, build_generator
from srgan.saved_model import export_saved_model
from srgan.steps import SRGANModels

#: Settings a checkpoint's variables depend on: a resumed run must keep them.
MODEL_FIELDS = ("num_blocks", "filters", "scale", "arch", "hr_size", "mixed_precision")
#: Per-step loss records kept in memory for `TrainResult` (history.jsonl has the logged ones).
HISTORY_KEEP = 10_000
PHASES = ("latest", "mse", "gan")


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


@dataclasses.dataclass
class TrainResult:
    """What one `train` call did: the final step, the last (up to
    `HISTORY_KEEP`) per-step loss records of this call, the last dev metrics."""

    step: int
    history: list
    dev: dict


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


def _check_resumable(config: SRGANConfig, workdir: str) -> None:
    """Refuses to resume a checkpoint with settings its variables do not fit."""
    path = os.path.join(workdir, "config.json")
    if not (os.path.isfile(path) and tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))):
        return
    saved = load_config(path)
    diff = [f"{k}: {saved.get(k)!r} -> {getattr(config, k)!r}" for k in MODEL_FIELDS
            if k in saved and saved[k] != getattr(config, k)]
    if diff:
        raise ValueError(f"{workdir} holds a run whose checkpoint needs other settings ({'; '.join(diff)}); "
                         "resume with the saved settings or use another workdir")


def evaluate_dev(generator: keras.Model, dataset) -> dict:
    """Dev PSNR/SSIM ([0, 1] scale, dB) of the generator and PSNR of bicubic, per-image means.

    Batch norm in inference mode (paper 5.1); SR clipped to [0, 1] like the export.
    """
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


def _sample_strip(generator: keras.Model, lr, hr) -> np.ndarray:
    """First pair of a batch as one `[H, 3W, 3]` image in [0, 1]: bicubic | SR | HR."""
    sr = np.clip(np.asarray(generator(lr[:1], training=False), np.float32)[0], 0, 1)
    bic = np.clip(tf.image.resize(lr[:1], hr.shape[1:3], "bicubic").numpy()[0], 0, 1)
    return np.concatenate([bic, sr, np.asarray(hr[0])], axis=1)


def _meta(config: SRGANConfig) -> dict:
    return dataclasses.asdict(config) | {"trained": True}


def train(config: SRGANConfig, workdir: str) -> TrainResult:
    """Trains (or resumes) in `workdir`; exports to `workdir/export` at the end.

    Raises:
        ValueError: bad settings, no training images, or a workdir whose
            checkpoint needs other model settings.
        common.training.NonFiniteLossError: a loss became NaN/inf (names the
            step); the last good checkpoint is kept.
        KeyboardInterrupt: after saving a checkpoint at the current step.
    """
    from common.summaries import write_image, write_scalars
    from data.datasets import split_files, sr_dataset
    from data.io import write_png

    validate(config)
    strategy = make_strategy(config.strategy)
    check_batch(strategy, config.batch_size)
    chief = is_chief(strategy)
    os.makedirs(workdir, exist_ok=True)
    _check_resumable(config, workdir)
    policy_before = keras.mixed_precision.global_policy().name
    if config.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        set_seed(config.seed)
        train_files = split_files(config.data_dir, "train")
        try:
            dev_files = split_files(config.data_dir, "dev")[: config.eval_images] if chief else []
        except ValueError:
            logging.warning("no dev images in %s/dev: no PSNR/SSIM during training", config.data_dir)
            dev_files = []
        m = SRGANModels(config, strategy)
        ckpt_dir, mse_dir = os.path.join(workdir, "ckpt"), os.path.join(workdir, "ckpt_mse")
        state = TrainState(checkpoint_dir(strategy, ckpt_dir), restore_from=ckpt_dir, **m.trackables())
        mse_state = TrainState(checkpoint_dir(strategy, mse_dir), max_to_keep=1, restore_from=mse_dir,
                               generator=m.generator)
        start = state.restore()
        if not start and config.init_generator:
            load_generator_weights(m.generator, config.init_generator,
                                   {k: getattr(config, k) for k in ("num_blocks", "filters", "scale", "arch")})
            logging.info("generator initialised from %s", config.init_generator)
        if chief:
            save_config(config, workdir)
        if start:
            logging.info("resumed from %s at step %d (phase %d)", state.latest, start, phase_of(config, start))
        # A resumed run must not replay the batches it already saw.
        data = iter(distribute_dataset(strategy, sr_dataset(train_files, config.hr_size, config.scale,
                                                            config.batch_size, True, config.seed + start,
                                                            config.degradation)))
        dev = (sr_dataset(dev_files, config.hr_size, config.scale, min(config.batch_size, 8), False,
                          degradation=config.degradation)
               if dev_files else None)
        # Samples from one fixed dev pair, so they are comparable across steps.
        sample = next(iter(dev), None) if dev is not None else None
        # Only the chief writes logs, samples and exports (`common.distribute`).
        writer = tf.summary.create_file_writer(os.path.join(workdir, "tb")) if chief else tf.summary.create_noop_writer()
        recent: collections.deque = collections.deque(maxlen=HISTORY_KEEP)
        dev_metrics: dict = {}
        step = start
        t_last, step_last = time.perf_counter(), step
        with open(os.path.join(workdir, "history.jsonl") if chief else os.devnull, "a", encoding="utf-8") as hist:
            def record(entry: dict) -> None:
                hist.write(json.dumps(entry) + "\n")
                hist.flush()

            try:
                while step < config.steps:
                    lr, hr = next_batch(data, config.data_dir)
                    phase = phase_of(config, step)
                    m.set_learning_rate(learning_rate_at(config, step))
                    out = m.mse_step(lr, hr) if phase == 1 else m.gan_step(lr, hr)
                    values = {k: float(v) for k, v in out.items()}
                    check_finite(values, step + 1)
                    step += 1
                    recent.append({"step": step, "phase": phase, **values})
                    if step % config.log_every == 0 or step == config.steps:
                        now = time.perf_counter()
                        rate = (step - step_last) / max(now - t_last, 1e-9)
                        t_last, step_last = now, step
                        lr_now = learning_rate_at(config, step - 1)
                        logging.info("step %d phase %d %s lr=%.3g (%.2f steps/s)", step, phase,
                                     " ".join(f"{k}={v:.5f}" for k, v in values.items()), lr_now, rate)
                        record({"step": step, "phase": phase, **values, "lr": lr_now, "steps_per_s": rate})
                        write_scalars(writer, {f"train/{k}": v for k, v in values.items()}
                                      | {"train/lr": lr_now, "train/steps_per_s": rate}, step)
                    if dev is not None and (step % config.eval_every == 0 or step == config.steps):
                        dev_metrics = evaluate_dev(m.generator, dev)
                        logging.info("step %d dev %s", step, " ".join(f"{k}={v:.4f}" for k, v in dev_metrics.items()))
                        record({"step": step, "phase": phase, **{f"dev_{k}": v for k, v in dev_metrics.items()}})
                        write_scalars(writer, {f"dev/{k}": v for k, v in dev_metrics.items()}, step)
                    # Without a dev pair, the sample is the training batch: not when it is split across replicas.
                    if step % config.sample_every == 0 and chief and (
                            sample is not None or not isinstance(lr, tf.distribute.DistributedValues)):
                        strip = _sample_strip(m.generator, *(sample or (lr, hr)))
                        write_png(os.path.join(workdir, "samples", f"step_{step:08d}.png"), strip)
                        write_image(writer, "samples/bicubic_sr_hr", strip, step)
                    if step == config.init_steps:
                        # The PSNR-oriented SRResNet, kept before phase 2 changes it;
                        # written before the main checkpoint so a crash in
                        # between redoes this, not skips it.
                        mse_state.save(step)
                        if chief:
                            export_saved_model(m.generator, os.path.join(workdir, "export_mse"), _meta(config),
                                               overwrite=True, steps_trained=step, phase="mse")
                        state.save(step)
                    elif step % config.checkpoint_every == 0:
                        state.save(step)
            except KeyboardInterrupt:
                state.save(step)
                logging.info("interrupted: saved step %d in %s", step, state.latest)
                raise
        if state.latest is None or not state.latest.endswith(f"-{step}"):
            state.save(step)
        remove_scratch(strategy, ckpt_dir)
        if chief:
            export_saved_model(m.generator, os.path.join(workdir, "export"), _meta(config), overwrite=True,
                               steps_trained=step, phase="mse" if step <= config.init_steps else "gan")
        writer.flush()
        return TrainResult(step=step, history=list(recent), dev=dev_metrics)
    finally:
        keras.mixed_precision.set_global_policy(policy_before)


def load_generator_weights(generator: keras.Model, export_dir: str, settings: Optional[dict] = None) -> None:
    """Copies the weights of an exported SR SavedModel into `generator`.

    The SavedModel's `variables/` is a TensorFlow checkpoint of the serving
    module, whose `generator` attribute is the Keras model, so a generator
    built with the same settings restores from it object by object (no name
    or order guessing). Used to start phase 2 from a shipped SRResNet
    (`--init_generator`), as tensorlayer/srgan starts its GAN epochs from its
    initialised generator.

    Args:
        generator: from `build_generator` with the exported model's settings.
        export_dir: a folder written by `srgan.saved_model.export_saved_model`.
        settings: the generator's `num_blocks`, `filters`, `scale`, `arch`;
            compared with the export's config.json (a smaller generator would
            otherwise restore silently from part of a larger one).

    Raises:
        FileNotFoundError: no SavedModel variables there.
        ValueError: the export's settings or variables do not fit `generator`.
    """
    prefix = os.path.join(export_dir, "variables", "variables")
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(f"{export_dir}: no SavedModel variables (expected {prefix}.index)")
    meta_path = os.path.join(export_dir, "config.json")
    if os.path.isfile(meta_path):
        meta = load_config(meta_path)
        if meta.get("model", "srgan") != "srgan":
            raise ValueError(f"{export_dir} holds a {meta.get('model')!r} model, not an SR generator")
        diff = [f"{k} {meta[k]!r} (this run: {v!r})" for k, v in (settings or {}).items()
                if k in meta and meta[k] != v]
        if diff:
            raise ValueError(f"{export_dir}: its generator does not fit this one: {', '.join(diff)}")
    try:
        status = tf.train.Checkpoint(generator=generator).read(prefix)
        status.assert_existing_objects_matched().expect_partial()
    except (AssertionError, tf.errors.OpError, ValueError) as e:
        raise ValueError(f"{export_dir}: its generator does not fit this one (num_blocks, filters, scale "
                         f"and arch must match the export's config.json): {str(e)[:300]}") from e


def _checkpoint_step(prefix: str) -> int:
    return int(prefix.rsplit("-", 1)[-1])


def restore_generator(workdir: str, checkpoint: Optional[str] = None,
                      phase: str = "latest") -> tuple[keras.Model, SRGANConfig, int]:
    """Rebuilds the generator of a run from `workdir/config.json` and a checkpoint.

    Args:
        workdir: a `train` run folder.
        checkpoint: an explicit checkpoint prefix (overrides `phase`).
        phase: `latest` (the newest checkpoint), `mse` (the generator at the
            end of phase 1, or the newest checkpoint while phase 1 is still
            running) or `gan` (the newest checkpoint, which must be past phase 1).

    Returns:
        (generator, config, step) with the generator in float32.

    Raises:
        FileNotFoundError: no config.json or no suitable checkpoint.
        ValueError: unknown phase, `gan` asked of a run still in phase 1, or a
            checkpoint that does not fit the generator config.json describes.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose from {PHASES}")
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no config.json; is {workdir} a srgan.train workdir?")
    config = SRGANConfig(**load_config(path))
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))
    ckpt = checkpoint
    if ckpt is None and phase == "mse":
        ckpt = tf.train.latest_checkpoint(os.path.join(workdir, "ckpt_mse"))
        if ckpt is None and latest and _checkpoint_step(latest) <= config.init_steps:
            logging.warning("phase 1 not finished (step %d of %d): using its latest checkpoint",
                            _checkpoint_step(latest), config.init_steps)
            ckpt = latest
        if ckpt is None:
            raise FileNotFoundError(f"no phase-1 (MSE) generator in {workdir}/ckpt_mse (init_steps "
                                    f"{config.init_steps})")
    ckpt = ckpt or latest
    if not ckpt:
        raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'ckpt')}")
    generator = build_generator(config.num_blocks, config.filters, config.scale, config.arch)
    step = tf.Variable(0, dtype=tf.int64)
    try:
        status = tf.train.Checkpoint(generator=generator, step=step).restore(ckpt)
        status.assert_existing_objects_matched().expect_partial()
    except (AssertionError, tf.errors.OpError) as e:
        raise ValueError(f"{ckpt}: cannot restore this run's generator from it "
                         f"(config.json and checkpoint disagree?): {str(e)[:500]}") from e
    step = int(step.numpy())
    if phase == "gan" and checkpoint is None and step <= config.init_steps:
        raise ValueError(f"the latest checkpoint (step {step}) is not past phase 1 (init_steps "
                         f"{config.init_steps}): train longer or export with phase 'mse'")
    return generator, config, step
