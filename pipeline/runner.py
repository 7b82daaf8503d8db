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
import threading
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


def _write_failed(job, e: OSError, result: "RunResult", log) -> bool:
    """Records a failed write; True when the run must stop (disk full, read-only)."""
    from data.io import printable_path

    reason = f"cannot write {job.output}: {e.strerror or e}"
    result.failed.append((job.source, reason))
    log(f"error: {printable_path(job.source)}: {reason}")
    return e.errno in FATAL_WRITE_ERRNOS


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


def run(config: RunConfig, log=print) -> RunResult:
    """Runs the pipeline over `config.input` (see `_run`); notes about single inputs
    (`data.io.InputWarning`: a FITS cube's plane, astropy's complaints) go to `log`
    as one `warning: <file>: ...` line each."""
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
        return _run(config, log)


def _run(config: RunConfig, log=print) -> RunResult:
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
    import numpy as np
    from tqdm import tqdm

    from data.io import ImageReadError
    from pipeline import manifest
    from pipeline.api import Pipeline
    from pipeline.inference import batched, collect_inputs, exclude_own_outputs, iter_loaded, plan_jobs
    from pipeline.models import describe_device
    from pipeline.overlap import OrderedWriter, StageClock

    if config.size % 16:
        raise ValueError(f"--size must be a multiple of 16, got {config.size}")
    result = RunResult()
    unsupported: list = []
    sources = collect_inputs(config.input, recursive=config.recursive, unsupported=unsupported)
    for path in unsupported:
        reason = "format not supported (read: PNG, JPEG, TIFF, GIF, BMP, WebP, FITS); convert it first"
        result.failed.append((path, reason))
        log(f"error: {ImageReadError(path, reason)}")
    if not sources:
        log(f"no image files (PNG/JPEG/TIFF/GIF/BMP/WebP/FITS) in {config.input}")
        return result
    check_output_folder(config.output)
    # The Python API's core: the command and `pipeline.Pipeline` compute alike.
    pipe = Pipeline.load(config.colorize_model, config.srgan_model, precision=config.precision,
                         jit_compile=config.jit_compile, colour_temperature=config.colour_temperature,
                         engine=config.engine)
    colorizer, upscaler, scale = pipe.colorizer, pipe.upscaler, pipe.scale
    log(f"device: {describe_device()}")
    log(f"colouriser: {colorizer.description}")
    log(f"super-resolution: {upscaler.description} (x{scale})")
    if not (colorizer.trained and upscaler.trained):
        log("WARNING: running with freshly initialised (untrained) models: the output shows the "
            "pipeline working, not real colours or detail.")

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
    show = sys.stderr.isatty() if config.progress is None else config.progress
    if config.mode == "full":
        _run_full(todo, colorizer, upscaler, scale, full, config, result, show, log)
        return result
    bar = tqdm(total=len(todo), unit="img", desc="colourise+x%d" % scale, disable=not show)
    start = time.perf_counter()
    colour_notes = 0
    stopped = False
    clock = StageClock()

    manifest_lock = threading.Lock()

    def settle(finished) -> bool:
        """Counts finished writes in order; True on a fatal write error."""
        for job, error in finished:
            if isinstance(error, OSError):
                if _write_failed(job, error, result, log):
                    return True
                continue
            if error is not None:
                raise error
            result.written.append(job.output)
        return False

    # Decoding of the next batch overlaps this batch's compute (`iter_loaded`), and the
    # encoding/writing of this batch's outputs overlaps the next batch's compute (`OrderedWriter`).
    fatal = lambda e: isinstance(e, OSError) and e.errno in FATAL_WRITE_ERRNOS  # noqa: E731
    with OrderedWriter(depth=2 * max(1, config.batch_size), clock=clock, fatal=fatal) as writer:
        for batch, loaded in iter_loaded(batched(todo, max(1, config.batch_size)), config.size, clock=clock):
            if stopped:
                break
            ready, greys = [], []
            for job, item in zip(batch, loaded):
                if isinstance(item, ImageReadError):
                    result.failed.append((job.source, item.reason))
                    log(f"error: {item}")
                    bar.update(1)
                    continue
                grey, was_colour = item
                colour_notes += was_colour
                ready.append(job)
                greys.append(grey)
            if not ready:
                continue
            colour, upscaled = pipe.faithful_batch(np.stack(greys), config, clock)
            for job, c, u in zip(ready, colour, upscaled):
                finished = writer.submit(job, _write_outputs, job, c, u, config.output, manifest_lock)
                stopped = settle(finished) or stopped
                if stopped:
                    break
            bar.update(len(ready))
            bar.set_postfix(img_per_s=f"{len(result.written) / max(time.perf_counter() - start, 1e-9):.2f}")
        if not stopped:
            stopped = settle(writer.drain())
    bar.close()
    if stopped:
        _stop_notice(todo, result, log)
    if colour_notes:
        note = (f"note: {colour_notes} input(s) were colour images; they were reduced to their luminance "
                "first (this tool colourises grey frames).")
        result.notes.append(note)
        log(note)
    elapsed = time.perf_counter() - start
    result.wall_seconds, result.stage_seconds = elapsed, dict(clock.seconds)
    log(f"done: {len(result.written)} written, {len(result.skipped)} skipped (existing), "
        f"{len(result.failed)} failed, in {elapsed:.1f} s "
        f"({len(result.written) / max(elapsed, 1e-9):.2f} images/s) -> {os.path.abspath(config.output)}")
    return result


def _write_outputs(job, colour, upscaled, output_dir: str, manifest_lock) -> None:
    """One faithful job's files, then its manifest entry (in a writer thread).

    Recorded as soon as written, as before the writes overlapped: a run killed
    after this leaves the output known to `--skip_existing`. The lock keeps the
    writers' manifest updates one at a time.
    """
    from data.io import write_png
    from pipeline import manifest

    write_png(job.output, upscaled)
    if job.intermediate:
        write_png(job.intermediate, colour)
    with manifest_lock:
        manifest.record(output_dir, [(job.source, job.output, [job.intermediate])])


def _remove_stale_temporaries(jobs) -> None:
    """Deletes temporary files that a killed earlier run left for these outputs.

    `common.training.atomic_file` writes `.tmp-<pid>-XXXX<name>` beside `<name>`
    and renames it when complete; a killed process leaves the temporary file
    (never a truncated output). Only temporaries of this run's own outputs are
    touched, and only those whose writer is gone: a second run on the same
    folders must not delete the live temporary of the first (pid still running).
    """
    import glob
    import re

    from common.training import temporary_owner_alive

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


def _run_full(jobs, colorizer, upscaler, scale, options, config, result, show, log) -> None:
    """Full-resolution mode, one frame at a time, with a progress bar over tiles."""
    import csv
    import io

    from tqdm import tqdm

    from common.training import atomic_write_bytes
    from data.io import ImageReadError
    from pipeline import manifest
    from pipeline.full import process_full
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
            fidelity, was_colour = process_full(job.source, job.output, colorizer, upscaler, scale, options, progress,
                                                config.consistency, clock)
        except ImageReadError as e:
            result.failed.append((job.source, e.reason))
            log(f"error: {e}")
            continue
        except OSError as e:
            if _write_failed(job, e, result, log):
                bar.close()
                _stop_notice(jobs, result, log)
                break
            continue
        finally:
            bar.close()
        if was_colour:
            result.notes.append(f"note: {job.source} is a colour image; its luminance was used.")
            log(result.notes[-1])
        extra = [os.path.splitext(job.output)[0] + "_residual.png"] if options.report and options.residual_map else []
        try:
            manifest.record(config.output, [(job.source, job.output, extra)])
        except OSError as e:
            if _write_failed(job, e, result, log):
                _stop_notice(jobs, result, log)
                break
            continue
        result.written.append(job.output)
        if fidelity is not None:
            rows.append((job.source, job.output, fidelity))
    if rows:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["input", "output", "luminance_mae", "flux_psnr_db"])
        for src, out, fid in rows:
            w.writerow([src, out, f"{fid.luminance_mae:.6f}", f"{fid.flux_psnr:.3f}"])
        atomic_write_bytes(os.path.join(config.output, "fidelity.csv"), buf.getvalue().encode())
    elapsed = time.perf_counter() - start
    result.wall_seconds, result.stage_seconds = elapsed, dict(clock.seconds)
    log(f"done: {len(result.written)} written, {len(result.skipped)} skipped (existing), "
        f"{len(result.failed)} failed, in {elapsed:.1f} s -> {os.path.abspath(config.output)}")
