"""The pipeline job as library code: `run(RunConfig)` over files (used by `pipeline.run`).

Faithful mode (the paper's sec. 5.2) and full-resolution mode; see `pipeline.run`
for the command line. Never raises for a bad input file: each one is reported
and the rest are processed.

One run, whatever the mode or executor: the input is collected and checked
(`_run`), the jobs are planned (`plan`: names, the manifest, `--skip_existing`),
the mode (`pipeline.modes`) processes them, in this process or on Dask
(`pipeline.dask_executor`), and one loop (`drive`) accounts for every outcome.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from typing import Iterator, Optional

from pipeline.config import RunConfig


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
    """Runs the pipeline over `config.input` in `config.mode`.

    The input is collected and checked here, once, for both modes and both
    executors; each job is then processed by the mode (`pipeline.modes`) and
    accounted for by `drive`.

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
    from data.io import ImageReadError
    from pipeline.api import Pipeline
    from pipeline.inference import collect_inputs
    from pipeline.modes import mode_of
    from pipeline.outcome import model_lines
    from pipeline.overlap import StageClock

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
    mode = mode_of(config)
    if client is not None or config.executor == "dask":
        from pipeline.dask_executor import run_dask

        run_dask(config, mode, sources, result, log, client)
        return result
    # The Python API's core: the command and `pipeline.Pipeline` compute alike.
    pipe = pipe or Pipeline.load(config.colorize_model, config.srgan_model, precision=config.precision,
                                 jit_compile=config.jit_compile, colour_temperature=config.colour_temperature,
                                 engine=config.engine)
    for line in model_lines(pipe):
        log(line)
    todo = plan(config, mode, sources, pipe.scale, result, log)
    clock = StageClock()
    progress = Progress(len(todo), mode.desc(pipe.scale), config.progress)
    drive(mode.steps(todo, pipe, clock, progress.tiles), todo, mode, config, result, log, progress, clock)
    return result


class Progress:
    """The run's progress bar: jobs done (with images per second), and the tiles of a frame in the making.

    Args:
        total: jobs to do.
        desc: the bar's label (the mode's).
        show: True, False, or None for "when stderr is a terminal".
    """

    def __init__(self, total: int, desc: str, show: Optional[bool] = None) -> None:
        from tqdm import tqdm

        show = sys.stderr.isatty() if show is None else show
        self.bar = tqdm(total=total, unit="img", desc=desc, disable=not show)
        self.start = time.perf_counter()

    def advance(self, jobs: int, written: int) -> None:
        """`jobs` more done, `written` outputs so far."""
        self.bar.update(jobs)
        self.bar.set_postfix(img_per_s=f"{written / max(time.perf_counter() - self.start, 1e-9):.2f}")

    def tiles(self, done: int, total: int) -> None:
        """The frame in the making has `done` of its `total` SR tiles (full mode)."""
        self.bar.set_postfix(tiles=f"{done}/{total}")

    def close(self) -> None:
        self.bar.close()


def drive(steps: Iterator, todo: list, mode, config: RunConfig, result: RunResult, log, progress: Progress,
          clock=None) -> None:
    """The run loop of both modes and both executors: accounts for each job's outcome as it comes.

    Logs each outcome's line, records it in the manifest, fills `result`,
    stops at a write error after which every write would fail (disk full,
    read-only: the jobs left are failed as not processed), and ends with the
    mode's notes, full mode's `fidelity.csv` and the summary line.

    Args:
        steps: a mode's `steps` (or the Dask executor's): `(jobs finished,
            [(job, Outcome), ...])`, outcomes in the order to account for them;
            closed here when the run stops (dropping the work not yet done).
        todo: the planned jobs (`plan`).
        mode: the run's `pipeline.modes` mode.
        progress: the run's bar (closed here).
        clock: the run's `pipeline.overlap.StageClock` (None: no stage seconds).
    """
    from pipeline.outcome import account, summary, write_fidelity_csv

    rows: list = []
    colour_inputs = 0
    stopped = False
    try:
        for advanced, outcomes in steps:
            for job, outcome in outcomes:
                colour_inputs += outcome.was_colour
                if account(job, outcome, config.output, mode.name, result, log, rows):
                    stopped = True
                    break
            if stopped:
                break
            if advanced:
                progress.advance(advanced, len(result.written))
    finally:
        steps.close()
        progress.close()
    if stopped:
        _stop_notice(todo, result, log)
    for note in mode.closing_notes(colour_inputs):
        result.notes.append(note)
        log(note)
    if rows:
        position = {id(job): i for i, job in enumerate(todo)}
        write_fidelity_csv(config.output, sorted(rows, key=lambda r: position[id(r[0])]))
    elapsed = time.perf_counter() - progress.start
    result.wall_seconds, result.stage_seconds = elapsed, dict(clock.seconds) if clock is not None else {}
    log(summary(result, elapsed, config.output, rate=mode.rate))


def plan(config: RunConfig, mode, sources: list, scale: int, result: RunResult, log) -> list:
    """The jobs still to do, their outputs named for `mode` (`pipeline.modes`).

    Names each input's outputs (kept from the manifest where an earlier run
    named them), leaves out the tool's own outputs, deletes temporaries of dead
    writers and, with `skip_existing`, the inputs already done (into `result.skipped`).
    """
    from pipeline import manifest
    from pipeline.inference import exclude_own_outputs, plan_jobs

    entries = manifest.read_manifest(config.output)
    sources, own = exclude_own_outputs(sources, config.input, config.output, manifest.recorded_outputs(entries))
    if own:
        result.notes.append(f"note: {len(own)} file(s) written by this tool into --output were not taken as inputs.")
        log(result.notes[-1])
    previous = {e["source"]: out for out, e in entries.items() if "source" in e}
    jobs = plan_jobs(sources, config.input, config.output, suffix=f"_colour_x{scale}",
                     save_intermediate=mode.save_intermediate, ext=mode.ext, previous=previous)
    _remove_stale_temporaries(jobs)
    if config.skip_existing:
        # Skipped only when the manifest says the output was made from this very
        # input (real path, size, mtime): a new a.fits beside a done a.png is made.
        done = [manifest.is_up_to_date(j.output, j.source, entries) for j in jobs]
        todo = [j for j, d in zip(jobs, done) if not d]
        result.skipped = [j.source for j, d in zip(jobs, done) if d]
    else:
        todo = jobs
    return todo


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
