"""The compose job as library code: filter frames in, composite (x4) PNG/FITS out.

`compose(ComposeConfig)` is what `python -m pipeline.compose` runs (and
`pipeline.Pipeline.compose`, through `compose_config`): it reads and orders the
frames, builds the composite on the reference grid (`pipeline.composite`),
then takes the existing full-resolution path (`pipeline.full.upscaled_bands`):
overlapping tiles, the SR model applied the `sr_on` way
(`pipeline.compose_models`), each tile made consistent with the composite
(`--consistency auto`: antialiased bicubic on its display values). The result
is written as PNG (8/16-bit, transparent where a filter has no data) and as a
FITS cube `[3, sH, sW]` (NaN where a filter has no data) with the reference
header, one HISTORY line per input frame and the WCS rescaled
(`pipeline.fits_out`). One filter has no colour to measure: it falls back to
`pipeline.run --mode full`.

Measured (`bench/compose_sr.py`: 40 held-out Hubble Stellarium pictures and 9
Hubble Deep Field crops, 256 px, LR by antialiased bicubic /4, each mode with
the consistency step; RGB PSNR with 4 px shaved; |bias| per channel in levels;
time per image incl. consistency, relative, on a shared CPU):

    sr_on       PSNR (dB)  vs bicubic  better than rgb  |bias| R/G/B   time
    rgb         33.82      +1.98       -                0.03/0.03/0.03  1x
    channels    33.95      +2.11       39 of 49         0.03/0.02/0.02  ~1.7x
    luminance   33.81      +1.98       24 of 49         0.03/0.03/0.03  ~1.35x

So `channels` is the default (Stellarium +0.07 dB, 30 of 40; HDF +0.36 dB, 9
of 9), at three model passes per tile; `rgb` is the one-pass choice.

Two filters, G from the colouriser (`--two_filter_green colouriser`) against the
mean, same pictures split into R and B with G as truth: MSE of G 39.7 vs 36.7
levels^2 (Stellarium 36.5 vs 32.8, better on 14 of 40; HDF 54.0 vs 54.2, 5 of
9). The mean stays the default.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from data.formats import split_extension
from pipeline.compose_models import GREENS, SR_ON
from pipeline.composite import Composite, CompositeOptions, ComposeError, make_composite, order_frames, read_frame
from pipeline.config import FullOptions, RunConfig

FORMATS = ("png", "png16", "fits")
_RUN = RunConfig(input="", output="")


@dataclasses.dataclass(frozen=True)
class ComposeConfig:
    """Resolved settings of one compose run.

    Attributes:
        filters: 1-3 FITS files of one field, one per filter.
        output: folder for the results (created if missing).
        reference: the frame whose grid and header the result gets (a path or
            file name among `filters`); None: the first given.
        order: `wavelength` (red -> blue) or `given`.
        composite: how the composite is made (`pipeline.composite.CompositeOptions`).
        upscale: super-resolve the composite (False: the composite alone).
        sr_on: how the SR model sees the composite, one of
            `pipeline.compose_models.SR_ON` (`rgb`, `channels`, `luminance`).
        consistency: `pipeline.consistency` mode after SR; `auto` is
            antialiased bicubic on the composite's display values.
        two_filter_green: two filters only: `mean` (G = (R + B) / 2) or
            `colouriser` (`pipeline.compose_models.colouriser_green`).
        formats: any of `FORMATS`.
        full: tile sizes and the colouriser's working size (one filter, or
            `two_filter_green="colouriser"`).
    """

    filters: tuple
    output: str
    reference: Optional[str] = None
    order: str = "wavelength"
    composite: CompositeOptions = CompositeOptions()
    upscale: bool = True
    sr_on: str = "channels"  # measured best: bench/compose_sr.py
    consistency: str = "auto"
    two_filter_green: str = "mean"
    srgan_model: str = _RUN.srgan_model
    colorize_model: str = _RUN.colorize_model
    formats: tuple = ("png", "fits")
    full: FullOptions = FullOptions()


#: FullOptions fields that apply to compose (the others are the single-frame path's).
_FULL_FIELDS = ("size", "tile", "tile_overlap", "tile_batch")


def compose_config(filters: Sequence[str], output: str, **options) -> ComposeConfig:
    """A `ComposeConfig` from flat keyword options (the Python API's way to give them).

    Args:
        filters: 1-3 FITS files.
        output: the results' folder.
        **options: fields of `ComposeConfig` (`reference`, `order`, `upscale`,
            `sr_on`, `consistency`, `two_filter_green`, `formats`, model
            paths), of `pipeline.composite.CompositeOptions` (`stretch`, `Q`,
            `balance`, ...) and `size`, `tile`, `tile_overlap`, `tile_batch`.

    Raises:
        ValueError: an option that is none of those (the message lists them).
    """
    own = {f.name for f in dataclasses.fields(ComposeConfig)} - {"filters", "output", "composite", "full"}
    comp = {f.name for f in dataclasses.fields(CompositeOptions)}
    bad = sorted(set(options) - own - comp - set(_FULL_FIELDS))
    if bad:
        raise ValueError(f"unknown compose option {bad[0]!r}; options: "
                         f"{', '.join(sorted(own | comp | set(_FULL_FIELDS)))}")
    base = ComposeConfig(filters=(), output="")
    return ComposeConfig(
        filters=tuple(filters), output=output,
        composite=CompositeOptions(**{k: v for k, v in options.items() if k in comp}),
        full=dataclasses.replace(base.full, **{k: v for k, v in options.items() if k in _FULL_FIELDS}),
        **{k: (tuple(v) if k == "formats" else v) for k, v in options.items() if k in own})


@dataclasses.dataclass
class ComposeResult:
    written: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    composite: Optional[Composite] = None


def compose(config: ComposeConfig, log: Callable[[str], None] = print, upscaler=None,
            colorizer=None) -> ComposeResult:
    """Runs the compose job.

    Args:
        config: the settings.
        log: where progress lines go.
        upscaler, colorizer: already loaded models (`pipeline.models.LoadedModel`,
            as `pipeline.Pipeline` holds them); None loads `config.srgan_model` /
            `config.colorize_model` when needed. One filter always goes through
            `pipeline.run` with the model paths.

    Raises:
        ImageReadError: an unreadable frame or one without a celestial WCS.
        ComposeError: frames that cannot go together (no overlap, unknown
            wavelength, more than three, an output that would overwrite an input).
        ModelLoadError, OutputError, ValueError: bad model, output folder, settings.
    """
    from pipeline.runner import check_output_folder

    paths = list(config.filters)
    bad = [f for f in config.formats if f not in FORMATS]
    if bad or not config.formats:
        raise ValueError(f"unknown output format {bad[0] if bad else '(none)'!r}; choose from {FORMATS}")
    if not 1 <= len(paths) <= 3:
        raise ComposeError(f"--filters takes 1 to 3 frames (R, G, B), got {len(paths)}")
    _check_choices(config)
    check_output_folder(config.output)
    if len(paths) == 1:
        return _one_filter(paths[0], config, log)
    frames = [read_frame(p) for p in paths]
    reference = frames[_reference_index(paths, config.reference)]
    ordered = order_frames(frames, config.order)
    names = "RGB" if len(ordered) == 3 else "RB"
    log("compose: " + ", ".join(
        f"{ch}={f.name} ({f.filter or 'no filter'}, "
        f"{'%.0f A from %s' % (f.wavelength, f.wavelength_source) if f.wavelength else 'wavelength unknown'})"
        for ch, f in zip(names, ordered)) + (" (order as given)" if config.order == "given" else ""))
    composite = make_composite(ordered, reference, config.composite)
    if len(ordered) == 2 and config.two_filter_green == "colouriser":
        _colouriser_green(composite, config, colorizer, log)
    elif len(ordered) == 2:
        log("compose: two filters: green is their mean")
    h, w = reference.data.shape
    common = float(composite.coverage.all(axis=-1).mean())
    log(f"compose: onto the grid of {reference.name} ({w}x{h}); all filters cover {100 * common:.1f}% of it")
    result = ComposeResult(composite=composite)
    _write_outputs(composite, paths, config, result, log, upscaler)
    return result


def _check_choices(config: ComposeConfig) -> None:
    from pipeline.consistency import MODES

    for name, value, choices in (("sr_on", config.sr_on, SR_ON), ("consistency", config.consistency, MODES),
                                 ("two_filter_green", config.two_filter_green, GREENS)):
        if value not in choices:
            raise ValueError(f"unknown --{name} {value!r}; choose from {', '.join(choices)}")


def _colouriser_green(composite: Composite, config: ComposeConfig, colorizer, log) -> None:
    """Two filters: G of `composite` replaced in place by the colouriser's proposal; R and B untouched."""
    from pipeline.compose_models import colouriser_green
    from pipeline.models import load_found

    colorizer = colorizer if colorizer is not None else load_found(config.colorize_model, "colorize")
    rgb = composite.rgb[::-1]  # the colouriser sees the picture upright
    green = colouriser_green(rgb, colorizer, config.full.size)[::-1]
    composite.rgb[..., 1] = np.where(composite.coverage[..., 1], green, 0.0)
    line = (f"compose G: colouriser's G/mean(R,B) ratio times mean(R,B) (two filters; R, B as measured; "
            f"{os.path.basename(os.path.normpath(colorizer.path))} at {config.full.size})")
    composite.notes[:] = [line if n.startswith("compose G: mean") else n for n in composite.notes]
    log("compose: two filters: green from the learned colouriser's G/mean(R,B) ratio; R and B as measured")


def _reference_index(paths: Sequence[str], reference: Optional[str]) -> int:
    if reference is None:
        return 0
    for i, p in enumerate(paths):
        if reference in (p, os.path.basename(p)) or os.path.abspath(reference) == os.path.abspath(p):
            return i
    raise ValueError(f"--reference {reference} is not one of --filters ({', '.join(paths)})")


def _one_filter(path: str, config: ComposeConfig, log) -> ComposeResult:
    """One frame: no colour to measure, so the learned colouriser (full mode) does it."""
    from pipeline.runner import run

    if not config.upscale:
        raise ComposeError(f"{path}: one filter and --noupscale: there is nothing to compose; give 2 or 3 "
                           "filters, or drop --noupscale to colourise it")
    note = (f"one filter ({os.path.basename(path)}): no colour to measure; falling back to the learned "
            "colouriser (pipeline.run --mode full)")
    log(note)
    result = ComposeResult(notes=[note])
    for fmt in dict.fromkeys("fits" if f == "fits" else f for f in config.formats):
        run_config = RunConfig(input=path, output=config.output, colorize_model=config.colorize_model,
                               srgan_model=config.srgan_model, size=config.full.size, mode="full",
                               full=dataclasses.replace(config.full, output_format=fmt), progress=False)
        done = run(run_config, log=log)
        if done.failed:
            raise ComposeError(f"{done.failed[0][0]}: {done.failed[0][1]}")
        result.written += done.written
    return result


def _stem(path: str) -> str:
    return split_extension(os.path.basename(path))[0]


def output_paths(reference_path: str, output: str, formats: Sequence[str], scale: int) -> dict:
    """{format: output file} named after the reference frame: `<stem>_composite[_x4][.png|_16bit.png|.fits]`."""
    base = os.path.join(output, _stem(reference_path) + "_composite" + (f"_x{scale}" if scale > 1 else ""))
    ext = {"png": ".png", "png16": "_16bit.png", "fits": ".fits"}
    return {f: base + ext[f] for f in formats}


_SR_ON_WORDS = {"rgb": "the RGB composite", "channels": "each channel alone",
                "luminance": "the luminance (chroma bicubic)"}


def _write_outputs(composite: Composite, paths, config: ComposeConfig, result: ComposeResult, log,
                   upscaler=None) -> None:
    import tempfile

    rgb, cover = composite.display()
    h, w = rgb.shape[:2]
    scale, history, bands = 1, list(composite.notes), None
    if config.upscale:
        from pipeline.compose_models import SROnUpscaler
        from pipeline.full import correction, upscaled_bands
        from pipeline.models import describe_device, load_found, model_scale

        upscaler = upscaler if upscaler is not None else load_found(config.srgan_model, "srgan")
        scale = model_scale(upscaler)
        log(f"super-resolution: {upscaler.description} (x{scale}) on {describe_device()}, on "
            f"{_SR_ON_WORDS[config.sr_on]}")
        if not upscaler.trained:
            log("WARNING: the SR model is freshly initialised (untrained): the output shows the pipeline "
                "working, not real detail.")
        o = config.full
        operator = correction(config.consistency)[0]
        # One card (72 characters): --sr_on, tiles, the consistency operator.
        history.append(f"compose: x{scale} SR --sr_on {config.sr_on}, tiles {o.tile}/{o.tile_overlap}px, "
                       f"consistency {operator or 'none'}")
        # The full-resolution path's tiling and consistency step, the model applied the sr_on way.
        bands = _with_tops(upscaled_bands(rgb, SROnUpscaler(upscaler, config.sr_on), scale, o,
                                          consistency=config.consistency))
    targets = output_paths(composite.reference.path, config.output, config.formats, scale)
    inputs = {os.path.realpath(p) for p in paths}
    for target in targets.values():
        if os.path.realpath(target) in inputs:
            raise ComposeError(f"{target}: is one of the inputs; pick another --output")
    H, W = h * scale, w * scale
    spool, out, chunk = None, rgb, 64 * scale
    if bands is not None and len(targets) > 1:
        # Several writers read the same SR result: spool it once to a disk-backed array.
        spool = tempfile.NamedTemporaryFile(prefix=".compose-", suffix=".f32", dir=config.output)
        out = np.memmap(spool.name, np.float32, "w+", shape=(H, W, 3))
        for top, sr in bands:
            out[top : top + sr.shape[0]] = sr
        bands = None
    try:
        for fmt, target in targets.items():
            # The composite itself, or the spooled SR result, is read again by each writer.
            src = bands if bands is not None else ((i, out[i : i + chunk]) for i in range(0, H, chunk))
            masked = _with_coverage(src, cover, scale)
            if fmt == "fits":
                _write_fits(target, masked, composite, H, W, scale, history)
            else:
                _write_png(target, masked, H, W, bool(cover.all()), 16 if fmt == "png16" else 8)
            result.written.append(target)
            log(f"wrote {target} ({W}x{H})")
    finally:
        if spool is not None:
            spool.close()


def _with_tops(bands) -> Iterator[tuple[int, np.ndarray]]:
    """(first output row, band) for bands given top to bottom."""
    top = 0
    for band in bands:
        yield top, band
        top += band.shape[0]


def _with_coverage(bands, cover: np.ndarray, scale: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rgb rows, coverage rows bool `[rows, W, 3]`) at the output scale, top to bottom.

    Bands start and end on whole input rows (multiples of `scale` output rows).
    """
    for top, rows in bands:
        c = cover[top // scale : (top + rows.shape[0]) // scale]
        yield np.asarray(rows, np.float32), np.repeat(np.repeat(c, scale, axis=0), scale, axis=1)


def _write_fits(path, masked, composite: Composite, H, W, scale, history) -> None:
    from pipeline.fits_out import fits_header_for, write_fits_stream

    base, dropped = _without_lookup_tables(composite.reference.header)
    if dropped:
        history = history + ["compose: D2IM/CPDIS lookup tables dropped (not in this file)"]
    header = fits_header_for(base, H, W, scale, None, False, history)
    for i, f in enumerate(composite.frames, start=1):
        if f is not None:
            header[f"CMPFIL{i}"] = (str(f.filter or "")[:60], f"filter of plane {i}")
            header[f"CMPWAV{i}"] = (float(f.wavelength or 0.0), f"Angstrom, plane {i} (0: unknown)")
            header[f"CMPSRC{i}"] = (f.name[-60:], f"frame of plane {i}")
    header["CMPGAPS"] = ("NaN", "pixels a filter does not cover are NaN")
    write_fits_stream(path, (np.where(c, rgb, np.nan) for rgb, c in masked), header)


def _write_png(path, masked, H, W, full_cover: bool, bits: int) -> None:
    if full_cover:
        from pipeline.full import write_png_stream

        write_png_stream(path, (rgb for rgb, _ in masked), H, W, bits=bits)
        return
    import png

    from common.files import atomic_file
    from data.normalize import to_uint8, to_uint16
    from data.writers import PNG_COMPRESSION

    quant = to_uint8 if bits == 8 else to_uint16
    opaque, dtype = (255, np.uint8) if bits == 8 else (65535, np.uint16)

    def rows():
        for rgb, c in masked:
            # Opaque only where every filter has data: a pixel missing one band has no true colour.
            alpha = np.where(c.all(axis=-1, keepdims=True), opaque, 0).astype(dtype)
            q = np.concatenate([quant(rgb), alpha], axis=-1)
            yield from q.reshape(q.shape[0], -1)

    # RGBA: pipeline.full.write_png_stream writes RGB only; gaps must be transparent, never black sky.
    with atomic_file(path) as f:
        png.Writer(width=W, height=H, bitdepth=bits, greyscale=False, alpha=True,
                   compression=PNG_COMPRESSION).write(f, rows())


def _without_lookup_tables(header):
    """(copy of `header` without distortion-paper lookup-table keywords, whether any were there).

    HST frames point D2IM/CPDIS at image extensions of their own file; the
    output has none, and the tables are on the input pixel grid.
    """
    import re

    out = header.copy()
    keys = [k for k in out.keys()
            if re.fullmatch(r"(CPDIS|CPERR|DP|DQ|D2IMDIS|D2IMERR|D2IM)\d|D2IMEXT|NPOLEXT|AXISCORR", k.split(".")[0])]
    for k in keys:
        out.remove(k, ignore_missing=True, remove_all=True)
    return out, bool(keys)
