"""Full-resolution mode: the whole frame, in colour, `scale` times larger.

The paper shrinks a raw frame to 224x224 and ends at 896x896. Here, as Zhang et
al. and DeOldify do, the colouriser predicts chroma (UV) at its working size and
that chroma is upsampled onto the frame's own full-resolution luminance, so the
luminance is the input's, pixel for pixel. The colour frame is then
super-resolved in overlapping, feather-blended tiles and streamed to disk band by
band: memory is bounded by the tile band, not by the frame.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterator, Optional

import numpy as np
from scipy import ndimage

from common.files import atomic_file, atomic_write_bytes
from data.colour import compose_rgb, rgb_to_luma, rgb_to_yuv
from data.normalize import to_uint8, to_uint16
from data.writers import PNG_COMPRESSION
from pipeline.config import FullOptions
from pipeline.fits_out import fits_header_for, write_fits_stream
from pipeline.tiling import iter_upscaled_bands


class ColourFrame:
    """The colourised full-resolution frame, computed lazily for any region.

    Args:
        grey: `[H, W, 1]` luminance in [0, 1] (array or memmap).
        uv_small: `[S, S', 2]` chroma predicted at the working size.
    """

    def __init__(self, grey, uv_small: np.ndarray) -> None:
        self.grey = grey
        self.uv_small = np.asarray(uv_small, np.float32)
        self.shape = (grey.shape[0], grey.shape[1], 3)

    def chroma(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Bilinear chroma `[height, width, 2]` at those full-resolution pixel centres."""
        H, W = self.shape[:2]
        sh, sw = self.uv_small.shape[:2]
        yy = (np.arange(top, top + height) + 0.5) * sh / H - 0.5
        xx = (np.arange(left, left + width) + 0.5) * sw / W - 0.5
        gy, gx = np.meshgrid(yy, xx, indexing="ij")
        return np.stack(
            [ndimage.map_coordinates(self.uv_small[..., k], [gy, gx], order=1, mode="nearest") for k in range(2)],
            axis=-1,
        )

    def __getitem__(self, index) -> np.ndarray:
        rows, cols = index[0], index[1]
        top, bottom, _ = rows.indices(self.shape[0])
        left, right, _ = cols.indices(self.shape[1])
        y = np.asarray(self.grey[top:bottom, left:right], np.float32)
        # Out-of-gamut chroma is desaturated, never the luminance changed.
        return np.asarray(compose_rgb(y, self.chroma(top, left, bottom - top, right - left)), np.float32)


@dataclasses.dataclass
class Fidelity:
    """Per-image fidelity numbers (issue: astronomical fidelity checks).

    luminance_mae: mean |Y(colour frame) - input Y| (0 means luminance kept exactly).
    flux_psnr: PSNR (dB, [0, 1] scale) between the SR output averaged back down by
        `scale` (area average) and the colour frame it came from.
    """

    luminance_mae: float
    flux_psnr: float


class _FidelityMeter:
    """Accumulates the report's numbers band by band.

    The flux check degrades each band of SR rows with `operator` (`block`: 4x4
    means; `bicubic`: antialiased bicubic, approximate at band seams) and
    compares it with the input rows it came from, on a value range `peak`
    (1 for display values; the stretch's interval for linear units).
    """

    def __init__(self, scale: int, residual_shape: Optional[tuple] = None, operator: str = "block",
                 peak: float = 1.0) -> None:
        self.scale = scale
        self.operator = operator
        self.peak = peak
        self.y_abs = 0.0
        self.sq = 0.0
        self.n = 0
        self.residual = np.zeros(residual_shape, np.float32) if residual_shape else None

    def add(self, lr: np.ndarray, lum_rgb: np.ndarray, grey: np.ndarray, sr_rows: np.ndarray, top: int) -> None:
        """One band: `lr` the input rows in the SR's units, `lum_rgb` them in display values."""
        from pipeline.consistency import degrade

        h, w = lr.shape[:2]
        y = np.asarray(rgb_to_luma(lum_rgb))
        self.y_abs += float(np.abs(y - grey).sum())
        diff = (degrade(sr_rows, self.scale, self.operator) - lr) / self.peak
        self.sq += float(np.square(diff).sum())
        self.n += h * w
        if self.residual is not None:
            self.residual[top : top + h] = np.abs(diff).mean(axis=-1, keepdims=True)

    def result(self) -> Fidelity:
        mse = self.sq / max(self.n * 3, 1)
        return Fidelity(
            luminance_mae=self.y_abs / max(self.n, 1),
            flux_psnr=float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse)),
        )


class LinearFrame:
    """The colour frame in a FITS input's linear units: what flux-consistent SR works on.

    Each channel is the colour frame un-stretched, plus what the display interval
    clipped away from the raw luminance (sky below `vmin`, star cores above
    `vmax`), so bright stars keep their flux.

    Args:
        colour: the `ColourFrame` (display values).
        stretch: the `data.io.Stretch` that made the display luminance.
        raw: `[H, W]` the raw frame in display row order (NaN allowed: counted as no excess).
    """

    def __init__(self, colour: ColourFrame, stretch, raw) -> None:
        self.colour = colour
        self.stretch = stretch
        self.raw = raw
        self.grey = colour.grey
        self.shape = colour.shape

    def __getitem__(self, index) -> np.ndarray:
        rows, cols = index[0], index[1]
        rgb = self.colour[rows, cols]
        h, w = rgb.shape[:2]
        linear = self.stretch.invert(rgb.reshape(h, -1)).reshape(rgb.shape)
        grey = np.asarray(self.colour.grey[rows, cols], np.float32)
        excess = np.asarray(self.raw[rows, cols], np.float32)[..., None] - self.stretch.invert(grey[..., 0])[..., None]
        return linear + np.nan_to_num(excess, nan=0.0, posinf=0.0, neginf=0.0)


def stream_bands(
    frame,
    upscale: Callable[[np.ndarray], np.ndarray],
    scale: int,
    tile: int,
    overlap: int,
    meter: Optional[_FidelityMeter] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    batch_size: int = 1,
    clip: bool = True,
) -> Iterator[np.ndarray]:
    """Yields output row bands `[rows, scale*W, 3]`, top to bottom, measuring fidelity on the way.

    `frame` is a `ColourFrame` (display values) or a `LinearFrame` (linear units, `clip=False`);
    `upscale` maps a stack of tiles `[N, h, w, 3]` to `[N, scale*h, scale*w, 3]`
    (`pipeline.tiling.iter_upscaled_bands`).
    """
    for top, end, rows in iter_upscaled_bands(frame, upscale, scale, tile, overlap, progress, batch_size, clip):
        if meter is not None:
            lr = frame[top:end, :]
            lum = getattr(frame, "colour", frame)[top:end, :]
            meter.add(lr, lum, np.asarray(frame.grey[top:end], np.float32), rows, top)
        yield rows


def write_png_stream(path: str, bands: Iterator[np.ndarray], height: int, width: int, bits: int = 8) -> None:
    """Writes row bands as one PNG without holding the image, atomically."""
    import png

    quant = to_uint8 if bits == 8 else to_uint16

    def rows():
        for band in bands:
            # Quantise a few rows at a time: temporaries stay small for wide frames.
            for start in range(0, band.shape[0], 32):
                q = quant(band[start : start + 32])
                yield from q.reshape(q.shape[0], -1)

    with atomic_file(path) as f:
        png.Writer(width=width, height=height, bitdepth=bits, greyscale=False,
                   compression=PNG_COMPRESSION).write(f, rows())


def write_tiff16_stream(path: str, bands: Iterator[np.ndarray], height: int, width: int) -> None:
    """Writes row bands as one 16-bit RGB TIFF without holding the image, atomically."""
    import tifffile

    def rows():
        for band in bands:
            for start in range(0, band.shape[0], 32):
                yield from to_uint16(band[start : start + 32])[:, None]

    with atomic_file(path) as f:
        # One row per strip: bands have varying heights, rows do not.
        tifffile.imwrite(f, data=rows(), shape=(height, width, 3), dtype="uint16", photometric="rgb",
                         rowsperstrip=1)


def write_residual_png(path: str, residual: np.ndarray) -> None:
    """The flux residual map, scaled so its 99.9th percentile is white."""
    from data.writers import encode_png

    top = float(np.percentile(residual, 99.9)) or 1.0
    atomic_write_bytes(path, encode_png(np.clip(residual / top, 0, 1)))


def colour_frame(image: np.ndarray, colorizer, size: int) -> tuple[ColourFrame, bool]:
    """The colourised full-resolution frame of an image (chroma predicted at `size`, the input's luminance).

    Args:
        image: float32 `[H, W, 1|3]` in [0, 1] (colour is reduced to its luminance).
        colorizer: the loaded colouriser (`pipeline.models.LoadedModel`).
        size: the colouriser's working size (a multiple of 16).

    Returns:
        (the lazy `ColourFrame` `[H, W, 3]`, whether the input had colour).
    """
    from pipeline.inference import to_luminance, to_working_size

    grey, was_colour = to_luminance(image)
    rgb_small = colorizer.run(to_working_size(grey, size)[None])[0]
    uv_small = np.asarray(rgb_to_yuv(np.clip(rgb_small, 0, 1).astype(np.float32)))[..., 1:]
    return ColourFrame(grey, uv_small), was_colour


def correction(consistency: str, stretch=None, raw=None) -> tuple[Optional[str], bool]:
    """(operator, whether it works in linear units) for a `--consistency` mode and an input.

    A FITS input (with its stretch and raw data) is a raw frame: `auto` means 4x4
    block means in its linear units; a picture gets antialiased bicubic.
    """
    from pipeline.consistency import operator_for

    operator = operator_for(consistency, is_raw_frame=stretch is not None)
    return operator, stretch is not None and operator is not None and raw is not None


def make_meter(options: FullOptions, height: int, width: int, scale: int, consistency: str = "auto",
               stretch=None, raw=None) -> Optional[_FidelityMeter]:
    """The report's meter (None without `options.report`), measuring with the run's operator and units."""
    if not options.report:
        return None
    operator, linear = correction(consistency, stretch, raw)
    peak = (stretch.vmax - stretch.vmin) if linear else 1.0
    return _FidelityMeter(scale, (height, width, 1) if options.residual_map else None, operator or "block", peak)


def upscaled_bands(frame, upscaler, scale: int, options: FullOptions,
                   meter: Optional[_FidelityMeter] = None,
                   progress: Optional[Callable[[int, int], None]] = None,
                   consistency: str = "auto", stretch=None, raw=None) -> Iterator[np.ndarray]:
    """The frame super-resolved in tiles, made consistent with it: output row bands `[rows, scale*W, 3]`, top first.

    Args:
        frame: `[H, W, 3]` in [0, 1] (array or `ColourFrame`).
        consistency: `pipeline.consistency` mode (see `correction`).
        stretch, raw: a FITS input's `data.io.Stretch` and raw `[H, W]` data
            (display row order): then the correction is done in linear units.

    Yields:
        float32 bands in [0, 1]; in the input's linear units instead when the
        correction is linear and `options.linear_output` is set.
    """
    from pipeline.consistency import back_project, consistent_display, expected_display, hr_noise
    from pipeline.inference import sr_output

    operator, linear = correction(consistency, stretch, raw)

    # The whole frame's noise, measured once, so every tile and band is shown alike.
    noise = hr_noise(raw, scale, operator) if linear and options.display_noise else 0.0

    def upscale_batch(tiles: np.ndarray) -> np.ndarray:
        if linear:  # tiles in linear units: the network sees them stretched, the correction is linear
            sr = sr_output(upscaler.run(np.stack([expected_display(t, stretch, 0.0) for t in tiles])))
            return np.stack([back_project(stretch.invert(s.reshape(s.shape[0], -1)).reshape(s.shape), t, scale,
                                          operator) for s, t in zip(sr, tiles)])
        sr = sr_output(upscaler.run(np.asarray(tiles, np.float32)))
        if operator is None:
            return sr
        return np.stack([consistent_display(s, t, scale, operator)[0] for s, t in zip(sr, tiles)])

    tiled = LinearFrame(frame, stretch, raw) if linear else frame
    bands = stream_bands(tiled, upscale_batch, scale, options.tile, options.tile_overlap, meter, progress,
                         options.tile_batch, clip=not linear)
    if linear and not options.linear_output:
        return (expected_display(b, stretch, noise) for b in bands)
    return bands


def fits_history(options: FullOptions, scale: int, consistency: str = "auto", stretch=None,
                 raw=None) -> list[str]:
    """The HISTORY lines of a full-mode FITS output."""
    lines = [
        "astro-colorize-sr: chroma predicted at %dx%d, put on the full-resolution luminance;" % (
            options.size, options.size),
        f"super-resolved x{scale} in {options.tile}px tiles (overlap {options.tile_overlap}px).",
        "WCS rescaled: CRPIX'=(CRPIX-0.5)*s+0.5, CDELT or CD divided by s.",
    ]
    operator, linear = correction(consistency, stretch, raw)
    if operator is not None:
        lines.append(f"SR made consistent with the input ({operator} operator" + (", linear units)." if linear else ")."))
    return lines


def process_full(path: str, output: str, colorizer, upscaler, scale: int, options: FullOptions,
                 progress: Optional[Callable[[int, int], None]] = None,
                 consistency: str = "auto", clock=None) -> tuple[Optional[Fidelity], bool]:
    """Colourises and super-resolves one whole frame into `output`.

    The tiled SR of the next band runs in a thread while this band is encoded
    and written (`pipeline.overlap.prefetch`, one band ahead).

    Args:
        consistency: `pipeline.consistency` mode: `auto` corrects each tile's SR
            so that degrading it gives the input back, with 4x4 block means in
            the linear units of a FITS input (flux conserved) and antialiased
            bicubic for pictures; `block` / `bicubic` force one; `none` is off.
        clock: a `pipeline.overlap.StageClock` receiving the seconds of stages
            `decode`, `colourise`, `sr` (tiles, blending, consistency) and `encode`.

    Returns:
        (fidelity numbers when `options.report`, whether the input had colour).

    Raises:
        ImageReadError: unreadable input; ValueError: options that cannot apply
        (e.g. `linear_output` for a non-FITS input).
    """
    import time

    from data.io import ImageReadError, check_frame_size, is_fits, read_fits, read_image
    from pipeline.overlap import StageClock, prefetch, timed

    clock = clock if clock is not None else StageClock()
    header = stretch = raw = None
    with timed(clock, "decode"):
        if is_fits(path):
            f = read_fits(path, stretch=options.stretch, interval=options.interval, percentile=options.percentile)
            image, header, stretch, raw = f.image, f.header, f.stretch, f.raw
        else:
            image = read_image(path)
    if options.linear_output and stretch is None:
        raise ImageReadError(path, "--linear_output needs a FITS input (there is no stretch to undo)")
    h, w = image.shape[:2]
    check_frame_size(path, w, h)
    with timed(clock, "colourise"):
        frame, was_colour = colour_frame(image, colorizer, options.size)
    del image
    meter = make_meter(options, h, w, scale, consistency, stretch, raw)
    bands = prefetch(upscaled_bands(frame, upscaler, scale, options, meter, progress, consistency, stretch, raw),
                     depth=1, clock=clock, stage="sr")
    waited, t0 = clock.seconds.get("sr_wait", 0.0), time.perf_counter()
    if options.output_format == "fits":
        head = fits_header_for(header, h * scale, w * scale, scale, stretch, options.linear_output,
                               fits_history(options, scale, consistency, stretch, raw))
        linear = correction(consistency, stretch, raw)[1]
        # Linear-unit corrected bands are written as they are; otherwise the display values are un-stretched.
        transform = stretch.invert if options.linear_output and not linear else None
        write_fits_stream(output, bands, head, transform=transform)
    elif options.output_format == "tiff16":
        write_tiff16_stream(output, bands, h * scale, w * scale)
    else:
        write_png_stream(output, bands, h * scale, w * scale, bits=16 if options.output_format == "png16" else 8)
    # The writer's own time: its wall time less what it spent waiting for SR bands.
    clock.add("encode", time.perf_counter() - t0 - (clock.seconds.get("sr_wait", 0.0) - waited))
    fidelity = None
    if meter is not None:
        fidelity = meter.result()
        if meter.residual is not None:
            write_residual_png(os.path.splitext(output)[0] + "_residual.png", meter.residual)
    return fidelity, was_colour
