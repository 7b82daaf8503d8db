"""One job's work and what became of it, shared by the serial run and the Dask workers.

A run plans `pipeline.inference.Job`s; the work on a job (read the input,
compute, write its files atomically into `--output`: a mode's `process`,
`pipeline.modes`) returns an `Outcome`, a small picklable record; the run that
owns `--output` then `account`s for it: it logs the job's line, appends it to
the manifest and adds it to the `RunResult`. The serial loop
(`pipeline.runner.drive`) does both in one process; with Dask
(`pipeline.dask_executor`) the workers do the work and the client the
accounting, so both write the same files and print the same lines.
"""
from __future__ import annotations

import dataclasses
import errno as errnos
import os
from typing import Optional, Sequence

import numpy as np

#: Write errors after which every further output would fail too: the run stops.
FATAL_WRITE_ERRNOS = {errnos.ENOSPC, errnos.EROFS, errnos.EDQUOT}


def is_fatal(error: BaseException) -> bool:
    """Whether a write's error stops the run (disk full, read-only, over quota)."""
    return isinstance(error, OSError) and error.errno in FATAL_WRITE_ERRNOS


@dataclasses.dataclass
class Outcome:
    """What became of one job.

    Attributes:
        job: the job's position in the list of jobs the work was given.
        reason: None when written; else the one-line reason it failed (for a
            write error, the OS's `strerror`).
        write_error: the failure was writing an output (else reading the input).
        errno: a write error's errno (disk full and read-only stop the run).
        extra: the other files written with the output (intermediate, residual map).
        was_colour: the input was a colour image (its luminance was used).
        fidelity: full mode's `pipeline.full.Fidelity` with `--report`.
        recorded: the output's manifest entry is written already (the serial
            faithful run's writer thread records each output as it writes it).
    """

    job: int
    reason: Optional[str] = None
    write_error: bool = False
    errno: Optional[int] = None
    extra: list = dataclasses.field(default_factory=list)
    was_colour: bool = False
    fidelity: Optional[object] = None
    recorded: bool = False


def write_failure(index: int, e: OSError, was_colour: bool = False) -> Outcome:
    """The outcome of job `index` whose output could not be written (`e`)."""
    return Outcome(index, reason=str(e.strerror or e), write_error=True, errno=e.errno, was_colour=was_colour)


def model_lines(pipe) -> list[str]:
    """The lines a run starts with: device, both models, and a warning for untrained ones."""
    from pipeline.models import describe_device

    lines = [f"device: {describe_device()}", f"colouriser: {pipe.colorizer.description}",
             f"super-resolution: {pipe.upscaler.description} (x{pipe.scale})"]
    if not pipe.trained:
        lines.append("WARNING: running with freshly initialised (untrained) models: the output shows the "
                     "pipeline working, not real colours or detail.")
    return lines


def faithful_compute(jobs: Sequence, loaded: Sequence, pipe, config, clock=None) -> tuple[list, list]:
    """Faithful mode's model call on one batch of jobs (the readable ones), nothing written.

    Args:
        jobs: `Job`s of one batch (the same batches give the same pixels:
            the models' float results depend on the batch they are run in).
        loaded: per job `(grey [S, S, 1], was_colour)` or the `ImageReadError`
            reading it raised (`pipeline.inference.iter_loaded`).
        pipe: the loaded `pipeline.api.Pipeline`.
        config: the run's `RunConfig`.
        clock: an optional `pipeline.overlap.StageClock` for the stages' seconds.

    Returns:
        `(failures, ready)`: an `Outcome` per unreadable job, and per readable
        one `(index, was_colour, colour [S, S, 3], upscaled [sS, sS, 3])`, floats in [0, 1].
    """
    from data.io import ImageReadError

    failures, ready, greys = [], [], []
    for i, item in enumerate(loaded):
        if isinstance(item, ImageReadError):
            failures.append(Outcome(i, reason=item.reason))
            continue
        ready.append((i, item[1]))
        greys.append(item[0])
    if not ready:
        return failures, []
    colour, upscaled = pipe.faithful_batch(np.stack(greys), config, clock)
    return failures, [(i, was_colour, c, u) for (i, was_colour), c, u in zip(ready, colour, upscaled)]


def write_faithful(job, colour: np.ndarray, upscaled: np.ndarray) -> None:
    """A faithful job's PNGs (output, and the 224 colour image with --save_intermediate); raises OSError."""
    from data.writers import write_png

    write_png(job.output, upscaled)
    if job.intermediate:
        write_png(job.intermediate, colour)


def write_and_record(job, colour: np.ndarray, upscaled: np.ndarray, output_dir: str) -> None:
    """`write_faithful`, then the job's manifest entry (the serial run's writer thread does both).

    Recorded as soon as written: a run killed between the write and its
    accounting still leaves the output known to `--skip_existing`.
    """
    from pipeline import manifest

    write_faithful(job, colour, upscaled)
    manifest.record(output_dir, [(job.source, job.output, [job.intermediate] if job.intermediate else [])])


def faithful_written(job, index: int, was_colour: bool, error: Optional[OSError] = None,
                     recorded: bool = False) -> Outcome:
    """The outcome of `write_faithful` for job `index`: written (`recorded`: by `write_and_record`) or failed."""
    if error is not None:
        return write_failure(index, error, was_colour)
    return Outcome(index, extra=[job.intermediate] if job.intermediate else [], was_colour=was_colour,
                   recorded=recorded)


def account(job, outcome: Outcome, output_dir: str, mode: str, result, log, rows: Optional[list] = None) -> bool:
    """Logs a job's outcome, records a written one in the manifest and adds it to `result`.

    Args:
        job: the `Job` as the run planned it (its paths are the ones reported).
        mode: "faithful" or "full" (full mode notes each colour input).
        rows: receives `(job, fidelity)` of written jobs that have fidelity numbers.

    Returns:
        True when the run must stop: a write failed because the disk is full
        or read-only, so every later write would fail too.
    """
    from data.io import ImageReadError, printable_path
    from pipeline import manifest

    errno = outcome.errno
    if outcome.reason is None:
        if mode == "full" and outcome.was_colour:
            result.notes.append(f"note: {job.source} is a colour image; its luminance was used.")
            log(result.notes[-1])
        try:
            if not outcome.recorded:
                manifest.record(output_dir, [(job.source, job.output, outcome.extra)])
        except OSError as e:
            outcome = write_failure(outcome.job, e)
            errno = e.errno
        else:
            result.written.append(job.output)
            if rows is not None and outcome.fidelity is not None:
                rows.append((job, outcome.fidelity))
            return False
    if not outcome.write_error:
        result.failed.append((job.source, outcome.reason))
        log(f"error: {ImageReadError(job.source, outcome.reason)}")
        return False
    reason = f"cannot write {job.output}: {outcome.reason}"
    result.failed.append((job.source, reason))
    log(f"error: {printable_path(job.source)}: {reason}")
    return errno in FATAL_WRITE_ERRNOS


def colour_note(count: int) -> str:
    """Faithful mode's closing note on colour inputs."""
    return (f"note: {count} input(s) were colour images; they were reduced to their luminance "
            "first (this tool colourises grey frames).")


def write_fidelity_csv(output_dir: str, rows: Sequence) -> None:
    """`fidelity.csv` of full mode's `--report`: one line per `(job, fidelity)`, in the given order."""
    import csv
    import io

    from common.files import atomic_write_bytes

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["input", "output", "luminance_mae", "flux_psnr_db"])
    for job, fid in rows:
        w.writerow([job.source, job.output, f"{fid.luminance_mae:.6f}", f"{fid.flux_psnr:.3f}"])
    atomic_write_bytes(os.path.join(output_dir, "fidelity.csv"), buf.getvalue().encode())


def summary(result, elapsed: float, output_dir: str, rate: bool) -> str:
    """The run's last line; `rate` adds images per second (faithful mode)."""
    line = (f"done: {len(result.written)} written, {len(result.skipped)} skipped (existing), "
            f"{len(result.failed)} failed, in {elapsed:.1f} s")
    if rate:
        line += f" ({len(result.written) / max(elapsed, 1e-9):.2f} images/s)"
    return f"{line} -> {os.path.abspath(output_dir)}"
