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

The settings and their checks are `srgan.config`; restoring a run's generator
is `srgan.restore`.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from common.distribute import (check_batch, checkpoint_dir, distribute_dataset, is_chief, make_strategy,
                               remove_scratch)
from common.metrics import psnr, ssim
from common.training import TrainState, check_finite, load_config, next_batch, save_config, set_seed
from srgan.config import MODEL_FIELDS, SRGANConfig, learning_rate_at, phase_of, validate
from srgan.restore import load_generator_weights
from srgan.saved_model import export_saved_model, sr_output
from srgan.steps import SRGANModels

#: Per-step loss records kept in memory for `TrainResult` (history.jsonl has the logged ones).
HISTORY_KEEP = 10_000


@dataclasses.dataclass
class TrainResult:
    """What one `train` call did: the final step, the last (up to
    `HISTORY_KEEP`) per-step loss records of this call, the last dev metrics."""

    step: int
    history: list
    dev: dict


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
    sums = {"psnr": 0.0, "ssim": 0.0, "psnr_bicubic": 0.0}
    n = 0
    for lr, hr in dataset:
        sr = sr_output(generator(lr, training=False))
        bic = tf.clip_by_value(tf.image.resize(lr, tf.shape(hr)[1:3], "bicubic"), 0.0, 1.0)
        b = int(lr.shape[0])
        sums["psnr"] += float(psnr(hr, sr)) * b
        sums["ssim"] += float(ssim(hr, sr)) * b
        sums["psnr_bicubic"] += float(psnr(hr, bic)) * b
        n += b
    return {k: v / max(n, 1) for k, v in sums.items()}


def _sample_strip(generator: keras.Model, lr, hr) -> np.ndarray:
    """First pair of a batch as one `[H, 3W, 3]` image in [0, 1]: bicubic | SR | HR."""
    sr = sr_output(generator(lr[:1], training=False)).numpy()[0]
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
    from data.writers import write_png

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
