"""SRGAN training as library code (`srgan.train` is its command line), with Keras `model.fit` on any backend.

Two phases over one global step counter (paper sec. 4.2 / 5.1, after
tensorlayer/srgan's "init" epochs), one `fit` each (`srgan.fit.SRGANFit`):

1. steps [0, init_steps): the generator alone on pixel MSE (SRResNet). At the
   end of phase 1 its weights are kept in `workdir/ckpt_mse/` and, under the
   TensorFlow backend, exported to `workdir/export_mse` (the PSNR-oriented model).
2. steps [init_steps, steps): adversarial training, D then G each step (k=1);
   G minimises content (VGG19 features) + 1e-3 x adversarial (+ pixel MSE
   weight); the learning rate drops x`decay_factor` every `decay_every`
   phase-2 steps.

Everything needed to continue (both networks, the three optimisers, the step)
is in `workdir/state/` (`common.state`); a restart resumes at the saved step,
in the phase that step implies, and never redoes phase 1 (a known
tensorlayer/srgan complaint). Under the TensorFlow backend `--strategy`
builds the networks in a `tf.distribute` scope and only the chief writes
files; with `KERAS_BACKEND=jax` it trains on one device without TensorFlow
(no TensorBoard, no SSIM in the dev metrics, no export: `srgan.export
--workdir` writes it where TensorFlow is).

Workdir layout: `config.json`, `state/`, `weights/step_NNNNNNN.weights.h5` (the
generator at the last 3 saves), `ckpt_mse/` (generator.weights.h5, step.json),
`history.jsonl` (one JSON line per logged step and per dev evaluation),
`samples/step_*.png` (bicubic | SR | HR), `tb/` (TensorBoard), `export_mse/`,
`export/`.

The settings and their checks are `srgan.config`; restoring a run's generator
is `srgan.restore`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from typing import Optional

import keras
import numpy as np
from absl import logging
from keras import ops

from common.callbacks import Checkpoints, Evaluation, Samples, StepLog, Summaries
from common.files import atomic_write_bytes
from common.state import check_workdir, restore_state, state_path
from common.training import fit_strategy, load_config, load_training_images, save_config, set_seed
from data.examples import load_images
from data.splits import split_files
from data.sr_examples import central_hr_crops, consistent, degrade, random_hr_crops
from srgan.config import MODEL_FIELDS, MSE_DIR, SRGANConfig, phase_of, validate
from srgan.fit import SRGANFit
from srgan.model import sr_output

#: Per-step loss records kept in memory for `TrainResult` (history.jsonl has the logged ones).
HISTORY_KEEP = 10_000


@dataclasses.dataclass
class TrainResult:
    """What one `train` call did: the final step, the last (up to
    `HISTORY_KEEP`) per-step loss records `{"step", "phase", losses...}` of this call, the last dev metrics."""

    step: int
    history: list
    dev: dict


def _check_resumable(config: SRGANConfig, workdir: str) -> None:
    """Refuses to resume a state with settings its variables do not fit."""
    path = os.path.join(workdir, "config.json")
    if not (os.path.isfile(path) and state_path(workdir)):
        return
    saved = load_config(path)
    diff = [f"{k}: {saved.get(k)!r} -> {getattr(config, k)!r}" for k in MODEL_FIELDS
            if k in saved and saved[k] != getattr(config, k)]
    if diff:
        raise ValueError(f"{workdir} holds a run whose checkpoint needs other settings ({'; '.join(diff)}); "
                         "resume with the saved settings or use another workdir")


class _Batches(keras.utils.PyDataset):
    """Training batches `(hr crops, block flags)` for steps `start..stop-1`, each drawn from (seed, step)."""

    def __init__(self, images: np.ndarray, sizes: np.ndarray, config: SRGANConfig, start: int, stop: int):
        super().__init__(workers=1)  # gathered in the main thread (cheap NumPy slicing)
        self.images, self.sizes, self.config, self.start, self.stop = images, sizes, config, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int):
        c = self.config
        rng = np.random.default_rng([c.seed, self.start + i])
        return random_hr_crops(rng, self.images, self.sizes, c.batch_size, c.hr_size, c.degradation)


def _bicubic_up(lr, size: int):
    return ops.clip(ops.image.resize(lr, (size, size), interpolation="bicubic"), 0.0, 1.0)


def _sr(generator: keras.Model, lr, block, scale: int, block_linear: bool, consistency: bool) -> np.ndarray:
    sr = sr_output(generator(lr, training=False))
    return ops.convert_to_numpy(consistent(sr, lr, block, scale, block_linear) if consistency else sr)


def evaluate_dev(generator: keras.Model, hr: np.ndarray, block: np.ndarray, scale: int, batch: int = 8,
                 block_linear: bool = False, consistency: bool = False) -> dict:
    """Dev PSNR/SSIM ([0, 1] scale, dB) of the generator and PSNR of bicubic, per-image means.

    Batch norm in inference mode (paper 5.1); SR clipped to [0, 1] like the
    export. SSIM (`common.metrics`, TensorFlow's) is left out where TensorFlow
    is not installed. `block_linear` as in `data.sr_examples.degrade`;
    `consistency`: the SR after the pipeline's consistency step
    (`data.sr_examples.consistent`), what a user gets by default.
    """
    import importlib.util

    from common.metrics import psnr, ssim

    with_ssim = importlib.util.find_spec("tensorflow") is not None
    sums, n = {}, 0
    for s in range(0, len(hr), batch):
        h = hr[s:s + batch]
        lr = degrade(h, block[s:s + batch], scale, block_linear)
        sr = _sr(generator, lr, block[s:s + batch], scale, block_linear, consistency)
        bic = ops.convert_to_numpy(_bicubic_up(lr, h.shape[1]))
        values = {"psnr": psnr(h, sr), "psnr_bicubic": psnr(h, bic)}
        if with_ssim:
            values["ssim"] = ssim(h, sr)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(np.asarray(v)) * len(h)
        n += len(h)
    return {k: v / max(n, 1) for k, v in sums.items()}


def _sample_strip(generator: keras.Model, hr: np.ndarray, block: np.ndarray, scale: int,
                  block_linear: bool = False, consistency: bool = False) -> np.ndarray:
    """One pair as one `[H, 3W, 3]` image in [0, 1]: bicubic | SR | HR."""
    lr = degrade(hr[:1], block[:1], scale, block_linear)
    sr = _sr(generator, lr, block[:1], scale, block_linear, consistency)[0]
    bic = ops.convert_to_numpy(_bicubic_up(lr, hr.shape[1]))[0]
    return np.concatenate([bic, sr, hr[0]], axis=1)


def _meta(config: SRGANConfig) -> dict:
    return dataclasses.asdict(config) | {"trained": True}


def _export(generator: keras.Model, config: SRGANConfig, folder: str, step: int, phase: str) -> None:
    if keras.backend.backend() != "tensorflow":
        logging.info("the SavedModel needs TensorFlow: run python -m srgan.export --workdir on this run")
        return
    from srgan.saved_model import export_saved_model

    export_saved_model(generator, folder, _meta(config), overwrite=True, steps_trained=step, phase=phase)


def _check_backend(config: SRGANConfig) -> None:
    if keras.backend.backend() not in ("tensorflow", "jax"):
        raise ValueError(f"the SRGAN trains under the TensorFlow or JAX backend, not {keras.backend.backend()}")
    if keras.backend.backend() != "tensorflow":
        if config.mixed_precision != "none":
            raise ValueError("--mixed_precision is for the TensorFlow backend")
        if config.init_generator:
            raise ValueError("--init_generator reads a SavedModel: it needs the TensorFlow backend")


def train(config: SRGANConfig, workdir: str) -> TrainResult:
    """Trains (or resumes) in `workdir`; exports to `workdir/export` at the end (TensorFlow backend).

    Raises:
        ValueError: bad settings, no training images, an old-layout workdir,
            or one whose state needs other model settings.
        common.training.NonFiniteLossError: a loss became NaN/inf (names the
            step); the last good state is kept.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after saving the state at the current step.
    """
    validate(config)
    _check_backend(config)
    check_workdir(workdir)
    strategy, chief = fit_strategy(config.strategy, config.batch_size)
    os.makedirs(workdir, exist_ok=True)
    _check_resumable(config, workdir)
    policy_before = keras.mixed_precision.global_policy().name
    if config.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        return _train(config, workdir, strategy, chief)
    finally:
        keras.mixed_precision.set_global_policy(policy_before)


def _dev_pairs(config: SRGANConfig, images: np.ndarray, sizes: np.ndarray) -> tuple[Optional[tuple], tuple]:
    """(dev (hr, block) or None, the sample pair): samples from one fixed dev pair, comparable across steps."""
    try:
        files = split_files(config.data_dir, "dev")[: config.eval_images]
        dev = central_hr_crops(*load_images(files), config.hr_size, config.degradation, config.seed)
    except ValueError:
        logging.warning("no dev images in %s/dev: no PSNR/SSIM during training", config.data_dir)
        dev = None
    sample = dev if dev is not None else central_hr_crops(images[:1], sizes[:1], config.hr_size,
                                                          config.degradation, config.seed)
    return dev, sample


def _train(config: SRGANConfig, workdir: str, strategy, chief: bool) -> TrainResult:
    set_seed(config.seed)
    images, sizes = load_training_images(config.data_dir)
    dev, sample = _dev_pairs(config, images, sizes) if chief else (None, None)
    resume = state_path(workdir)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        m = SRGANFit(config)
        if config.strategy != "default":
            from common.distribute import synchronize_batch_norm

            synchronize_batch_norm(m.generator)
            synchronize_batch_norm(m.discriminator)
        models, optimizers = m.state()
        start = restore_state(resume, models, optimizers) if resume else 0
        m.compile_for_fit(config.jit_compile if keras.backend.backend() == "tensorflow" else "auto")
    if not start and config.init_generator:
        from srgan.restore import load_generator_weights

        load_generator_weights(m.generator, config.init_generator,
                               {k: getattr(config, k) for k in ("num_blocks", "filters", "scale", "arch")})
        logging.info("generator initialised from %s", config.init_generator)
    if chief:
        save_config(config, workdir)
    if start:
        logging.info("resumed from %s at step %d (phase %d)", resume, start, phase_of(config, start))
    summaries = Summaries(os.path.join(workdir, "tb") if chief else None)
    history: list = []
    dev_metrics: dict = {}
    step = start
    with open(os.path.join(workdir, "history.jsonl") if chief else os.devnull, "a", encoding="utf-8") as hist:
        def record(entry: dict) -> None:
            hist.write(json.dumps(entry) + "\n")
            hist.flush()

        def at_boundary(at: int) -> None:
            # The PSNR-oriented SRResNet, kept before phase 2 changes it; written before the state
            # says phase 1 is done, so a crash in between redoes this, not skips it.
            if at == config.init_steps and chief:
                folder = os.path.join(workdir, MSE_DIR)
                os.makedirs(folder, exist_ok=True)
                m.generator.save_weights(os.path.join(folder, "generator.tmp.weights.h5"))
                os.replace(os.path.join(folder, "generator.tmp.weights.h5"),
                           os.path.join(folder, "generator.weights.h5"))
                atomic_write_bytes(os.path.join(folder, "step.json"), json.dumps({"step": at}).encode("utf-8"))
                _export(m.generator, config, os.path.join(workdir, "export_mse"), at, "mse")

        for phase, stop in ((1, config.init_steps), (2, config.steps)):
            if step >= stop:
                continue
            m.set_phase(phase)
            log = StepLog(step, stop, config.log_every, "srgan", summaries=summaries, record=record,
                          extra=lambda s: {"phase": phase_of(config, s - 1), "lr": m.learning_rate_at(s - 1)},
                          keep=HISTORY_KEEP)
            # The generator of the last 3 saves also in weights/, as the tf checkpoints of old were kept.
            checkpoints = Checkpoints(workdir, step, stop, config.checkpoint_every, models, optimizers,
                                      snapshot="generator", max_to_keep=3, chief=chief, before_save=at_boundary)
            callbacks = [log, checkpoints]
            evaluation = None
            if dev is not None:
                evaluation = Evaluation(step, config.steps, config.eval_every,
                                        lambda: evaluate_dev(m.generator, *dev, config.scale,
                                                             block_linear=config.block_linear,
                                                             consistency=config.train_consistency), summaries, record)
                callbacks.append(evaluation)
            if chief:
                callbacks.append(Samples(step, stop, config.sample_every,
                                         lambda: _sample_strip(m.generator, *sample, config.scale, config.block_linear,
                                                               config.train_consistency),
                                         os.path.join(workdir, "samples"), "samples/bicubic_sr_hr", summaries,
                                         at_end=False, digits=8))
            try:
                m.fit(_Batches(images, sizes, config, step, stop), epochs=1, verbose=0, callbacks=callbacks,
                      shuffle=False)
            except KeyboardInterrupt:
                if log.step > step:
                    checkpoints.save(log.step)
                    logging.info("interrupted: saved step %d", log.step)
                raise
            finally:
                log.close()
                summaries.flush()
                history = (history + [{"step": s, "phase": phase, **v} for s, v in log.history])[-HISTORY_KEEP:]
            checkpoints.raise_if_signalled()
            step = log.step
            dev_metrics = evaluation.last if evaluation is not None and evaluation.last else dev_metrics
    if chief:
        _export(m.generator, config, os.path.join(workdir, "export"), step,
                "mse" if step <= config.init_steps else "gan")
    return TrainResult(step=step, history=history, dev=dev_metrics)
