"""Training the colouriser (paper sec. 4.1 / 5.1) with Keras `model.fit`, on any Keras backend.

`python -m colorize.train` turns flags into a `ColorizeConfig` and calls
`train(config, workdir)`; tests call `train` directly. Nothing here reads
flags, and nothing imports TensorFlow at import time: with `KERAS_BACKEND=jax`
it trains on a GPU machine that has JAX but no TensorFlow.

Under the TensorFlow backend `--strategy mirrored|multi_worker` builds and
compiles the model in a `tf.distribute` strategy's scope (Keras' fit splits
each global batch across replicas and scales the loss; batch norm is
synchronised, `common.distribute.synchronize_batch_norm`), so the replicas
together take the step one device takes with the whole batch. Only the chief
writes files. Other backends train on one device.

The examples are made with Keras ops inside the training model
(`data.examples`): a random square crop of 50-100 % of the shorter side, in
one of the 8 flips/rotations, resized to `size` with antialiased bilinear
(equal to `tf.image.resize(..., antialias=True)` to float rounding, tested)
and split into Y and UV; dev images are resized whole. The host only gathers
images; the random stream is NumPy's, seeded by (seed, step), so a resumed run
continues the same stream.
`--brightness_jitter` / `--contrast_jitter` add hue-keeping stretches.

`--loss classification` (Zhang et al. 2016, `colorize.chroma`): the bins are
those the training pixels fall in (found once at the start, saved in
config.json as `chroma_bins`), the rebalancing weights come from the same
count, and the dev `uv_mse` is the annealed mean's at the config's temperature.

What a run leaves in `workdir` (the callbacks of `common.callbacks`):

    config.json        the resolved config (rewritten on each start)
    state/             model weights (BN statistics included), Adam's variables
                       and the step, every `checkpoint_every` steps, at the end,
                       and on Ctrl-C/SIGTERM; a restart resumes from it
    weights/step_NNNNNNN.weights.h5   the model at each checkpoint (newest `max_to_keep`)
    best/              the weights with the lowest dev loss so far (+ best.json;
                       the paper saw overfitting after ~30k iterations)
    samples/           grey | prediction | truth sheets every `sample_every`
    tensorboard/       scalars (train loss, steps/s, dev metrics) and the sheets
                       (when TensorFlow is installed)
    export/            the SavedModel written at the end under the TensorFlow
                       backend (colorize.saved_model); otherwise
                       `python -m colorize.export --workdir RUN` writes it
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from typing import Optional

import keras
import numpy as np
from absl import logging
from keras import ops

from colorize.chroma import ChromaHead, counts_in, data_bins
from colorize.config import ColorizeConfig, check_resume_config, make_optimizer, use_config_learning_rate, validate
from colorize.losses import colorize_loss, uv_mse
from colorize.model import architecture, build_colorizer
from colorize.sample import sample_sheet
from common.callbacks import Checkpoints, Evaluation, Prebuilt, Samples, StepLog, Summaries
from common.state import BEST_DIR, check_workdir, restore_state, state_path
from common.training import fit_strategy, load_training_images, read_best, save_config, set_seed
from data.colour import UV_OFFSET, compose_rgb, y_uv_to_rgb
from data.examples import N_CROP_PARAMS, load_images, make_examples, random_crops, whole_images
from data.splits import split_files

#: The state's file stems (`common.callbacks.save_state`).
MODEL, OPTIMIZER = "model", "optimizer"


@dataclasses.dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        start_step: the step restored from `workdir/state` (0 for a fresh run).
        step: the step reached.
        losses: (step, training loss) of every step run in this call.
        dev: the last dev metrics (empty when there is no dev split).
        model, optimizer: the trained colouriser and its Adam.
        exported: SavedModel folders written.
    """

    start_step: int
    step: int
    losses: list
    dev: dict
    model: keras.Model
    optimizer: object
    exported: list


class _Examples(keras.layers.Layer):
    """`make_examples` as a layer (no weights), so a functional model can hold it."""

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, images, params):
        return make_examples(images, params, self.size)

    def compute_output_spec(self, images, params):
        b = images.shape[0]
        return (keras.KerasTensor((b, self.size, self.size, 1)), keras.KerasTensor((b, self.size, self.size, 2)))


def _training_model(colorizer: keras.Model, image_shape: tuple, size: int) -> keras.Model:
    """(images, crop params) -> `[B, size, size, 4]`: the true UV, then the predicted UV.

    Making the examples inside the model keeps the resize on the accelerator
    and lets plain `model.fit` (any backend, any strategy) train the colouriser.
    """
    images = keras.Input(image_shape, dtype="float16", name="images")
    params = keras.Input((N_CROP_PARAMS,), name="crop")
    y, uv = _Examples(size, name="examples")(images, params)
    return _FitModel([images, params], ops.concatenate([uv, colorizer(y)], axis=-1), name="colorize_fit")


class _FitModel(Prebuilt, keras.Model):
    """The functional training model, built before fit (`common.callbacks.Prebuilt`); Keras' own train step."""

    def train_step(self, *args):
        if keras.backend.backend() == "jax":
            logs, state = super().train_step(*args)
            return self.one_value_each(logs), state
        return self.one_value_each(super().train_step(*args))


class _Batches(keras.utils.PyDataset):
    """Training batches `((images, crops), unused target)` for steps `start..iterations-1`.

    Each step's draw depends only on (seed, step), so a resumed run continues the same stream.
    """

    def __init__(self, images: np.ndarray, sizes: np.ndarray, config: ColorizeConfig, start: int):
        # One worker: batches are gathered in the main thread (cheap NumPy indexing).
        super().__init__(workers=1)
        self.images, self.sizes, self.config, self.start = images, sizes, config, start

    def __len__(self) -> int:
        return self.config.iterations - self.start

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.config.seed, self.start + i])
        idx = rng.integers(0, len(self.images), self.config.batch_size)
        crops = random_crops(rng, self.sizes[idx], self.config.brightness_jitter, self.config.contrast_jitter)
        return (self.images[idx], crops), np.zeros((len(idx), 1, 1, 1), np.float32)


def _chroma(colorizer: keras.Model, y, head: Optional[ChromaHead]):
    out = colorizer(y, training=False)
    return out, (head.decode(out) if head is not None else out)


def evaluate(colorizer: keras.Model, images: np.ndarray, sizes: np.ndarray, size: int,
             batch_size: int, head: Optional[ChromaHead] = None) -> dict:
    """Dev metrics of the whole images resized to `size` (batch norm in inference mode).

    Args:
        head: a classification run's bins: `loss` is then its class-rebalanced
            cross-entropy, and `uv_mse` that of the annealed mean.

    Returns:
        Means over images of `loss`, `uv_mse`, `rgb_mse` (of the composed RGB,
        which keeps the grey input's luma, against the true RGB), `rgb_psnr`
        (dB, from `rgb_mse`, peak 1), `grey_baseline_loss` and `grey_uv_mse`
        (predicting grey everywhere: what a washed-out model scores; the
        blurred MSE and the plain UV MSE).
    """
    names = ("loss", "uv_mse", "rgb_mse", "grey_baseline_loss", "grey_uv_mse")
    totals, count = dict.fromkeys(names, 0.0), 0
    for s in range(0, len(images), batch_size):
        y, uv = make_examples(images[s:s + batch_size], whole_images(sizes[s:s + batch_size]), size)
        out, pred = _chroma(colorizer, y, head)
        grey = ops.full(ops.shape(uv), UV_OFFSET)
        values = {
            "loss": head.loss(uv, out) if head is not None else colorize_loss(uv, pred),
            "uv_mse": uv_mse(uv, pred),
            "rgb_mse": ops.mean(ops.square(compose_rgb(y, pred) - y_uv_to_rgb(y, uv))),
            "grey_baseline_loss": colorize_loss(uv, grey),
            "grey_uv_mse": uv_mse(uv, grey),
        }
        n = int(y.shape[0])
        for k, v in values.items():
            totals[k] += float(ops.convert_to_numpy(v)) * n
        count += n
    result = {k: v / count for k, v in totals.items()}
    result["rgb_psnr"] = 10.0 * math.log10(1.0 / max(result["rgb_mse"], 1e-12))
    return result


def _sheet(colorizer: keras.Model, images: np.ndarray, sizes: np.ndarray, size: int,
           head: Optional[ChromaHead]) -> np.ndarray:
    """grey | prediction | truth rows of the sample images (`colorize.sample.sample_sheet`)."""
    y, uv = make_examples(images, whole_images(sizes), size)
    _, pred = _chroma(colorizer, y, head)
    return sample_sheet(*(ops.convert_to_numpy(a) for a in (y, compose_rgb(y, pred), y_uv_to_rgb(y, uv))))


def _fit_loss(config: ColorizeConfig, head: Optional[ChromaHead]):
    """The compiled loss `(unused, [B, S, S, 4] true | predicted UV) -> [B]`.

    The batch mean, given to every example: Keras scales a loss for
    tf.distribute (divides it by the replica count, so the gradients summed
    over replicas are the global batch mean's) only when it reduces per-example
    values; a scalar would pass unscaled.
    """
    weight = float(config.low_saturation_weight)

    def loss(_, out):
        uv, pred = out[..., :2], out[..., 2:]
        mean = head.loss(uv, pred) if head is not None else colorize_loss(uv, pred, weight)
        return ops.broadcast_to(mean, (ops.shape(out)[0],))

    return loss


def _export(colorizer: keras.Model, config: ColorizeConfig, workdir: str, step: int) -> list:
    if keras.backend.backend() != "tensorflow":
        logging.info("the SavedModel needs TensorFlow: run python -m colorize.export --workdir %s", workdir)
        return []
    from colorize.saved_model import export_colorizer

    exported = []
    for target in [os.path.join(workdir, "export")] + ([config.export_dir] if config.export_dir else []):
        exported.append(export_colorizer(colorizer, target, dataclasses.asdict(config), steps_trained=step,
                                         trained=step > 0, overwrite=True))
        logging.info("exported the colouriser to %s", target)
    return exported


def train(config: ColorizeConfig, workdir: str) -> TrainResult:
    """Trains (or resumes training) the colouriser with `model.fit` on the active Keras backend.

    Args:
        config: the run's settings.
        workdir: folder for the state, weights, samples, logs and the export (module doc).

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: bad settings, no training images, a strategy other than
            'default' off the TensorFlow backend, or an old-layout workdir.
        common.training.NonFiniteLossError: the loss became NaN/inf (the last
            good state is kept).
        KeyboardInterrupt: Ctrl-C or SIGTERM, after saving the state at the current step.
    """
    validate(config)
    check_workdir(workdir)
    strategy, chief = fit_strategy(config.strategy, config.batch_size)
    os.makedirs(workdir, exist_ok=True)
    set_seed(config.seed)
    images, sizes = load_training_images(config.data_dir)
    logging.info("%d training images, held as %s %s (%.0f MB)", len(images), images.dtype, images.shape[1:],
                 images.nbytes / 1e6)
    dev = None
    try:
        dev_files = split_files(config.data_dir, "dev")
        dev = load_images(dev_files[: config.eval_images] if config.eval_images > 0 else dev_files)
    except ValueError as e:
        logging.warning("no dev evaluation: %s", e)
    head = None
    if config.loss == "classification":
        found = data_bins(images, sizes, config.chroma_bin_width)
        if not config.chroma_bins:  # a new run keeps the bins its training pixels fall in
            config = dataclasses.replace(config, chroma_bins=tuple(map(tuple, found[0].tolist())))
        head = ChromaHead.from_config(dataclasses.asdict(config), counts_in(config.chroma_bins, *found))
        logging.info("%d chroma bins of width %g; rebalancing weights %.3g..%.3g (lambda %g)", len(head.centres),
                     config.chroma_bin_width, head.weights.min(), head.weights.max(), config.rebalance_lambda)
    resume = state_path(workdir)
    if resume:
        check_resume_config(workdir, config)
    if chief:
        save_config(config, workdir)

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        # A resumed run gets every weight from the state; do not fetch ImageNet again.
        colorizer = build_colorizer(None if resume else config.backbone_weights,
                                    **architecture(dataclasses.asdict(config)))
        if config.strategy != "default":
            from common.distribute import synchronize_batch_norm

            synchronize_batch_norm(colorizer)
        model = _training_model(colorizer, images.shape[1:], config.size)
        optimizer = make_optimizer(config)
        optimizer.build(model.trainable_variables)
        start = restore_state(resume, {MODEL: colorizer}, {OPTIMIZER: optimizer}) if resume else 0
        if resume:
            logging.info("resumed from %s at step %d (optimizer iterations %d)", resume, start,
                         int(ops.convert_to_numpy(optimizer.iterations)))
            use_config_learning_rate(optimizer, config)
        model.compile(optimizer=optimizer, loss=_fit_loss(config, head), jit_compile="auto")
    if (config.backbone == "vgg16" and config.backbone_weights in (None, "none") and config.freeze_backbone
            and not resume):
        logging.warning("the backbone is random AND frozen: only the decoder learns (fine for tests, not for results)")

    end = config.iterations
    summaries = Summaries(os.path.join(workdir, "tensorboard") if config.tensorboard and chief else None)
    show = sys.stderr.isatty() if config.progress is None else config.progress
    log = StepLog(start, end, config.log_every, "colorize", running_mean=True, summaries=summaries,
                  progress=show and chief)
    checkpoints = Checkpoints(workdir, start, end, config.checkpoint_every, {MODEL: colorizer},
                              {OPTIMIZER: optimizer}, snapshot=MODEL, max_to_keep=config.max_to_keep, chief=chief)
    callbacks = [log, checkpoints]
    evaluation = None
    if dev is not None and chief:
        record = read_best(os.path.join(workdir, BEST_DIR))
        evaluation = Evaluation(
            start, end, config.eval_every, lambda: evaluate(colorizer, *dev, config.size, config.batch_size, head),
            summaries, best=(os.path.join(workdir, BEST_DIR), colorizer) if config.keep_best else None,
            best_so_far=record["dev_loss"] if record else float("inf"))
        callbacks.append(evaluation)
    if chief:
        shown = dev if dev is not None else (images, sizes)
        n = config.num_samples
        callbacks.append(Samples(start, end, config.sample_every,
                                 lambda: _sheet(colorizer, shown[0][:n], shown[1][:n], config.size, head),
                                 os.path.join(workdir, "samples"), "samples/grey_pred_truth", summaries))
    try:
        if start < end:
            try:
                # shuffle=False: the batches are already random, and steps must run in order.
                model.fit(_Batches(images, sizes, config, start), epochs=1, verbose=0, callbacks=callbacks,
                          shuffle=False)
            except KeyboardInterrupt:
                if log.step > start:
                    logging.warning("interrupted at step %d; saving the state", log.step)
                    checkpoints.save(log.step)
                raise
            checkpoints.raise_if_signalled()
        else:
            logging.info("nothing to do: the state is at step %d >= iterations %d", start, end)
    finally:
        log.close()
        summaries.flush()
    step = log.step
    exported = _export(colorizer, config, workdir, step) if config.export and chief else []
    return TrainResult(start_step=start, step=step, losses=[(s, v["loss"]) for s, v in log.history],
                       dev=evaluation.last if evaluation else {}, model=colorizer, optimizer=optimizer,
                       exported=exported)


__all__ = ["ColorizeConfig", "TrainResult", "train", "evaluate", "validate", "make_optimizer"]
