"""Archive-scale inference on Dask: `pipeline.run --executor dask` and `Pipeline.process_files(client=...)`.

The run is the serial one (`pipeline.runner`) with its work farmed out: the
client plans the jobs (`runner.plan`: names, `--skip_existing`, the manifest),
each task is one batch of frames (`--batch_size` in faithful mode, the same
batches the serial run makes, so the same model calls give the same bytes;
one frame in full mode), and each Dask worker process loads the models once
(a per-process cache keyed by the model paths and options), reads its frames
and writes their outputs atomically into `--output` (which every worker must
see: a shared file system). Results and per-file errors come back to the client
as `pipeline.outcome.Outcome`s; it prints the same lines, appends the manifest
as results arrive (so a killed client's rerun with `--skip_existing` does only
the rest) and returns the same `RunResult`.

A worker that dies mid-task (killed, out of memory) leaves at most a temporary
file (`.tmp-<pid>-...`, never a partial output); Dask runs the task again
elsewhere, and that task first deletes temporaries of its outputs whose writer
is dead. A task whose workers died `distributed.scheduler.allowed-failures`
times (3) is reported as failed for its files; the run goes on.

Only the client needs `distributed` installed to start; nothing here imports it
at module level (`pip install ".[dask]"`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import threading
import time
import warnings
from typing import Optional

#: Tasks in flight per worker thread: enough to keep every worker busy while
#: results travel, few enough that the scheduler never holds the whole archive.
TASKS_PER_THREAD = 2


class ClusterError(RuntimeError):
    """The Dask cluster cannot be used: `distributed` missing, or the scheduler unreachable."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What a worker loads (`pipeline.api.Pipeline.load` arguments); the key of its per-process cache."""

    colorize_model: Optional[str] = None
    srgan_model: Optional[str] = None
    precision: str = "float32"
    jit_compile: bool = False
    colour_temperature: Optional[float] = None
    engine: Optional[str] = None

    @classmethod
    def of(cls, config) -> "ModelSpec":
        """The models of a `RunConfig`; model folders that exist here are made absolute (workers' cwd may differ)."""

        def where(path):
            return os.path.abspath(path) if path and os.path.isdir(path) else path

        return cls(where(config.colorize_model), where(config.srgan_model), config.precision, config.jit_compile,
                   config.colour_temperature, config.engine)


_PIPELINES: dict = {}
_LOAD_LOCK = threading.Lock()


def worker_pipeline(spec: ModelSpec):
    """This process's `Pipeline` for `spec`, loaded on first use (one load per worker process)."""
    from pipeline.api import Pipeline

    with _LOAD_LOCK:
        pipe = _PIPELINES.get(spec)
        if pipe is None:
            pipe = _PIPELINES[spec] = Pipeline.load(**dataclasses.asdict(spec))
    return pipe


def describe(spec: ModelSpec) -> tuple[list, int]:
    """On a worker: the run's opening lines (device, models) and the SR scale; loads the models there."""
    from pipeline.outcome import model_lines

    pipe = worker_pipeline(spec)
    return model_lines(pipe), pipe.scale


def process_batch(spec: ModelSpec, config, jobs: list) -> tuple[list, list]:
    """The task: one batch of jobs on this worker, processed by the run's mode (`pipeline.modes`).

    Args:
        spec: the models (loaded once per process).
        config: the run's `RunConfig`.
        jobs: `Job`s with absolute paths.

    Returns:
        (the `data.io.InputWarning` messages raised while reading, the
        `pipeline.outcome.Outcome`s in the order the client accounts for them).
    """
    from data.io import InputWarning
    from pipeline.modes import mode_of
    from pipeline.runner import _remove_stale_temporaries

    pipe = worker_pipeline(spec)
    # A worker that died writing one of these left its temporary behind.
    _remove_stale_temporaries(jobs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default", InputWarning)
        outcomes = mode_of(config).process(jobs, pipe)
    for w in caught:
        if not issubclass(w.category, InputWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return [str(w.message) for w in caught if issubclass(w.category, InputWarning)], outcomes


def local_cluster(n_workers: Optional[int] = None, tf_threads: Optional[int] = None, **kwargs):
    """A `distributed.LocalCluster` of worker processes with one thread each, sized for TensorFlow.

    Args:
        n_workers: worker processes (None: one per CPU core).
        tf_threads: TensorFlow threads per worker (`TF_NUM_INTRAOP_THREADS`);
            None: the cores shared out (cores // workers, at least 1) unless
            the environment sets it; 0: TensorFlow's own default (every core,
            as a serial run), so that each worker computes exactly as a
            serial run on this machine does.
        **kwargs: more `LocalCluster` arguments (e.g. `dashboard_address`).

    Raises:
        ClusterError: `distributed` is not installed.
    """
    LocalCluster = _distributed().LocalCluster
    import dask
    n = n_workers or os.cpu_count() or 1
    env = {}
    if tf_threads is None and "TF_NUM_INTRAOP_THREADS" not in os.environ:
        tf_threads = max(1, (os.cpu_count() or 1) // n)
    if tf_threads:
        env = {"TF_NUM_INTRAOP_THREADS": str(tf_threads), "TF_NUM_INTEROP_THREADS": "1"}
    # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive
    # mmap threshold: every large TensorFlow buffer is then mapped and faulted in anew
    # (measured here: 15-25 % slower model calls). Workers keep glibc's default.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=n, threads_per_worker=1, processes=True, env=env, **kwargs)


def _distributed():
    try:
        import distributed
    except ImportError as e:
        raise ClusterError("--executor dask needs Dask: pip install 'astro-colorize-sr[dask]' "
                           "(or pip install 'dask[distributed]')") from e
    return distributed


@contextlib.contextmanager
def _session(config, client, log):
    """The client to run on: `client` as given, one joined to `config.dask_scheduler`, or a new local cluster."""
    if client is not None:
        yield client
        return
    distributed = _distributed()
    if config.dask_scheduler:
        try:
            c = distributed.Client(config.dask_scheduler, timeout="30s")
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"cannot reach the Dask scheduler {config.dask_scheduler}: {e}") from e
        with c:
            yield c
        return
    # Our own cluster's start-up and shut-down chatter (INFO) is not for the user; warnings are.
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        with local_cluster(config.dask_workers) as cluster, distributed.Client(cluster) as c:
            yield c
    finally:
        logger.setLevel(level)


def _dashboard(client) -> str:
    try:
        return client.dashboard_link or "none"
    except (KeyError, AttributeError):
        return "none (pip install bokeh to serve it)"


def run_dask(config, mode, sources: list, result, log, client=None) -> None:
    """`pipeline.runner.run`'s work on a Dask cluster; fills `result` as the serial run does.

    Args:
        config: the run's `RunConfig` (`dask_scheduler`, `dask_workers` say
            which cluster when `client` is None).
        mode: its `pipeline.modes` mode.
        sources: the input files.
        client: a `distributed.Client` to use (not closed here).

    Raises:
        ClusterError: no Dask, or the scheduler cannot be reached.
        pipeline.models.ModelLoadError: the models fail to load on a worker.
    """
    from pipeline.runner import Progress, drive, plan

    with _session(config, client, log) as client:
        threads = client.nthreads()
        log(f"dask: scheduler {client.scheduler.address}, {len(threads)} worker(s), {sum(threads.values())} "
            f"thread(s); dashboard: {_dashboard(client)}")
        spec = ModelSpec.of(config)
        # Every worker there now loads the models at once, side by side, rather than on its
        # first batch (a worker loading would hold that batch up); the first to finish speaks.
        loads = [client.submit(describe, spec, pure=False, workers=[w], allow_other_workers=True)
                 for w in threads] or [
            client.submit(describe, spec, pure=False)]
        lines, scale = next(iter(_distributed().as_completed(loads))).result()
        for line in lines:
            log(line)
        todo = plan(config, mode, sources, scale, result, log)
        progress = Progress(len(todo), mode.desc(scale), config.progress)
        drive(_steps(client, spec, config, mode, todo, log), todo, mode, config, result, log, progress)


def _steps(client, spec, config, mode, todo, log):
    """The mode's batches as tasks (a bounded number in flight), yielded as `drive` steps as they complete.

    Closing it (the run stopped) cancels the tasks still queued or running.
    """
    from pipeline.outcome import Outcome
    from pipeline.runner import _remove_stale_temporaries

    distributed = _distributed()
    batches = mode.batches(todo)
    pending = distributed.as_completed()
    running: dict = {}
    window = {"size": 0, "at": -1e9}

    def target() -> int:
        # Re-read the cluster's size now and then: adaptive clusters grow and shrink.
        if time.monotonic() - window["at"] > 2.0:
            threads = sum(client.nthreads().values())
            window.update(size=max(2, TASKS_PER_THREAD * threads), at=time.monotonic())
        return window["size"]

    def submit() -> None:
        for batch in itertools.islice(batches, max(0, target() - len(running))):
            absolute = [dataclasses.replace(j, source=os.path.abspath(j.source)) for j in batch]
            future = client.submit(process_batch, spec, config, absolute, pure=False)
            running[future.key] = (future, batch)
            pending.add(future)

    submit()
    try:
        for future in pending:
            _, batch = running.pop(future.key)
            try:
                caught, outcomes = future.result()
            except distributed.KilledWorker as e:
                reason = f"not processed: the Dask workers running it died ({e})"
                caught, outcomes = [], [Outcome(i, reason=reason) for i in range(len(batch))]
            for message in caught:
                log(f"warning: {message}")
            yield len(batch), [(batch[o.job], o) for o in outcomes]
            submit()
    finally:
        if running:
            client.cancel([f for f, _ in running.values()])
        # Every task has ended: a temporary of a dead worker whose task was not run again
        # (the run stopped, or the task failed for good) is deleted here.
        _remove_stale_temporaries(todo)
