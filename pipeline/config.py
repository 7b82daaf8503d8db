"""The settings of a pipeline run: `RunConfig`, and full mode's `FullOptions` inside it.

Plain dataclasses, no TensorFlow: the command (`pipeline.run`), the
Python API (`pipeline.api_inputs.split_options`), compose and the Dask
workers all build and pass these. A `RunConfig` is consistent by
construction: in full mode `full` holds the `FullOptions` (made from `size`
and `batch_size` when not given, as the command does), in faithful mode it is
None, and full options given to a faithful run are an error.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from data.fits_io import DEFAULT_INTERVAL, DEFAULT_PERCENTILE, DEFAULT_STRETCH

#: The run's modes: faithful (the paper's sec. 5.2) and full resolution.
MODES = ("faithful", "full")


@dataclasses.dataclass(frozen=True)
class FullOptions:
    """Settings of full-resolution mode."""

    size: int = 224
    tile: int = 256
    tile_overlap: int = 64
    output_format: str = "png"  # png | png16 | tiff16 | fits
    linear_output: bool = False
    report: bool = False
    residual_map: bool = False
    stretch: str = DEFAULT_STRETCH
    interval: str = DEFAULT_INTERVAL
    percentile: float = DEFAULT_PERCENTILE
    tile_batch: int = 4  # tiles of a band upscaled per model call
    display_noise: bool = False  # FITS, linear-unit consistency: display as E[stretch(x + sky noise)]


def output_extension(options: FullOptions) -> str:
    """The extension of a full-mode output (`.png`, `.tif` or `.fits`)."""
    return {"fits": ".fits", "tiff16": ".tif"}.get(options.output_format, ".png")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Resolved settings of one pipeline run.

    Raises:
        ValueError: an unknown `mode`, or `full` options for a faithful run.
    """

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
    full: Optional[FullOptions] = None  # full mode's options (None given: from size and batch_size)
    precision: str = "float32"  # SR generator: float32 | mixed_float16 | mixed_bfloat16
    jit_compile: bool = False  # SR generator compiled with XLA
    consistency: str = "auto"  # pipeline.consistency mode: auto | bicubic | block | none
    colour_temperature: Optional[float] = None  # classification colouriser's temperature (None: its export's)
    executor: str = "serial"  # serial | dask (pipeline.dask_executor)
    dask_scheduler: Optional[str] = None  # dask: join this scheduler (tcp://HOST:PORT); None: a local cluster
    dask_workers: Optional[int] = None  # dask, local cluster: worker processes (None: one per CPU core)
    engine: Optional[str] = None  # auto | savedmodel | litert (None: pipeline.models.DEFAULT_ENGINE)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {MODES}")
        if self.mode == "faithful" and self.full is not None:
            raise ValueError("full-mode options (tile, output_format, report, ...) need mode 'full'")
        if self.mode == "full" and self.full is None:
            # As the command does: the working size and the batch size carry over.
            object.__setattr__(self, "full", FullOptions(size=self.size, tile_batch=max(1, self.batch_size)))
