"""The pipeline job as library code: `run(RunConfig)` over files (used by `pipeline.run`).

Faithful mode (the paper's sec. 5.2) and full-resolution mode; see `pipeline.run`
for the command line. Never raises for a bad input file: each one is reported
and the rest are processed.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import sys
import tempfile
import time
from typing import Optional

#: Write errors after which every further output would fail too: the run stops.
FATAL_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


class OutputError(OSError):
    """`--output` cannot be used (not a folder, not writable, disk full)."""

    def __str__(self) -> str:
        return str(self.strerror)


def check_output_folder(path: str) -> None:
    """Creates `path` if needed and proves it writable with a throw-away file.

    Raises:
        OutputError: with the reason, before any model is loaded or image read.
    """
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise OutputError(e.errno, f"cannot write to output folder {path}: {e.strerror or e}") from e


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Resolved settings of one pipeline run."""

    input: str
    output: str
    colorize_model: Optional[str] = None  # None: the bundled default (pipeline.bundled)
    srgan_model: Optional[str] = None  # None: the bundled default (pipeline.bundled)
    size: int = 224
    batch_size: int = 4
    recursive: bool = False
    skip_existing: bool = False
    save_intermediate: bool = False
    progress: Optional[bool] = None
    mode: str = "faithful"
    full: Optional[object] = None  # pipeline.full.FullOptions in full mode
    precision: str = "float32"  # SR generator: float32 | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False  # SR generator compiled with XLA
    consistency: str = "auto"  # pipeline.consistency mode: auto | bicubic | block | none
    colour_temperature: Optional[float] = None  # classification colouriser's temperature (None: its export's)
    executor: str = "serial"  # serial | dask (pipeline.dask_executor)
    dask_scheduler: Optional[str] = None  # dask: join this scheduler (tcp://HOST:PORT); None: a local cluster
    dask_workers: Optional[int] = None  # dask, local cluster: worker processes (None: one per CPU core)
    engine: Optional[str] = None  # auto | savedmodel | litert (None: pipeline.models.DEFAULT_ENGINE)


@dataclasses.dataclass
class RunResult:
    """What a run did: outputs written, inputs skipped, and failures (path, reason)."""

    written: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    wall_seconds: float = 0.0  # the processing loop's wall time
    stage_seconds: dict = dataclasses.field(default_factory=dict)  # seconds per stage (pipeline.overlap.StageClock)


def run(config: RunConfig, log=print, *, sources: Optional[list] = None, pipeline=None,
        client=None) -> RunResult:
    """Runs the pipeline over `config.input` (see `_run`); notes about single inputs
    (`data.io.InputWarning`: a FITS cube's plane, astropy's complaints) go to `log`
    as one `warning: <file>: ...` line each.

    Args:
        sources: the input files, instead of those `config.input` names (then
            `config.input` is only the root that output names are made under).
        pipeline: an already loaded `pipeline.api.Pipeline` for a serial run.
        client: a `distributed.Client`: run on its Dask cluster (as
            `config.executor == "dask"` does on a cluster of its own).
    """
    import warnings

    from data.io import InputWarning

    with warnings.catch_warnings():
        warnings.simplefilter("default", InputWarning)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, InputWarning):
                log(f"warning: {message}")
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return _run(config, log, sources, pipeline, client)


def _run(config: RunConfig, log=print, sources=None, pipe=None, client=None) -> RunResult:
    """Runs the faithful pipeline over `config.input`.

    Args:
        config: the run's settings.
        log: where to send progress messages (one string per call).

    Returns:
        A `RunResult`. Never raises for a bad input file; raises `ModelLoadError`
        for a bad model, `ImageReadError` when `--input` does not exist and
        `OutputError` when `--output` cannot be written. A write that fails
        because the disk is full or read-only stops the run (every later write
        would fail too); the unprocessed inputs are listed as failed.
    """
    from tqdm import tqdm

    from data.io import ImageReadError
    from pipeline.api import Pipeline
    from pipeline.inference import batched, collect_inputs, iter_loaded
    from pipeline.outcome import (account, colour_note, faithful_compute, faithful_written, model_lines, summary,
                                  write_and_record)
    from pipeline.overlap import OrderedWriter, StageClock

    if config.size % 16:
        raise ValueError(f"--size must be a multiple of 16, got {config.size}")
    result = RunResult()
    unsupported: list = []
    if sources is None:
        sources = collect_inputs(config.input, recursive=config.recursive, unsupported=unsupported)
    for path in unsupported:
        reason = "format not supported (read: PNG, JPEG, TIFF, GIF, BMP, WebP, FITS); convert it first"
        result.failed.append((path, reason))
        log(f"error: {ImageReadError(path, reason)}")
    if not sources:
        log(f"no image files (PNG/JPEG/TIFF/GIF/BMP/WebP/FITS) in {config.input}")
        return result
    check_output_folder(config.output)
    if client is not None or config.executor == "dask":
        from pipeline.dask_executor import run_dask

        run_dask(config, sources, result, log, client)
        return result
    # The Python API's core: the command and `pipeline.Pipeline` compute alike.
    pipe = pipe or Pipeline.load(config.colorize_model, config.srgan_model, precision=config.precision,
                                 jit_compile=config.jit_compile, colour_temperature=config.colour_temperature,
                                 engine=config.engine)
    for line in model_lines(pipe):
        log(line)
    todo, full = plan(config, sources, pipe.scale, result, log)
    show = sys.stderr.isatty() if config.progress is None else config.progress
    if config.mode == "full":
        _run_full(todo, pipe, full, config, result, show, log)
        return result
    bar = tqdm(total=len(todo), unit="img", desc="colourise+x%d" % pipe.scale, disable=not show)
    start = time.perf_counter()
    colour_notes = 0
    stopped = False
    clock = StageClock()

    def settle(finished) -> bool:
        """Accounts for finished writes in submission order; True when the run must stop."""
        for (job, i, was_colour), error in finished:
            if error is not None and not isinstance(error, OSError):
                raise error
            if account(job, faithful_written(job, i, was_colour, error), config.output, config.mode, result, log,
                       recorded=True):
                return True
        return False

    # Decoding of the next batch overlaps this batch's compute (`iter_loaded`), and the
    # encoding/writing of this batch's outputs the next batch's compute (`OrderedWriter`).
    fatal = lambda e: isinstance(e, OSError) and e.errno in FATAL_WRITE_ERRNOS  # noqa: E731
    with OrderedWriter(depth=2 * max(1, config.batch_size), clock=clock, fatal=fatal) as writer:
        for batch, loaded in iter_loaded(batched(todo, max(1, config.batch_size)), config.size, clock=clock):
            failures, ready = faithful_compute(batch, loaded, pipe, config, clock)
            for outcome in failures:
                account(batch[outcome.job], outcome, config.output, config.mode, result, log)
            for i, was_colour, c, u in ready:
                colour_notes += was_colour
                if settle(writer.submit((batch[i], i, was_colour), write_and_record, batch[i], c, u, config.output)):
                    stopped = True
                    break
            if stopped:
                break
            bar.update(len(batch))
            bar.set_postfix(img_per_s=f"{len(result.written) / max(time.perf_counter() - start, 1e-9):.2f}")
        if not stopped:
            stopped = settle(writer.drain())
    bar.close()
    if stopped:
        _stop_notice(todo, result, log)
    if colour_notes:
        result.notes.append(colour_note(colour_notes))
        log(result.notes[-1])
    elapsed = time.perf_counter() - start
    result.wall_seconds, result.stage_seconds = elapsed, dict(clock.seconds)
    log(summary(result, elapsed, config.output, rate=True))
    return result


def plan(config: RunConfig, sources: list, scale: int, result: RunResult, log) -> tuple[list, Optional[object]]:
    """The jobs still to do, and full mode's `FullOptions` (None in faithful mode).

    Names each input's outputs (kept from the manifest where an earlier run
    named them), leaves out the tool's own outputs, deletes temporaries of dead
    writers and, with `skip_existing`, the inputs already done (into `result.skipped`).
    """
    from pipeline import manifest
    from pipeline.inference import exclude_own_outputs, plan_jobs

    full = config.full
    if config.mode == "full" and full is None:
        from pipeline.full import FullOptions

        full = FullOptions(size=config.size)
    ext = ".png"
    if config.mode == "full":
        from pipeline.full import output_extension

        ext = output_extension(full)
    entries = manifest.read_manifest(config.output)
    sources, own = exclude_own_outputs(sources, config.input, config.output, manifest.recorded_outputs(entries))
    if own:
        result.notes.append(f"note: {len(own)} file(s) written by this tool into --output were not taken as inputs.")
        log(result.notes[-1])
    previous = {e["source"]: out for out, e in entries.items() if "source" in e}
    jobs = plan_jobs(sources, config.input, config.output, suffix=f"_colour_x{scale}",
                     save_intermediate=config.save_intermediate and config.mode == "faithful", ext=ext,
                     previous=previous)
    _remove_stale_temporaries(jobs)
    if config.skip_existing:
        # Skipped only when the manifest says the output was made from this very
        # input (real path, size, mtime): a new a.fits beside a done a.png is made.
        done = [manifest.is_up_to_date(j.output, j.source, entries) for j in jobs]
        todo = [j for j, d in zip(jobs, done) if not d]
        result.skipped = [j.source for j, d in zip(jobs, done) if d]
    else:
        todo = jobs
    return todo, (full if config.mode == "full" else None)


def _remove_stale_temporaries(jobs) -> None:
    """Deletes temporary files that a killed earlier run left for these outputs.

    `common.files.atomic_file` writes `.tmp-<pid>-XXXX<name>` beside `<name>`
    and renames it when complete; a killed process leaves the temporary file
    (never a truncated output). Only temporaries of this run's own outputs are
    touched, and only those whose writer is gone: a second run on the same
    folders must not delete the live temporary of the first (pid still running).
    """
    import glob
    import re

    from common.files import temporary_owner_alive

    for job in jobs:
        for target in (job.output, job.intermediate):
            if target:
                folder, name = os.path.split(target)
                # mkstemp's 8 random characters, then exactly this output's name.
                exact = re.compile(r"\.tmp-(\d+-)?[A-Za-z0-9_]{8}" + re.escape(name))
                for stale in glob.glob(os.path.join(glob.escape(folder), ".tmp-*" + glob.escape(name))):
                    base = os.path.basename(stale)
                    if not exact.fullmatch(base) or temporary_owner_alive(base):
                        continue
                    try:
                        os.unlink(stale)
                    except OSError:
                        pass


def _stop_notice(jobs, result: "RunResult", log) -> None:
    """After a fatal write error: every job neither written nor failed is failed as not processed."""
    done = {src for src, _ in result.failed} | set(result.written)
    left = [j for j in jobs if j.source not in done and j.output not in done]
    for job in left:
        result.failed.append((job.source, "not processed: the run stopped on an output write error"))
    log(f"error: stopped: the output cannot be written (disk full or read-only); {len(left)} input(s) not "
        "processed. Free space or pick another --output, then rerun with --skip_existing.")


def _run_full(jobs, pipe, options, config, result, show, log) -> None:
    """Full-resolution mode, one frame at a time, with a progress bar over tiles."""
    from tqdm import tqdm

    from pipeline.outcome import account, full_file, summary, write_fidelity_csv
    from pipeline.overlap import StageClock

    rows = []
    clock = StageClock()
    start = time.perf_counter()
    for job in jobs:
        bar = tqdm(total=0, unit="tile", desc=os.path.basename(job.source), disable=not show)

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        try:
            outcome = full_file(job, 0, pipe, options, config.consistency, progress, clock)
        finally:
            bar.close()
        if account(job, outcome, config.output, config.mode, result, log, rows):
            _stop_notice(jobs, result, log)
            break
    if rows:
        write_fidelity_csv(config.output, rows)
    elapsed = time.perf_counter() - start
    result.wall_seconds, result.stage_seconds = elapsed, dict(clock.seconds)
    log(summary(result, elapsed, config.output, rate=False))
