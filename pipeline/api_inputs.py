"""What the Python API (`pipeline.api`) accepts: arrays, modes and options, checked before any model runs.

`as_image` turns a numpy array of any accepted shape and dtype into the
pipeline's float image; `split_options` sorts keyword options into the run's
`RunConfig` and full mode's `FullOptions`, refusing those that do not apply.
Both raise `PipelineInputError` with the reason. No TensorFlow here.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from data.io import ImageReadError, check_frame_size
from pipeline.config import MODES, FullOptions, RunConfig

#: What error messages call an array input.
ARRAY = "<array>"

# RunConfig fields about files, model loading or the whole run, not one image.
_RUN_LEVEL = {"input", "output", "colorize_model", "srgan_model", "recursive", "skip_existing",
              "save_intermediate", "progress", "mode", "full", "precision", "jit_compile",
              "colour_temperature", "executor", "dask_scheduler", "dask_workers",
              "engine"}
# Of those, the ones a run over files (`Pipeline.process_files`) takes too.
_FILES_RUN_LEVEL = {"recursive", "skip_existing", "save_intermediate", "progress"}
# FullOptions fields about output files (the API returns arrays and HDUs).
_FILE_LEVEL = {"output_format", "report", "residual_map"}
# FullOptions fields that only FITS input has a use for.
_FITS_LEVEL = {"stretch", "interval", "percentile", "linear_output"}
_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)


class PipelineInputError(ImageReadError):
    """An image, HDU or option the pipeline cannot use.

    A `ValueError` (through `data.io.ImageReadError`): `.path` names the input
    (a file name, "<array>" or "<HDU>") and `.reason` says what is wrong.
    """


def as_image(image: Any, name: str = ARRAY) -> np.ndarray:
    """An array input as the pipeline's float32 `[H, W, 1|3]` in [0, 1], exactly as a file would be read.

    Args:
        image: `[H, W]` or `[H, W, C]` with C in 1..4 (2 and 4: alpha, composited
            onto black); uint8, uint16 or float in [0, 1] (NaN -> 0).
        name: what error messages call it.

    Raises:
        PipelineInputError: another dtype or shape, a float outside [0, 1], no
            finite pixel, or fewer than 2x2 pixels.
    """
    from data.io import _channels_last
    from data.normalize import normalize

    a = np.asarray(image)
    if a.dtype not in _DTYPES:
        raise PipelineInputError(name, f"dtype {a.dtype} not supported; give uint8, uint16 or float in [0, 1]")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 2, 3, 4)):
        raise PipelineInputError(name, f"shape {a.shape} not supported; give [H, W] or [H, W, C] with C = 1, 3 "
                                       "(or 2, 4 with alpha)")
    check_frame_size(name, a.shape[1], a.shape[0], PipelineInputError)
    if a.dtype.kind == "f":
        nan = np.isnan(a)
        if nan.all():
            raise PipelineInputError(name, "no finite pixel values (all NaN)")
        lo, hi = float(a[~nan].min()), float(a[~nan].max())
        if not (lo >= 0.0 and hi <= 1.0):
            raise PipelineInputError(name, f"float values must be in [0, 1] (NaN allowed), got [{lo:g}, {hi:g}]; "
                                           "stretch raw data first (or use process_fits)")
    try:
        # The same two steps as `data.io.read_image` on a decoded raster.
        return normalize(_channels_last(name, a))
    except ImageReadError as e:
        raise PipelineInputError(name, e.reason) from e


def split_options(mode: str, options: dict, fits: bool = False, files: bool = False):
    """Splits keyword options onto the command's own dataclasses: (RunConfig, its `full` options or None).

    `files`: the options of a run over files (`Pipeline.process_files`), which
    also takes the command's file-level options (`skip_existing`, `output_format`, ...).

    Raises:
        PipelineInputError: an unknown mode or option, or one that does not
            apply here (with the reason).
    """
    if mode not in MODES:
        raise PipelineInputError(ARRAY, f"unknown mode {mode!r}; choose from {MODES}")
    run_fields = {f.name for f in dataclasses.fields(RunConfig)} - _RUN_LEVEL
    full_fields = {f.name for f in dataclasses.fields(FullOptions)}
    if files:
        run_fields |= _FILES_RUN_LEVEL
    else:
        full_fields -= _FILE_LEVEL
    if not (fits or files):
        full_fields -= _FITS_LEVEL
    allowed = run_fields | (full_fields if mode == "full" else set())
    bad = sorted(set(options) - allowed)
    if bad:
        why = {k: "applies to the command's files, models or run (give models to Pipeline.load; "
                  "files to process_files)" for k in _RUN_LEVEL | _FILE_LEVEL}
        why.update({k: "applies to FITS input (process_fits) only" for k in _FITS_LEVEL})
        why.update({k: "applies to mode='full' only" for k in full_fields})
        reasons = "; ".join(f"{k!r} {why.get(k, 'is not an option')}" for k in bad)
        raise PipelineInputError(ARRAY, f"{reasons} (options here: {', '.join(sorted(allowed))})")
    config = RunConfig(input="", output="", mode=mode, **{k: v for k, v in options.items() if k in run_fields})
    if config.size % 16 or config.size <= 0:
        raise PipelineInputError(ARRAY, f"size must be a positive multiple of 16, got {config.size}")
    full = None
    if mode == "full":
        # As the command does: the working size and the batch size carry over.
        base = {"size": config.size, "tile_batch": config.batch_size}
        full = FullOptions(**{**base, **{k: v for k, v in options.items() if k in full_fields}})
        if full.tile <= 2 * full.tile_overlap:
            raise PipelineInputError(ARRAY, f"tile ({full.tile}) must be more than twice tile_overlap "
                                            f"({full.tile_overlap})")
        config = dataclasses.replace(config, full=full)
    return config, full
