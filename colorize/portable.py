"""Training the colouriser with Keras `model.fit`, on any Keras backend.

`colorize.trainer` is the TensorFlow trainer (tf.data, tf.distribute,
tf.train checkpoints, SavedModel export). This one needs only Keras and NumPy,
so with `KERAS_BACKEND=jax` it trains on a GPU machine that has JAX but no
TensorFlow (`python -m colorize.train --portable ...`). It learns the same
thing from the same kind of examples:

* the same network (`colorize.model.build_colorizer`), loss
  (`colorize.losses.colorize_loss`), optimiser and learning-rate steps
  (`colorize.config.make_optimizer`) and config (`ColorizeConfig`);
* `--loss classification` (Zhang et al. 2016, `colorize.chroma`), this
  trainer's only: the bins are those the training pixels fall in (found once
  at the start, saved in config.json as `chroma_bins`), the rebalancing
  weights come from the same count, and the dev `uv_mse` is the annealed
  mean's at the config's temperature;
* the same examples as `data.datasets.colorize_dataset`: a random square crop
  of 50-100 % of the shorter side, in one of the 8 flips/rotations, resized
  to `size` with antialiased bilinear and split into Y and UV; dev images are
  resized whole. Crop, flip and resize are one batched matrix product on the
  accelerator (`data.examples.crop_resize`), equal to `tf.image.resize(...,
  antialias=True)` to float rounding (tested), so the host only gathers images. The random
  stream is NumPy's, seeded by (seed, step): a seeded run repeats itself, but
  it does not draw the same crops as `colorize.trainer`. `--brightness_jitter` /
  `--contrast_jitter` add hue-keeping stretches of the crops (`data.examples`).

What a run leaves in `workdir`:

    config.json                  the resolved config (rewritten on each start)
    state/                       model weights, Adam's variables and the step,
                                 every `checkpoint_every` steps, at the end and
                                 on Ctrl-C; a restart resumes from it
    weights/step_NNNNNNN.weights.h5   the model at each checkpoint (the newest
                                 `max_to_keep`)
    best/                        the weights with the lowest dev loss so far

`python -m colorize.export --workdir RUN` writes the pipeline's SavedModel from
it (that step needs TensorFlow; this module does not).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Optional

import keras
import numpy as np
from absl import logging
from keras import ops

from colorize.chroma import ChromaHead, counts_in, data_bins
from colorize.config import ColorizeConfig, check_resume_config, make_optimizer, use_config_learning_rate, validate
from colorize.losses import colorize_loss, uv_mse
from colorize.model import architecture, build_colorizer
from common.files import atomic_write_bytes
from common.training import check_finite, read_best, save_config, set_seed, write_best
from data.colour import UV_OFFSET
from data.examples import N_CROP_PARAMS, load_images, make_examples, random_crops, whole_images
from data.splits import split_files

STATE_DIR, WEIGHTS_DIR, BEST_DIR = "state", "weights", "best"


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
    and lets plain `model.fit` (any backend) train the colouriser.
    """
    images = keras.Input(image_shape, dtype="float16", name="images")
    params = keras.Input((N_CROP_PARAMS,), name="crop")
    y, uv = _Examples(size, name="examples")(images, params)
    return keras.Model([images, params], ops.concatenate([uv, colorizer(y)], axis=-1), name="colorize_fit")


class _Batches(keras.utils.PyDataset):
    """Training batches `((images, crops), unused target)` for steps `start..iterations-1`.

    Each step's draw depends only on (seed, step), so a resumed run continues
    the same stream.
    """

    def __init__(self, images: np.ndarray, sizes: np.ndarray, config: ColorizeConfig, start: int):
        # One worker: batches are gathered in the main thread (cheap NumPy indexing), so
        # Ctrl-C lands in fit's loop and the state is saved (an enqueuer thread would be left waiting).
        super().__init__(workers=1)
        self.images, self.sizes, self.config, self.start = images, sizes, config, start

    def __len__(self) -> int:
        return self.config.iterations - self.start

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.config.seed, self.start + i])
        idx = rng.integers(0, len(self.images), self.config.batch_size)
        crops = random_crops(rng, self.sizes[idx], self.config.brightness_jitter, self.config.contrast_jitter)
        return (self.images[idx], crops), np.zeros((len(idx), 1, 1, 1), np.float32)


def evaluate(colorizer: keras.Model, images: np.ndarray, sizes: np.ndarray, size: int,
             batch_size: int, head: Optional[ChromaHead] = None) -> dict:
    """Dev metrics of the whole images resized to `size`, as `colorize.trainer` logs them.

    Args:
        head: a classification run's bins: `loss` is then its class-rebalanced
            cross-entropy, and `uv_mse` that of the annealed mean.

    Returns:
        `{"loss", "uv_mse", "grey_baseline_loss", "grey_uv_mse"}`, means over images
        (`grey_baseline_loss`: the blurred MSE of grey; for the UV head it is `loss`'s baseline).
    """
    totals, count = {"loss": 0.0, "uv_mse": 0.0, "grey_baseline_loss": 0.0, "grey_uv_mse": 0.0}, 0
    for s in range(0, len(images), batch_size):
        y, uv = make_examples(images[s:s + batch_size], whole_images(sizes[s:s + batch_size]), size)
        out = colorizer(y, training=False)
        pred = head.decode(out) if head is not None else out
        grey = ops.full(ops.shape(uv), UV_OFFSET)
        n = int(y.shape[0])
        totals["loss"] += float(head.loss(uv, out) if head is not None else colorize_loss(uv, pred)) * n
        totals["uv_mse"] += float(uv_mse(uv, pred)) * n
        totals["grey_baseline_loss"] += float(colorize_loss(uv, grey)) * n
        totals["grey_uv_mse"] += float(uv_mse(uv, grey)) * n
        count += n
    return {k: v / count for k, v in totals.items()}


def _save_state(workdir: str, step: int, colorizer: keras.Model, optimizer) -> None:
    """Writes `workdir/state` whole or not at all (a new folder swapped in)."""
    final = os.path.join(workdir, STATE_DIR)
    tmp, old = final + ".tmp", final + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    colorizer.save_weights(os.path.join(tmp, "model.weights.h5"))
    np.savez(os.path.join(tmp, "optimizer.npz"), *[ops.convert_to_numpy(v) for v in optimizer.variables])
    atomic_write_bytes(os.path.join(tmp, "step.json"), json.dumps({"step": step}).encode("utf-8"))
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def state_path(workdir: str) -> Optional[str]:
    """The folder of the last complete state in `workdir`, or None."""
    for name in (STATE_DIR, STATE_DIR + ".old"):  # .old: killed between the two renames
        path = os.path.join(workdir, name)
        if os.path.isfile(os.path.join(path, "step.json")):
            return path
    return None


def _state_step(folder: str) -> int:
    with open(os.path.join(folder, "step.json"), encoding="utf-8") as f:
        return int(json.load(f)["step"])


def weights_file(workdir: str, checkpoint: str = "latest") -> tuple[str, int]:
    """The `.weights.h5` file of a portable run and its step.

    Args:
        workdir: a portable run folder.
        checkpoint: `latest` (the state), `best` (lowest dev loss) or a step
            number whose snapshot is still in `weights/`.

    Raises:
        FileNotFoundError: no such weights in `workdir`.
    """
    if checkpoint == "latest":
        folder = state_path(workdir)
        if folder:
            return os.path.join(folder, "model.weights.h5"), _state_step(folder)
    elif checkpoint == "best":
        record = read_best(os.path.join(workdir, BEST_DIR))
        if record:
            return os.path.join(workdir, BEST_DIR, "model.weights.h5"), int(record["step"])
    else:
        path = os.path.join(workdir, WEIGHTS_DIR, f"step_{int(checkpoint):07d}.weights.h5")
        if os.path.isfile(path):
            return path, int(checkpoint)
    raise FileNotFoundError(f"{workdir}: no {checkpoint!r} weights to export")


def _restore_state(path: str, colorizer: keras.Model, optimizer) -> int:
    colorizer.load_weights(os.path.join(path, "model.weights.h5"))
    with np.load(os.path.join(path, "optimizer.npz")) as saved:
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if [a.shape for a in arrays] != [tuple(v.shape) for v in optimizer.variables]:
        raise ValueError(f"{path}: the saved optimizer state does not fit this model")
    for v, a in zip(optimizer.variables, arrays):
        v.assign(a)
    return _state_step(path)


class _Progress(keras.callbacks.Callback):
    """Logging, NaN stop, checkpoints, dev evaluation and best weights, by global step."""

    def __init__(self, config: ColorizeConfig, workdir: str, start: int, colorizer, optimizer, dev,
                 head: Optional[ChromaHead] = None):
        super().__init__()
        self.head = head
        self.config, self.workdir, self.start = config, workdir, start
        self.colorizer, self.optimizer, self.dev = colorizer, optimizer, dev
        self.step, self.losses, self.last_dev = start, [], {}
        record = read_best(os.path.join(workdir, BEST_DIR))
        self.best_loss = record["dev_loss"] if record else float("inf")
        self._sum = 0.0  # of this fit's step losses so far
        self._window = (0, 0.0, time.perf_counter())  # (batches, loss sum, time) at the last log

    def _sync(self) -> None:
        # On JAX, fit keeps the state outside the variables; reading `self.model` puts it back.
        _ = self.model

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        # fit's "loss" is the mean since the epoch began; undo that for this step.
        n, mean = batch + 1, float(logs["loss"])
        prev_n, prev_sum, prev_t = self._window
        self.losses.append((self.start + n, mean * n - self._sum))
        self._sum = mean * n
        self.step = self.start + n
        check_finite({"colorize": mean}, self.step)
        c = self.config
        if self.step % c.log_every == 0 or self.step == c.iterations:
            now = time.perf_counter()
            window_mean = (self._sum - prev_sum) / (n - prev_n)
            logging.info("step %d loss %.6f (%.2f steps/s)", self.step, window_mean, (n - prev_n) / (now - prev_t))
            self._window = (n, self._sum, now)
        if self.dev is not None and (self.step % c.eval_every == 0 or self.step == c.iterations):
            self._sync()
            self.last_dev = evaluate(self.colorizer, *self.dev, c.size, c.batch_size, self.head)
            logging.info("step %d dev: %s", self.step, " ".join(f"{k}={v:.5g}" for k, v in sorted(self.last_dev.items())))
            if c.keep_best and self.last_dev["loss"] < self.best_loss:
                self.best_loss = self.last_dev["loss"]
                self._save_best()
        if self.step % c.checkpoint_every == 0 and self.step < c.iterations:
            self.save()

    def _save_best(self) -> None:
        folder = os.path.join(self.workdir, BEST_DIR)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, "model.tmp.weights.h5")
        self.colorizer.save_weights(tmp)
        os.replace(tmp, os.path.join(folder, "model.weights.h5"))
        write_best(folder, self.step, self.best_loss)

    def save(self) -> None:
        """Full state plus a weights snapshot at the current step."""
        if self.step <= self.start and state_path(self.workdir):
            return
        self._sync()
        _save_state(self.workdir, self.step, self.colorizer, self.optimizer)
        folder = os.path.join(self.workdir, WEIGHTS_DIR)
        os.makedirs(folder, exist_ok=True)
        self.colorizer.save_weights(os.path.join(folder, f"step_{self.step:07d}.weights.h5"))
        for old in sorted(os.listdir(folder))[: -self.config.max_to_keep]:
            os.remove(os.path.join(folder, old))


@dataclasses.dataclass
class PortableResult:
    """What `train` did: steps, per-step losses `(step, loss)`, the last dev metrics and the trained model."""

    start_step: int
    step: int
    losses: list
    dev: dict
    model: keras.Model


def train(config: ColorizeConfig, workdir: str) -> PortableResult:
    """Trains (or resumes) the colouriser with `model.fit` on the active Keras backend.

    Args:
        config: the run's settings (`strategy` must be 'default'; sample
            sheets, TensorBoard and export are `colorize.trainer`'s and are not
            written here).
        workdir: run folder (see module doc).

    Raises:
        ValueError: bad settings, no training images, or a `colorize.trainer`
            run in `workdir`.
        common.training.NonFiniteLossError: the loss became NaN/inf (the last
            good state is kept).
    """
    validate(config)
    if config.strategy != "default":
        raise ValueError("the portable trainer runs on one device; use colorize.trainer for tf.distribute")
    if os.path.isdir(os.path.join(workdir, "ckpt")):
        raise ValueError(f"{workdir} holds a TensorFlow-trainer run (ckpt/); use a new --workdir")
    os.makedirs(workdir, exist_ok=True)
    set_seed(config.seed)
    images, sizes = load_images(split_files(config.data_dir, "train"))
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
    save_config(config, workdir)

    colorizer = build_colorizer(None if resume else config.backbone_weights, **architecture(dataclasses.asdict(config)))
    model = _training_model(colorizer, images.shape[1:], config.size)
    optimizer = make_optimizer(config)
    optimizer.build(model.trainable_variables)
    start = _restore_state(resume, colorizer, optimizer) if resume else 0
    if resume:
        logging.info("resumed from %s at step %d", resume, start)
        use_config_learning_rate(optimizer, config)
    weight = float(config.low_saturation_weight)
    if head is not None:
        loss = lambda _, out: head.loss(out[..., :2], out[..., 2:])  # noqa: E731
    else:
        loss = lambda _, out: colorize_loss(out[..., :2], out[..., 2:], weight)  # noqa: E731
    model.compile(optimizer=optimizer, loss=loss, jit_compile="auto")
    progress = _Progress(config, workdir, start, colorizer, optimizer, dev, head)
    if start < config.iterations:
        try:
            model.fit(_Batches(images, sizes, config, start), epochs=1, verbose=0, callbacks=[progress],
                      shuffle=False)  # the batches are already random; steps must run in order
        except KeyboardInterrupt:
            if progress.step > start:
                logging.warning("interrupted at step %d; saving the state", progress.step)
                progress.save()
            raise
        progress.save()
    else:
        logging.info("nothing to do: the state is at step %d >= iterations %d", start, config.iterations)
    return PortableResult(start_step=start, step=progress.step, losses=progress.losses, dev=progress.last_dev, model=colorizer)


__all__ = ["train", "PortableResult", "evaluate", "state_path", "weights_file"]
