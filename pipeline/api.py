"""The Python API: `Pipeline`, the array-level core that `pipeline.run` calls too.

    from pipeline import Pipeline

    pipe = Pipeline.load()                      # the bundled models (see pipeline.bundled)
    rgb = pipe.process(grey)                    # faithful: any frame -> 224 colour -> x4 = 896x896
    big = pipe.process(grey, mode="full")       # the whole frame in colour, 4x larger
    hdu = pipe.process_fits("m51.fits")         # FITS in, FITS cube [3, 4H, 4W] out, WCS rescaled

Arrays in: `[H, W]`, `[H, W, 1]` (grey), `[H, W, 3]` (RGB, reduced to its
luminance: the pipeline colourises grey frames) or `[H, W, 2|4]` (grey or RGB
with alpha, composited onto black, as when a PNG is read); dtype uint8 (0..255),
uint16 (0..65535) or float (values in [0, 1]; NaN pixels become 0, as masked
FITS pixels do). Arrays out: float32 RGB `[H', W', 3]` in [0, 1], channels last;
`data.normalize.to_uint8(out)` gives exactly the pixels of the command's 8-bit
PNG (`to_uint16` those of its 16-bit PNG/TIFF).

Options are the command's, by the field names of `pipeline.config.RunConfig`
(per-image ones such as `size`) and, in full mode, of `pipeline.config.FullOptions`
(`tile`, `tile_overlap`, `tile_batch`; for `process_fits` also `stretch`,
`interval`, `percentile`, `linear_output`). New fields of those dataclasses are
accepted here without change. Bad input of any kind raises `PipelineInputError`.
Nothing here imports TensorFlow before `Pipeline.load`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from data.io import ImageReadError, check_frame_size
from pipeline.api_inputs import ARRAY, PipelineInputError, as_image, split_options

class Pipeline:
    """The two loaded models and the pipeline's steps on numpy arrays and FITS HDUs.

    Attributes:
        colorizer, upscaler: the loaded models (`pipeline.models.LoadedModel`).
    """

    def __init__(self, colorizer, upscaler) -> None:
        self.colorizer = colorizer
        self.upscaler = upscaler
        # How `load` made them: what Dask workers load (see `process_files`).
        self._load_args = {"colorize_model": colorizer.path, "srgan_model": upscaler.path}

    def __repr__(self) -> str:
        return (f"Pipeline(colouriser: {self.colorizer.description}; super-resolution: "
                f"{self.upscaler.description}, x{self.scale}; device: {self.colorizer.device or 'auto'})")

    @classmethod
    def load(cls, colorize_model: Optional[str] = None, srgan_model: Optional[str] = None,
             device: Optional[str] = None, precision: str = "float32", jit_compile: bool = False,
             colour_temperature: Optional[float] = None, engine: Optional[str] = None) -> "Pipeline":
        """Loads the colouriser and the SR generator (imports TensorFlow).

        Args:
            colorize_model, srgan_model: exported model folders; None for the
                bundled defaults (found from any working directory, see
                `pipeline.bundled`; `$ASTRO_MODELS_DIR` overrides them).
            device: None (a GPU when TensorFlow sees one, else the CPU), "cpu",
                "gpu" or a TF device string such as "/GPU:1".
            precision, jit_compile: for the SR generator, as `--precision` and
                `--jit_compile` (see `pipeline.models.load_model`).
            colour_temperature: a classification colouriser's annealed-mean
                temperature (> 0; lower is more saturated), as `--colour_temperature`.
            engine: `auto` (None: the default, `pipeline.models.DEFAULT_ENGINE`),
                `savedmodel` or `litert`, as `--engine` (see `pipeline.models.load_model`).

        Raises:
            pipeline.models.ModelLoadError: a model not found (the message lists
                every place looked), unloadable, of the wrong kind, or a device
                that is not there.
        """
        from pipeline.models import DEFAULT_ENGINE, load_found

        engine = engine or DEFAULT_ENGINE
        colorizer = load_found(colorize_model, "colorize", engine, device=device,
                               colour_temperature=colour_temperature)
        upscaler = load_found(srgan_model, "srgan", engine, precision=precision, jit_compile=jit_compile,
                              device=device)
        pipe = cls(colorizer, upscaler)
        pipe._load_args.update(precision=precision, jit_compile=jit_compile, colour_temperature=colour_temperature,
                               engine=engine)
        return pipe

    @property
    def scale(self) -> int:
        """The SR factor (4 for the shipped models)."""
        from pipeline.models import model_scale

        return model_scale(self.upscaler)

    @property
    def trained(self) -> bool:
        """False when either model was exported untrained (random weights)."""
        return self.colorizer.trained and self.upscaler.trained

    def faithful_batch(self, greys: np.ndarray, config=None, clock=None) -> tuple[np.ndarray, np.ndarray]:
        """The faithful pipeline on a batch at the working size: what `pipeline.run` calls per batch.

        Args:
            greys: float32 `[B, S, S, 1]` in [0, 1], S = `config.size`.
            config: the run's `RunConfig` (its per-image options apply).
            clock: a `pipeline.overlap.StageClock` for the stages' seconds (None: not timed).

        Returns:
            (colour `[B, S, S, 3]`, upscaled `[B, scale*S, scale*S, 3]`), float32 in [0, 1].
        """
        from pipeline.inference import colourise_and_upscale

        consistency = config.consistency if config is not None else "auto"
        return colourise_and_upscale(greys, self.colorizer, self.upscaler, consistency, clock)

    def _working_grey(self, image: Any, size: int, limit: bool = True) -> np.ndarray:
        from pipeline.inference import MAX_PIXELS, to_luminance, to_working_size

        img = as_image(image)
        h, w = img.shape[:2]
        if limit and h * w > MAX_PIXELS:
            raise PipelineInputError(ARRAY, f"image is {w}x{h} px; too large for the faithful 224-px mode")
        return to_working_size(to_luminance(img)[0], size)

    def colourise(self, grey: Any, mode: str = "faithful", **options) -> np.ndarray:
        """Colourises a grey frame (a colour one is reduced to its luminance first).

        Args:
            grey: see the module docstring for shapes and dtypes.
            mode: "faithful": resized to `size` (224) and colourised there, the
                command's `_colour224.png`; "full": the chroma predicted at
                `size` put on the frame's own full-resolution luminance.
            **options: `size`; see the module docstring.

        Returns:
            float32 RGB in [0, 1]: `[size, size, 3]` (faithful) or `[H, W, 3]` (full).
        """
        config, full = split_options(mode, options)
        if mode == "faithful":
            return np.clip(self.colorizer.run(self._working_grey(grey, config.size)[None]), 0.0, 1.0)[0]
        from pipeline.full import colour_frame

        frame, _ = colour_frame(as_image(grey), self.colorizer, full.size)
        return frame[:, :]

    def upscale(self, rgb: Any, **options) -> np.ndarray:
        """Super-resolves an RGB image by `scale`, in tiles as full mode does (one tile up to `tile` px).

        Args:
            rgb: `[H, W, 3]` (grey `[H, W]` / `[H, W, 1]` is repeated to RGB);
                dtypes as in the module docstring.
            **options: `tile`, `tile_overlap`, `tile_batch` (`pipeline.config.FullOptions`).

        Returns:
            float32 `[scale*H, scale*W, 3]` in [0, 1].
        """
        img = as_image(rgb)
        if img.shape[-1] == 1:
            img = np.repeat(img, 3, axis=-1)
        config, full = split_options("full", options)
        return self._gather(img, full, config.consistency)

    def _gather(self, frame, full, consistency: str = "auto", stretch=None, raw=None) -> np.ndarray:
        """Full mode's tiled SR of `frame` (`[H, W, 3]`, array or `ColourFrame`) gathered into one array.

        With a FITS input's `stretch` and `raw` data the result is in linear units
        when `full.linear_output` (as `upscaled_bands` yields it).
        """
        from pipeline.full import upscaled_bands

        s = self.scale
        out = np.empty((frame.shape[0] * s, frame.shape[1] * s, 3), np.float32)
        row = 0
        for band in upscaled_bands(frame, self.upscaler, s, full, consistency=consistency, stretch=stretch, raw=raw):
            out[row : row + band.shape[0]] = band
            row += band.shape[0]
        return out

    def process(self, image: Any, mode: str = "faithful", **options) -> np.ndarray:
        """The command's job on one array: colourise, then super-resolve.

        Equal, value for value, to what `pipeline.run` computes for the same
        pixels read from a file (it writes `to_uint8` of this as its PNG).

        Args:
            image: `[H, W]`, `[H, W, 1|2|3|4]`; uint8, uint16 or float in [0, 1].
            mode: "faithful" (paper sec. 5.2: resized to `size`, colourised,
                x`scale`) or "full" (the whole frame: chroma at `size` on the
                full-resolution luminance, then x`scale` in tiles).
            **options: RunConfig / FullOptions fields (see the module docstring).

        Returns:
            float32 RGB in [0, 1]: `[scale*size, scale*size, 3]` (faithful:
            896x896) or `[scale*H, scale*W, 3]` (full).

        Raises:
            PipelineInputError: bad image, mode or option.
        """
        config, full = split_options(mode, options)
        if mode == "faithful":
            return self.faithful_batch(self._working_grey(image, config.size)[None], config)[1][0]
        from pipeline.full import colour_frame

        frame, _ = colour_frame(as_image(image), self.colorizer, full.size)
        return self._gather(frame, full, config.consistency)

    def compose(self, filters, output: str, log=None, **options):
        """True colour from filters with this pipeline's models: what `python -m pipeline.compose` writes.

        Args:
            filters: 1-3 FITS paths of one field (one per filter).
            output: folder for the results (created if missing).
            log: called with each progress line; None: quiet.
            **options: the command's options by `pipeline.compose_job.compose_config` names
                (`sr_on`, `two_filter_green`, `formats`, `stretch`, `Q`, `tile`, ...).

        Returns:
            `pipeline.compose_job.ComposeResult`: `written` (the files, byte for
            byte the command's for the same models and options) and `composite`.

        Raises:
            PipelineInputError: an unreadable frame or one without a WCS.
            pipeline.composite.ComposeError, ValueError: frames that cannot go
                together, a bad option. pipeline.runner.OutputError: an output
                folder that cannot be written.
        """
        from pipeline.compose_job import compose, compose_config

        options = {"colorize_model": self.colorizer.path, "srgan_model": self.upscaler.path, **options}
        try:
            return compose(compose_config([os.fspath(f) for f in filters], os.fspath(output), **options),
                           log=log or (lambda line: None), upscaler=self.upscaler, colorizer=self.colorizer)
        except PipelineInputError:
            raise
        except ImageReadError as e:
            raise PipelineInputError(e.path, e.reason) from e

    def process_fits(self, source: Union[str, os.PathLike, Any], **options):
        """Full mode on a FITS frame: the same cube and header as `--mode full --output_format fits`.

        Args:
            source: a FITS file path, an astropy `HDUList` (its first image HDU,
                or the one `hdu=N` names) or one image HDU.
            **options: FullOptions fields: `stretch`, `interval`, `percentile`
                (how raw values become [0, 1]), `linear_output` (the cube in the
                input's units, the stretch undone, instead of [0, 1]), `tile`,
                `tile_overlap`, `tile_batch`, `size`; and `hdu` (an index).

        Returns:
            `astropy.io.fits.PrimaryHDU`: float32 data `[3, scale*H, scale*W]`
            (planes R, G, B; FITS row order), the input header kept with HISTORY
            lines and the WCS rescaled (CRPIX' = (CRPIX - 0.5)*scale + 0.5, CDELT
            or CD divided by scale).

        Raises:
            PipelineInputError: unreadable file, no 2-D image HDU, all-NaN or
                constant data, a bad option.
        """
        from astropy.io import fits

        from data.io import fits_image_from_hdus, read_fits
        from pipeline.fits_out import fits_header_for
        from pipeline.full import colour_frame, correction, fits_history

        hdu = options.pop("hdu", None)
        config, full = split_options("full", options, fits=True)
        kw = dict(stretch=full.stretch, interval=full.interval, percentile=full.percentile, hdu=hdu)
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<HDU>"
        try:
            if isinstance(source, (str, os.PathLike)):
                f = read_fits(name, **kw)
            else:
                hdus = source if isinstance(source, (fits.HDUList, list, tuple)) else [source]
                f = fits_image_from_hdus(hdus, name, **kw)
        except PipelineInputError:
            raise
        except ImageReadError as e:
            raise PipelineInputError(e.path, e.reason) from e
        h, w = f.image.shape[:2]
        check_frame_size(name, w, h, PipelineInputError)
        frame, _ = colour_frame(f.image, self.colorizer, full.size)
        rgb = self._gather(frame, full, config.consistency, f.stretch, f.raw)
        s = self.scale
        head = fits_header_for(f.header, h * s, w * s, s, f.stretch, full.linear_output,
                               fits_history(full, s, config.consistency, f.stretch, f.raw))
        # FITS stores the bottom row first; the same per-plane transform as the file writer.
        planes = [rgb[::-1, :, c] for c in range(3)]
        if full.linear_output and not correction(config.consistency, f.stretch, f.raw)[1]:
            planes = [f.stretch.invert(p) for p in planes]
        return fits.PrimaryHDU(data=np.stack(planes).astype(np.float32), header=head)

    def process_files(self, inputs: Union[str, os.PathLike, Sequence], output: Union[str, os.PathLike], *,
                      client=None, mode: str = "faithful", log: Callable[[str], Any] = print, **options):
        """The command's run over files (`pipeline.run`): here with these models, or on a Dask cluster.

            result = pipe.process_files("frames/", "out/", skip_existing=True)
            with distributed.Client("tcp://HOST:8786") as client:
                result = pipe.process_files(paths, "/shared/out", client=client)

        Args:
            inputs: an image/FITS file or a folder of them (as `--input`), or a
                list of files (output names are made under their common folder).
            output: the results' folder (`--output`); with a client, a folder
                every worker writes to (a shared file system).
            client: a `distributed.Client`: each batch of frames is a task on
                its cluster and each worker process loads these models itself,
                once, from the same folders (`pipeline.dask_executor`); None:
                this process.
            mode: "faithful" or "full".
            log: receives the run's lines (per-file errors, notes, the summary).
            **options: the command's options by their RunConfig / FullOptions
                names: `size`, `batch_size`, `recursive`, `skip_existing`,
                `save_intermediate`, `progress`, `consistency`; in full mode
                also `tile`, `tile_overlap`, `tile_batch`, `output_format`,
                `report`, `residual_map`, `stretch`, `interval`, `percentile`,
                `linear_output`.

        Returns:
            `pipeline.runner.RunResult`: outputs written, inputs skipped, and
            failed inputs as (path, one-line reason). A bad input file never raises.

        Raises:
            PipelineInputError: a bad mode or option. ImageReadError: `inputs`
            does not exist. pipeline.runner.OutputError: `output` cannot be
            written. pipeline.dask_executor.ClusterError: no Dask installed.
        """
        from pipeline.runner import run

        config, _ = split_options(mode, options, files=True)
        sources = None
        root = os.fspath(inputs) if isinstance(inputs, (str, os.PathLike)) else None
        if root is None:
            sources = [os.fspath(p) for p in inputs]
            dirs = [os.path.dirname(os.path.abspath(p)) for p in sources]
            root = os.path.commonpath(dirs) if dirs else "."
        config = dataclasses.replace(config, input=root, output=os.fspath(output),
                                     **{k: v for k, v in self._load_args.items()})
        return run(config, log, sources=sources, pipeline=self, client=client)
