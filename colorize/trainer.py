"""Training the colouriser (paper sec. 4.1 / 5.1) as library code.

`python -m colorize.train` turns flags into a `ColorizeConfig` and calls
`train(config, workdir)`; tests call `train` directly. Nothing here reads flags.

What a run leaves in `workdir`:

    config.json        the resolved config (rewritten on each start)
    ckpt/              full state (model incl. BN statistics, Adam slots and
                       iteration count, step), every `checkpoint_every` steps,
                       at the end, and on Ctrl-C; a restart resumes from it
    ckpt_best/         the weights with the lowest dev loss so far (the paper
                       saw overfitting after ~30k iterations)
    samples/           grey | prediction | truth sheets every `sample_every`
    tensorboard/       scalars (train loss, steps/s, dev metrics) and the sheets
    export/            the SavedModel written at the end (see colorize.saved_model)
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from colorize.config import ColorizeConfig, check_resume_config, make_optimizer, use_config_learning_rate, validate
from colorize.losses import colorize_loss, uv_mse
from colorize.model import architecture, build_colorizer, compose_rgb
from colorize.sample import sample_sheet
from colorize.saved_model import export_colorizer
from common.summaries import write_image, write_scalars
from common.training import TrainState, check_finite, next_batch, read_best, save_config, set_seed, write_best
from common.distribute import (check_batch, checkpoint_dir, distribute_dataset, distributed_step,
                               is_chief, make_strategy, remove_scratch, replica_loss, replicas,
                               synchronize_batch_norm)
from data.colour import UV_OFFSET, yuv_to_rgb
from data.datasets import colorize_dataset, split_files
from data.writers import write_png


@dataclasses.dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        start_step: the step restored from `workdir/ckpt` (0 for a fresh run).
        step: the step reached.
        losses: (step, training loss) of every step run in this call.
        dev: the last dev metrics (empty when there is no dev split).
        model, optimizer: the trained objects.
        exported: SavedModel folders written.
    """

    start_step: int
    step: int
    losses: list
    dev: dict
    model: object
    optimizer: object
    exported: list


def _dev_files(config: ColorizeConfig) -> list:
    try:
        files = split_files(config.data_dir, "dev")
    except ValueError as e:
        logging.warning("no dev evaluation: %s", e)
        return []
    return files[: config.eval_images] if config.eval_images > 0 else files


def train(config: ColorizeConfig, workdir: str) -> TrainResult:
    """Trains (or resumes training) the colouriser.

    Args:
        config: the run's settings.
        workdir: folder for checkpoints, samples, logs and the export.

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: bad settings or no training images.
        common.training.NonFiniteLossError: the loss became NaN/inf (the last
            good checkpoint is kept).
    """
    validate(config)
    if config.loss != "blurred_mse" or config.brightness_jitter or config.contrast_jitter:
        raise ValueError("--loss classification and the brightness/contrast jitter are the portable trainer's "
                         "(colorize.train --portable); this trainer has the paper's blurred MSE")
    if os.path.isdir(os.path.join(workdir, "state")):
        raise ValueError(f"{workdir} holds a --portable run (state/); continue it with --portable, or use a new --workdir")
    strategy = make_strategy(config.strategy)
    check_batch(strategy, config.batch_size)
    chief = is_chief(strategy)
    os.makedirs(workdir, exist_ok=True)
    set_seed(config.seed)
    train_files = split_files(config.data_dir, "train")
    dev_files = _dev_files(config) if chief else []
    ckpt_dir = os.path.join(workdir, "ckpt")
    resuming = tf.train.latest_checkpoint(ckpt_dir) is not None
    if resuming:
        check_resume_config(workdir, config)
    if chief:
        save_config(config, workdir)
    if replicas(strategy) > 1:
        logging.info("%s strategy: %d replicas, %d images each per step", config.strategy, replicas(strategy),
                     config.batch_size // replicas(strategy))

    with strategy.scope():
        # A resumed run gets every weight from the checkpoint; do not fetch ImageNet again.
        model = build_colorizer(None if resuming else config.backbone_weights,
                                **architecture(dataclasses.asdict(config)))
        if config.strategy != "default":
            synchronize_batch_norm(model)
        optimizer = make_optimizer(config)
        optimizer.build(model.trainable_variables)
    if (config.backbone == "vgg16" and config.backbone_weights in (None, "none") and config.freeze_backbone
            and not resuming):
        logging.warning("the backbone is random AND frozen: only the decoder learns (fine for tests, not for results)")
    state = TrainState(checkpoint_dir(strategy, ckpt_dir), max_to_keep=config.max_to_keep, restore_from=ckpt_dir,
                       model=model, optimizer=optimizer)
    start = state.restore()
    use_config_learning_rate(optimizer, config)
    best = (TrainState(os.path.join(workdir, "ckpt_best"), max_to_keep=1, model=model)
            if config.keep_best and chief else None)
    best_record = read_best(os.path.join(workdir, "ckpt_best"))
    best_loss = best_record["dev_loss"] if best_record else float("inf")
    if resuming:
        logging.info("resumed from %s at step %d (optimizer iterations %d)", state.latest, start, int(optimizer.iterations.numpy()))

    loss_weight = float(config.low_saturation_weight)

    def replica_step(y, uv):
        with tf.GradientTape() as tape:
            pred = model(y, training=True)
            loss = colorize_loss(uv, pred, loss_weight)
            scaled = replica_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return {"loss": loss}

    train_step = distributed_step(strategy, replica_step)

    @tf.function(reduce_retracing=True)
    def eval_step(y, uv):
        pred = model(y, training=False)
        rgb_true = tf.clip_by_value(yuv_to_rgb(tf.concat([y, uv], -1)), 0.0, 1.0)
        return {
            "loss": colorize_loss(uv, pred),
            "uv_mse": uv_mse(uv, pred),
            "rgb_mse": tf.reduce_mean(tf.square(compose_rgb(y, pred) - rgb_true)),
            # Predicting grey everywhere: what a washed-out model would score.
            "grey_baseline_loss": colorize_loss(uv, tf.fill(tf.shape(uv), UV_OFFSET)),
        }, pred

    dev_ds = colorize_dataset(dev_files, config.size, config.batch_size, training=False) if dev_files else None
    sample_files = (dev_files or train_files)[: config.num_samples]
    # None when none of the sample files decodes: no sample sheets then.
    sample_batch = next(iter(colorize_dataset(sample_files, config.size, len(sample_files), training=False)), None)
    writer = (tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
              if config.tensorboard and chief else None)

    def evaluate(step: int) -> dict:
        totals, count = {}, 0
        for y, uv in dev_ds:
            metrics, _ = eval_step(y, uv)
            n = int(y.shape[0])
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + float(v) * n
            count += n
        result = {k: v / count for k, v in totals.items()}
        result["rgb_psnr"] = 10.0 * math.log10(1.0 / max(result["rgb_mse"], 1e-12))
        logging.info("step %d dev: %s", step, " ".join(f"{k}={v:.5g}" for k, v in sorted(result.items())))
        write_scalars(writer, {f"dev/{k}": v for k, v in result.items()}, step)
        return result

    def save_samples(step: int) -> None:
        if sample_batch is None or not chief:
            return
        y, uv = sample_batch
        _, pred = eval_step(y, uv)
        sheet = sample_sheet(
            y.numpy(),
            compose_rgb(y, pred).numpy(),
            np.clip(yuv_to_rgb(tf.concat([y, uv], -1)).numpy(), 0.0, 1.0),
        )
        write_png(os.path.join(workdir, "samples", f"step_{step:07d}.png"), sheet)
        write_image(writer, "samples/grey_pred_truth", sheet, step)

    losses, dev = [], {}
    step = start
    if start < config.iterations:
        ds = distribute_dataset(strategy, colorize_dataset(train_files, config.size, config.batch_size,
                                                           training=True, seed=config.seed + start))
        show = sys.stderr.isatty() if config.progress is None else config.progress
        bar = tqdm(total=config.iterations, initial=start, unit="it", desc="colorize", disable=not (show and chief))
        window, window_time, timed = [], 0.0, 0
        it = iter(ds)
        try:
            while step < config.iterations:
                t0 = time.perf_counter()
                y, uv = next_batch(it, config.data_dir)
                loss = float(train_step(y, uv)["loss"])
                if step > start:  # the first step includes tracing; not a speed
                    window_time += time.perf_counter() - t0
                    timed += 1
                step += 1
                check_finite({"colorize": loss}, step)
                losses.append((step, loss))
                window.append(loss)
                bar.update(1)
                if step % config.log_every == 0 or step == config.iterations:
                    rate = timed / window_time if timed else float("nan")
                    logging.info("step %d loss %.6f (%.2f steps/s)", step, np.mean(window), rate)
                    bar.set_postfix(loss=f"{np.mean(window):.4g}")
                    scalars = {"train/loss": float(np.mean(window))}
                    if timed:
                        scalars["train/steps_per_sec"] = rate
                    write_scalars(writer, scalars, step)
                    window, window_time, timed = [], 0.0, 0
                if dev_ds is not None and (step % config.eval_every == 0 or step == config.iterations):
                    dev = evaluate(step)
                    if best is not None and dev["loss"] < best_loss:
                        best_loss = dev["loss"]
                        best.save(step)
                        write_best(os.path.join(workdir, "ckpt_best"), step, best_loss)
                if step % config.sample_every == 0 or step == config.iterations:
                    save_samples(step)
                if step % config.checkpoint_every == 0 and step < config.iterations:
                    state.save(step)
        except KeyboardInterrupt:
            # Keep what was done; a restart continues from here.
            if step > start:
                logging.warning("interrupted at step %d; saving a checkpoint", step)
                state.save(step)
            raise
        finally:
            bar.close()
            if writer is not None:
                writer.flush()
        state.save(step)
    else:
        logging.info("nothing to do: the checkpoint is at step %d >= iterations %d", start, config.iterations)

    remove_scratch(strategy, ckpt_dir)
    exported = []
    if config.export and chief:
        meta = dataclasses.asdict(config)
        targets = [os.path.join(workdir, "export")] + ([config.export_dir] if config.export_dir else [])
        for target in targets:
            exported.append(export_colorizer(model, target, meta, steps_trained=step, trained=step > 0, overwrite=True))
            logging.info("exported the colouriser to %s", target)
    return TrainResult(start_step=start, step=step, losses=losses, dev=dev, model=model, optimizer=optimizer, exported=exported)


__all__ = ["ColorizeConfig", "TrainResult", "train", "validate", "make_optimizer"]  # config: colorize.config
