"""The pipeline job as library code: `run(RunConfig)` over files (used by `pipeline.run`).

Faithful mode (the paper's sec. 5.2) and full-resolution mode; see `pipeline.run`
for the command line. Never raises for a bad input file: each one is reported
and the rest are processed.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Optional


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Resolved settings of one pipeline run."""

    input: str
    output: str
    colorize_model: str = "checkpoints/colorize"
    srgan_model: str = "checkpoints/srgan"
    size: int = 224
    batch_size: int = 4
    recursive: bool = False
    skip_existing: bool = False
    save_intermediate: bool = False
    progress: Optional[bool] = None
    mode: str = "faithful"
    full: Optional[object] = None  # pipeline.full.FullOptions in full mode


@dataclasses.dataclass
class RunResult:
    """What a run did: outputs written, inputs skipped, and failures (path, reason)."""

    written: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)


def run(config: RunConfig, log=print) -> RunResult:
    """Runs the faithful pipeline over `config.input`.

    Args:
        config: the run's settings.
        log: where to send progress messages (one string per call).

    Returns:
        A `RunResult`. Never raises for a bad input file; raises `ModelLoadError`
        for a bad model and `ImageReadError` when `--input` does not exist.
    """
    import numpy as np
    from tqdm import tqdm

    from data.io import ImageReadError, write_png
    from pipeline.inference import batched, collect_inputs, colourise_and_upscale, load_grey, plan_jobs
    from pipeline.models import describe_device, load_model, model_scale

    if config.size % 16:
        raise ValueError(f"--size must be a multiple of 16, got {config.size}")
    result = RunResult()
    sources = collect_inputs(config.input, recursive=config.recursive)
    if not sources:
        log(f"no image files (PNG/JPEG/TIFF/FITS) in {config.input}")
        return result
    colorizer = load_model(config.colorize_model, "colorize")
    upscaler = load_model(config.srgan_model, "srgan")
    scale = model_scale(upscaler)
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
    jobs = plan_jobs(sources, config.input, config.output, suffix=f"_colour_x{scale}",
                     save_intermediate=config.save_intermediate and config.mode == "faithful", ext=ext)
    if config.skip_existing:
        todo = [j for j in jobs if not os.path.isfile(j.output)]
        result.skipped = [j.source for j in jobs if os.path.isfile(j.output)]
    else:
        todo = jobs
    show = sys.stderr.isatty() if config.progress is None else config.progress
    if config.mode == "full":
        _run_full(todo, colorizer, upscaler, scale, full, config, result, show, log)
        return result
    bar = tqdm(total=len(todo), unit="img", desc="colourise+x%d" % scale, disable=not show)
    start = time.perf_counter()
    colour_notes = 0
    for batch in batched(todo, max(1, config.batch_size)):
        ready, greys = [], []
        for job in batch:
            try:
                grey, was_colour = load_grey(job.source, config.size)
            except ImageReadError as e:
                result.failed.append((job.source, e.reason))
                log(f"error: {e}")
                bar.update(1)
                continue
            colour_notes += was_colour
            ready.append(job)
            greys.append(grey)
        if not ready:
            continue
        colour, upscaled = colourise_and_upscale(np.stack(greys), colorizer, upscaler)
        for job, c, u in zip(ready, colour, upscaled):
            try:
                write_png(job.output, u)
                if job.intermediate:
                    write_png(job.intermediate, c)
            except OSError as e:
                result.failed.append((job.source, f"cannot write {job.output}: {e.strerror or e}"))
                log(f"error: {job.source}: cannot write {job.output}: {e.strerror or e}")
                continue
            result.written.append(job.output)
        bar.update(len(ready))
        bar.set_postfix(img_per_s=f"{len(result.written) / max(time.perf_counter() - start, 1e-9):.2f}")
    bar.close()
    if colour_notes:
        note = (f"note: {colour_notes} input(s) were colour images; they were reduced to their luminance "
                "first (this tool colourises grey frames).")
        result.notes.append(note)
        log(note)
    elapsed = time.perf_counter() - start
    log(f"done: {len(result.written)} written, {len(result.skipped)} skipped (existing), "
        f"{len(result.failed)} failed, in {elapsed:.1f} s "
        f"({len(result.written) / max(elapsed, 1e-9):.2f} images/s) -> {os.path.abspath(config.output)}")
    return result


def _run_full(jobs, colorizer, upscaler, scale, options, config, result, show, log) -> None:
    """Full-resolution mode, one frame at a time, with a progress bar over tiles."""
    import csv
    import io

    from tqdm import tqdm

    from common.training import atomic_write_bytes
    from data.io import ImageReadError
    from pipeline.full import process_full

    rows = []
    start = time.perf_counter()
    for job in jobs:
        bar = tqdm(total=0, unit="tile", desc=os.path.basename(job.source), disable=not show)

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        try:
            fidelity, was_colour = process_full(job.source, job.output, colorizer, upscaler, scale, options, progress)
        except ImageReadError as e:
            result.failed.append((job.source, e.reason))
            log(f"error: {e}")
            continue
        except OSError as e:
            result.failed.append((job.source, f"cannot write {job.output}: {e.strerror or e}"))
            log(f"error: {job.source}: cannot write {job.output}: {e.strerror or e}")
            continue
        finally:
            bar.close()
        if was_colour:
            result.notes.append(f"note: {job.source} is a colour image; its luminance was used.")
            log(result.notes[-1])
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
    log(f"done: {len(result.written)} written, {len(result.skipped)} skipped (existing), "
        f"{len(result.failed)} failed, in {elapsed:.1f} s -> {os.path.abspath(config.output)}")
