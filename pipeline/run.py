"""`python -m pipeline.run --input DIR_OR_FILE --output DIR`: colourise, then 4x.

Faithful mode (the paper's sec. 5.2): every input, whatever its size, is reduced
to luminance, resized to 224x224, colourised, and super-resolved 4x to 896x896.
One PNG per input is written into `--output` (named after the input, never over
an input, never outside `--output`). Bad inputs get one line each and the rest
are still processed; the exit status is 1 if any input failed.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Optional, Sequence

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "An image/FITS file, or a folder of them.")
flags.DEFINE_string("output", "out", "Folder for the results (created if missing).")
flags.DEFINE_string("colorize_model", "checkpoints/colorize", "Exported colouriser SavedModel folder.")
flags.DEFINE_string("srgan_model", "checkpoints/srgan", "Exported SR generator SavedModel folder.")
flags.DEFINE_integer("size", 224, "Working size of the colouriser (paper sec. 5.2: 224; a multiple of 16).")
flags.DEFINE_integer("batch_size", 4, "Images per model call.")
flags.DEFINE_boolean("recursive", False, "Also process images in sub-folders of --input.")
flags.DEFINE_boolean("skip_existing", False, "Skip inputs whose output already exists (resume a killed run).")
flags.DEFINE_boolean("save_intermediate", False, "Also write the 224x224 colour stage as <name>_colour224.png.")
flags.DEFINE_boolean("progress", None, "Show a progress bar (default: when stderr is a terminal).")


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

    jobs = plan_jobs(sources, config.input, config.output, suffix=f"_colour_x{scale}",
                     save_intermediate=config.save_intermediate)
    if config.skip_existing:
        todo = [j for j in jobs if not os.path.isfile(j.output)]
        result.skipped = [j.source for j in jobs if os.path.isfile(j.output)]
    else:
        todo = jobs
    show = sys.stderr.isatty() if config.progress is None else config.progress
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


def main(argv: Sequence[str]) -> int:
    del argv
    if not FLAGS.input:
        raise app.UsageError("--input is required (an image/FITS file or a folder)")
    config = RunConfig(
        input=FLAGS.input, output=FLAGS.output, colorize_model=FLAGS.colorize_model,
        srgan_model=FLAGS.srgan_model, size=FLAGS.size, batch_size=FLAGS.batch_size,
        recursive=FLAGS.recursive, skip_existing=FLAGS.skip_existing,
        save_intermediate=FLAGS.save_intermediate, progress=FLAGS.progress,
    )
    from data.io import ImageReadError
    from pipeline.models import ModelLoadError

    try:
        result = run(config)
    except (ImageReadError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.failed:
        print(f"{len(result.failed)} input(s) failed:", file=sys.stderr)
        for path, reason in result.failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
