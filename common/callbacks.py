"""What both trainers do around `model.fit`, as Keras callbacks: state, best weights, samples, logs.

Backend-neutral (Keras and NumPy; TensorFlow only for TensorBoard, imported
when a writer is made), so `colorize.trainer` and `srgan.trainer` run the same
way under the TensorFlow backend and under JAX.

The state they save (`state/`, `weights/`, `best/`) is laid out by
`common.state`.

Every callback counts global steps: fit's batch `i` of a run resumed at
`start` is step `start + i + 1`. Put `StepLog` first in fit's list, so a
non-finite loss stops the run before anything of that step is saved.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable, Mapping, Optional

import keras
import numpy as np
from absl import logging
from keras import ops

from common.state import WEIGHTS_DIR, save_state, state_path
from common.training import check_finite, write_best


# ----------------------------------------------------------------------------- TensorBoard


class Summaries:
    """TensorBoard scalars and images in `folder` (`common.summaries`), or nothing.

    Without TensorFlow (e.g. a JAX-only machine) it says so once and writes nothing.
    """

    def __init__(self, folder: Optional[str]) -> None:
        self._writer = None
        if folder is None:
            return
        try:
            import tensorflow as tf
        except ImportError:
            logging.info("TensorFlow is not installed: no TensorBoard logs (samples and logs still written)")
            return
        self._writer = tf.summary.create_file_writer(folder)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if self._writer is not None:
            from common.summaries import write_scalars

            write_scalars(self._writer, values, step)

    def image(self, name: str, image: np.ndarray, step: int) -> None:
        if self._writer is not None:
            from common.summaries import write_image

            write_image(self._writer, name, image, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()


# ----------------------------------------------------------------------------- callbacks


class Prebuilt:
    """A `keras.Model` mixin for models built before `fit` (their variables made, their optimiser built).

    Keras' TensorFlow trainer would otherwise build them from one sample batch
    reduced across workers eagerly, which fails under
    MultiWorkerMirroredStrategy (PerReplica to Tensor); the compiled loss is
    then built when the train step is traced, as without a strategy.
    """

    def _maybe_symbolic_build(self, *args, **kwargs) -> None:
        return None

    @staticmethod
    def one_value_each(logs: Mapping) -> dict:
        """A train step's logs as `[1]` tensors, not scalars: fit's mean of per-replica logs across
        MultiWorkerMirroredStrategy workers reduces along axis 0 (`StepLog` reads either)."""
        return {k: ops.reshape(v, (1,)) for k, v in logs.items()}


class StepCallback(keras.callbacks.Callback):
    """Calls `on_step(step, logs)` after each batch with the global step (module doc)."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.start = self.step = int(start)

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.step = self.start + int(batch) + 1
        self.on_step(self.step, logs or {})

    def on_step(self, step: int, logs: Mapping) -> None:  # pragma: no cover - overridden
        pass


class StepLog(StepCallback):
    """Per-step losses, the NaN stop, and a log line (and TensorBoard scalars) every `log_every` steps.

    Args:
        start, end: the first step's predecessor and the last step of the run.
        log_every: steps between log lines.
        name: what a lone `loss` is called in the NaN error (e.g. `colorize`).
        running_mean: fit's logs hold the mean since the epoch began (compiled
            losses), not this step's value: undo it.
        summaries: where `train/<loss>` and `train/steps_per_sec` go.
        record: called with each log line's values (e.g. a history.jsonl writer).
        extra: step -> more values for the log line, before the losses (e.g. the phase, the learning rate).
        progress: show a progress bar (tqdm) on stderr.
        keep: per-step records kept in `history` (the newest).

    Attributes:
        history: `(step, {loss: value})` of every step of this fit (up to `keep`).
    """

    def __init__(self, start: int, end: int, log_every: int, name: str, running_mean: bool = False,
                 summaries: Optional[Summaries] = None, record: Optional[Callable[[dict], None]] = None,
                 extra: Optional[Callable[[int], dict]] = None, progress: bool = False,
                 keep: int = 10_000) -> None:
        super().__init__(start)
        self.progress = progress
        self._bar = None
        self.end, self.log_every, self.name, self.running_mean = end, log_every, name, running_mean
        self.summaries, self.record, self.extra, self.keep = summaries, record, extra, keep
        self.history: list = []
        self._sums: dict = {}  # running means x batches so far (running_mean)
        self._window: list = []
        self._t = time.perf_counter()
        self._timed = 0  # steps in the window after the first (tracing) one

    def on_step(self, step: int, logs: Mapping) -> None:
        n = step - self.start
        values = {}
        for key, value in logs.items():
            v = float(np.asarray(value).reshape(-1)[0])  # a scalar, or one value as [1]
            if self.running_mean:
                total = v * n
                v, self._sums[key] = total - self._sums.get(key, 0.0), total
            values[key] = v
        check_finite({(self.name if k == "loss" else k): v for k, v in values.items()}, step)
        self.history.append((step, values))
        if self._bar is not None:
            self._bar.update(1)
        del self.history[: -self.keep]
        self._window.append(values)
        if n == 1:  # the first step includes tracing and compiling: not a speed
            self._t = time.perf_counter()
        else:
            self._timed += 1
        if step % self.log_every == 0 or step == self.end:
            now = time.perf_counter()
            rate = self._timed / (now - self._t) if self._timed else float("nan")
            means = {k: float(np.mean([w[k] for w in self._window])) for k in values}
            extra = self.extra(step) if self.extra else {}
            logging.info("step %d %s (%.2f steps/s)", step,
                         " ".join(f"{k} {v:.6g}" for k, v in (extra | means).items()), rate)
            scalars = {f"train/{k}": v for k, v in (means | extra).items()}
            if self._timed:
                scalars["train/steps_per_sec"] = rate
            if self.summaries is not None:
                self.summaries.scalars(scalars, step)
            if self.record is not None:
                # None, not NaN, before a speed is known: history files stay strict JSON.
                self.record({"step": step, **means, **extra, "steps_per_sec": rate if self._timed else None})
            self._window, self._t, self._timed = [], now, 0
            if self._bar is not None:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in means.items()})

    def on_train_begin(self, logs=None) -> None:
        if self.progress:
            from tqdm import tqdm

            self._bar = tqdm(total=self.end, initial=self.start, unit="it", desc=self.name)

    def on_train_end(self, logs=None) -> None:
        self.close()

    def close(self) -> None:
        """Closes the progress bar (also after a failed fit)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Signals:
    """SIGINT/SIGTERM set a flag instead of interrupting a step (main thread only)."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._old: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}


class Checkpoints(StepCallback):
    """The full state (`save_state`) every `every` steps, at the end, and on SIGINT/SIGTERM.

    A signal lets the running step finish, saves, and stops fit; the trainer
    then raises KeyboardInterrupt (`raise_if_signalled`), as Ctrl-C always did.

    Args:
        workdir: the run folder.
        start, end, every: steps (module doc).
        models, optimizers: as `save_state` takes them.
        snapshot: the network whose weights also go to `weights/` at each save.
        max_to_keep: snapshots kept.
        chief: False on the other workers of a multi-worker run: they save nothing.
        before_save: step -> None, called before each save (e.g. a phase-boundary
            export that must exist before the state says it is done).
    """

    def __init__(self, workdir: str, start: int, end: int, every: int, models: Mapping[str, keras.Model],
                 optimizers: Mapping[str, object], snapshot: Optional[str] = None, max_to_keep: int = 5,
                 chief: bool = True, before_save: Optional[Callable[[int], None]] = None) -> None:
        super().__init__(start)
        self.workdir, self.end, self.every = workdir, end, every
        self.models, self.optimizers, self.snapshot, self.max_to_keep = models, optimizers, snapshot, max_to_keep
        self.chief, self.before_save = chief, before_save
        self.signals = _Signals()
        self.saved_step: Optional[int] = None

    def on_train_begin(self, logs=None) -> None:
        self.signals.install()

    def on_step(self, step: int, logs: Mapping) -> None:
        if self.signals.received is not None:
            logging.warning("signal %d at step %d: saving the state and stopping", self.signals.received, step)
            self.save(step)
            self.model.stop_training = True
        elif step % self.every == 0 and step < self.end:
            self.save(step)

    def on_train_end(self, logs=None) -> None:
        self.signals.restore()
        self.save(self.step)

    def save(self, step: int) -> None:
        """Saves the state at `step` (nothing when it is already saved, or not the chief)."""
        if self.saved_step == step or (step <= self.start and state_path(self.workdir)):
            return
        if self._model is not None:
            _ = self.model  # under JAX, puts fit's state back into the variables
        self.saved_step = step
        if self.before_save is not None:
            self.before_save(step)
        if not self.chief:
            return
        save_state(self.workdir, step, self.models, self.optimizers)
        if self.snapshot:
            folder = os.path.join(self.workdir, WEIGHTS_DIR)
            os.makedirs(folder, exist_ok=True)
            self.models[self.snapshot].save_weights(os.path.join(folder, f"step_{step:07d}.weights.h5"))
            for old in sorted(os.listdir(folder))[: -self.max_to_keep]:
                os.remove(os.path.join(folder, old))

    def raise_if_signalled(self) -> None:
        self.signals.restore()
        if self.signals.received is not None:
            raise KeyboardInterrupt(f"signal {self.signals.received}")


class Evaluation(StepCallback):
    """Dev metrics every `every` steps and at the end; the best weights kept.

    Args:
        start, end, every: steps.
        evaluate: () -> {metric: value} on the dev split (the networks in inference mode).
        summaries: where `dev/<metric>` goes.
        record: called with `{"step", "dev_<metric>": ...}` (e.g. history.jsonl).
        best: (folder, network): keep the network's weights with the lowest
            `key` there (`model.weights.h5` + `best.json`, `common.training.write_best`).
        key: the metric that decides the best.
        best_so_far: the best `key` of earlier fits of this run (from best.json).

    Attributes:
        last: the latest metrics.
    """

    def __init__(self, start: int, end: int, every: int, evaluate: Callable[[], dict],
                 summaries: Optional[Summaries] = None, record: Optional[Callable[[dict], None]] = None,
                 best: Optional[tuple] = None, key: str = "loss", best_so_far: float = float("inf")) -> None:
        super().__init__(start)
        self.end, self.every, self.evaluate, self.summaries, self.record = end, every, evaluate, summaries, record
        self.best, self.key, self.best_value = best, key, best_so_far
        self.last: dict = {}

    def on_step(self, step: int, logs: Mapping) -> None:
        if step % self.every and step != self.end:
            return
        _ = self.model  # under JAX, puts fit's state back into the variables
        self.last = self.evaluate()
        logging.info("step %d dev: %s", step, " ".join(f"{k}={v:.5g}" for k, v in sorted(self.last.items())))
        if self.summaries is not None:
            self.summaries.scalars({f"dev/{k}": v for k, v in self.last.items()}, step)
        if self.record is not None:
            self.record({"step": step, **{f"dev_{k}": v for k, v in self.last.items()}})
        if self.best is not None and self.last[self.key] < self.best_value:
            self.best_value = self.last[self.key]
            folder, network = self.best
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, "model.tmp.weights.h5")
            network.save_weights(tmp)
            os.replace(tmp, os.path.join(folder, "model.weights.h5"))
            write_best(folder, step, self.best_value)


class Samples(StepCallback):
    """A sample sheet (`make() -> [H, W, 3]` in [0, 1], or None) every `every` steps (and at the end).

    Written as `folder/step_<step>.png` (`digits` wide) and as TensorBoard image `tag`.
    """

    def __init__(self, start: int, end: int, every: int, make: Callable[[], Optional[np.ndarray]], folder: str,
                 tag: str, summaries: Optional[Summaries] = None, at_end: bool = True, digits: int = 7) -> None:
        super().__init__(start)
        self.end, self.every, self.make, self.folder, self.tag = end, every, make, folder, tag
        self.summaries, self.at_end, self.digits = summaries, at_end, digits

    def on_step(self, step: int, logs: Mapping) -> None:
        if step % self.every and not (self.at_end and step == self.end):
            return
        _ = self.model
        sheet = self.make()
        if sheet is None:
            return
        from data.writers import write_png

        write_png(os.path.join(self.folder, f"step_{step:0{self.digits}d}.png"), sheet)
        if self.summaries is not None:
            self.summaries.image(self.tag, sheet, step)


__all__ = ["Prebuilt", "Summaries", "StepCallback", "StepLog", "Checkpoints", "Evaluation", "Samples"]
