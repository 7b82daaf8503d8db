"""`python -m pipeline.run --input DIR_OR_FILE --output DIR`: colourise, then 4x.

Faithful mode (the paper's sec. 5.2): every input, whatever its size, is reduced
to luminance, resized to 224x224, colourised, and super-resolved 4x to 896x896.
One PNG per input is written into `--output` (named after the input, never over
an input, never outside `--output`). Bad inputs get one line each and the rest
are still processed; the exit status is 1 if any input failed.

Models: `--colorize_model` / `--srgan_model` when given, else the bundled ones,
found from any working directory (`pipeline.bundled`: `$ASTRO_MODELS_DIR`, the
installed package data, the repository checkout). The work itself is done by
the Python API (`pipeline.Pipeline`), so both give the same pixels.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Sequence

from absl import app, flags

from data.fits_io import INTERVALS, STRETCHES
from pipeline.config import FullOptions, RunConfig
from pipeline.runner import OutputError, run

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "An image/FITS file, or a folder of them.")
flags.DEFINE_string("output", "out", "Folder for the results (created if missing).")
flags.DEFINE_string("colorize_model", None, "Exported colouriser SavedModel folder (default: the bundled "
                    "checkpoints/colorize, found from any folder; $ASTRO_MODELS_DIR/colorize when set).")
flags.DEFINE_string("srgan_model", None, "Exported SR generator SavedModel folder (default: the bundled "
                    "checkpoints/srgan; a relative name such as checkpoints/srgan_gan is also looked up there).")
flags.DEFINE_integer("size", 224, "Working size of the colouriser (paper sec. 5.2: 224; a multiple of 16).")
flags.DEFINE_integer("batch_size", 4, "Images per model call (full mode: tiles of a band per model call).")
flags.DEFINE_boolean("recursive", False, "Also process images in sub-folders of --input.")
flags.DEFINE_boolean("skip_existing", False, "Skip inputs whose output already exists (resume a killed run).")
flags.DEFINE_boolean("save_intermediate", False, "Also write the 224x224 colour stage as <name>_colour224.png.")
flags.DEFINE_boolean("progress", None, "Show a progress bar (default: when stderr is a terminal).")
flags.DEFINE_enum("mode", "faithful", ["faithful", "full"],
                  "faithful: the paper's sec. 5.2 (any input -> 224 -> x4 = 896). full: the whole frame, chroma "
                  "predicted at --size and put on the full-resolution luminance, then x4 in tiles.")
flags.DEFINE_integer("tile", 256, "full mode: SR tile side in input px (memory is bounded by the tile).")
flags.DEFINE_integer("tile_overlap", 64, "full mode: least overlap between tiles in input px: its outer quarter is dropped, its middle half feather-blended.")
flags.DEFINE_enum("output_format", "png", ["png", "png16", "tiff16", "fits"],
                  "full mode: 8-bit PNG, 16-bit PNG, 16-bit TIFF, or a float32 FITS cube [3,H,W] with the input "
                  "header and the WCS rescaled.")
flags.DEFINE_boolean("linear_output", False, "full mode, FITS in and out: write the input's linear units "
                     "(the recorded stretch undone) instead of [0,1] display values.")
flags.DEFINE_boolean("report", False, "full mode: write fidelity.csv (luminance kept, flux consistency).")
flags.DEFINE_boolean("residual_map", False, "full mode with --report: also write <name>_residual.png.")
flags.DEFINE_enum("stretch", FullOptions.stretch, list(STRETCHES), "full mode: stretch for FITS input.")
flags.DEFINE_enum("interval", FullOptions.interval, list(INTERVALS), "full mode: interval for FITS input.")
flags.DEFINE_float("percentile", FullOptions.percentile, "full mode: central percentage kept by the percentile "
                   "interval.")
flags.DEFINE_boolean("display_noise", FullOptions.display_noise,
                     "full mode, FITS with linear-unit consistency: show the flux-consistent SR as the expected "
                     "stretch of the sky with the input's pixel noise, E[stretch(x + n)] (pipeline.consistency."
                     "expected_display), not the stretch of the noise-free estimate, which a concave stretch shows "
                     "brighter than the noisy sky (Jensen); --linear_output values are not affected. Off by "
                     "default: it lowers that display bias, but on HST frames its white-noise model cost PSNR and "
                     "the display's star photometry (checkpoints/MODEL_CARD.md). Not in the paper.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"],
                  "SR generator precision: float32 runs the exported graph; mixed_* rebuild the generator under "
                  "that Keras policy (GPUs; measured slower on our 2-core CPU, see bench/).")
flags.DEFINE_boolean("jit_compile", False, "Compile the SR generator with XLA (rebuilds it; see --precision).")
flags.DEFINE_float("colour_temperature", None,
                   "A classification colouriser's decoding temperature (Zhang et al. 2016's annealed mean; > 0, "
                   "lower = more saturated; default: the export's own, 1.0 for checkpoints/colorize_classification). "
                   "Other colourisers refuse it.")
flags.DEFINE_enum("engine", None, ["auto", "savedmodel", "litert"],
                  "Inference engine (default auto): auto = the export's LiteRT flatbuffer (model.tflite, XNNPACK "
                  "on the available cores) on a CPU without AVX-512 when it is there and valid, else the "
                  "SavedModel (on a GPU, and on AVX-512 CPUs, where TensorFlow was measured faster); savedmodel = "
                  "TensorFlow runs the SavedModel; litert = the flatbuffer or an error.")
flags.DEFINE_enum("consistency", "auto", ["auto", "bicubic", "block", "none"],
                  "Correct the SR output so that degrading it again gives its input (back-projection, Irani & "
                  "Peleg 1991; not in the paper): auto = antialiased bicubic for pictures and faithful mode, 4x4 "
                  "block means in the linear units of a FITS frame in full mode (flux conserved); none = the "
                  "network's output as it is (the paper's).")

flags.DEFINE_enum("executor", "serial", ["serial", "dask"],
                  "serial: this process. dask: frames as tasks on a Dask cluster (pip install '.[dask]'); each "
                  "worker loads the models once and writes into --output, which must be on a file system every "
                  "worker sees.")
flags.DEFINE_string("dask_scheduler", None, "--executor dask: join this running scheduler (tcp://HOST:PORT, e.g. "
                    "a dask-jobqueue SLURMCluster's); default: start a local cluster of --dask_workers processes.")
flags.DEFINE_integer("dask_workers", None, "--executor dask without --dask_scheduler: worker processes of the local "
                     "cluster, one thread each (default: one per CPU core).")


#: Flags that only full mode reads: `FullOptions`' fields of their own name (size and batch_size serve both modes).
FULL_MODE_FLAGS = tuple(f.name for f in dataclasses.fields(FullOptions) if f.name not in ("size", "tile_batch"))


def main(argv: Sequence[str]) -> int:
    del argv
    if not FLAGS.input:
        raise app.UsageError("--input is required (an image/FITS file or a folder)")
    if FLAGS.executor != "dask" and (FLAGS.dask_scheduler or FLAGS.dask_workers):
        raise app.UsageError("--dask_scheduler and --dask_workers need --executor dask")
    full_only = [f"--{name}" for name in FULL_MODE_FLAGS if FLAGS[name].present]
    if FLAGS.mode != "full" and full_only:
        # Faithful mode reads FITS with the default stretch and has no tiles or output formats: say so
        # rather than run without the options the user asked for.
        raise app.UsageError(f"{', '.join(full_only)}: full-mode options; add --mode full (faithful mode reads "
                             "FITS with the default stretch, asinh over the central 99.5 %)")
    full = None
    if FLAGS.mode == "full":
        full = FullOptions(
            size=FLAGS.size, tile=FLAGS.tile, tile_overlap=FLAGS.tile_overlap, output_format=FLAGS.output_format,
            tile_batch=FLAGS.batch_size,
            linear_output=FLAGS.linear_output, report=FLAGS.report, residual_map=FLAGS.residual_map,
            stretch=FLAGS.stretch, interval=FLAGS.interval, percentile=FLAGS.percentile,
            display_noise=FLAGS.display_noise)
    config = RunConfig(
        input=FLAGS.input, output=FLAGS.output, colorize_model=FLAGS.colorize_model,
        srgan_model=FLAGS.srgan_model, size=FLAGS.size, batch_size=FLAGS.batch_size,
        recursive=FLAGS.recursive, skip_existing=FLAGS.skip_existing,
        save_intermediate=FLAGS.save_intermediate, progress=FLAGS.progress, mode=FLAGS.mode, full=full,
        precision=FLAGS.precision, jit_compile=FLAGS.jit_compile, consistency=FLAGS.consistency,
        colour_temperature=FLAGS.colour_temperature, executor=FLAGS.executor,
        engine=FLAGS.engine,
        dask_scheduler=FLAGS.dask_scheduler, dask_workers=FLAGS.dask_workers,
    )
    from data.io import ImageReadError
    from pipeline.dask_executor import ClusterError
    from pipeline.models import ModelLoadError

    try:
        result = run(config)
    except (ImageReadError, ModelLoadError, OutputError, ValueError, ClusterError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.failed:
        from data.io import printable_path

        print(f"{len(result.failed)} input(s) failed:", file=sys.stderr)
        for path, reason in result.failed:
            print(f"  {printable_path(path)}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
