"""`python -m srgan.import_tl --npz g_srgan.npz --output checkpoints/srgan`: use a TensorLayer SRGAN.

Converts a generator trained with github tensorlayer/srgan (the SR code the
paper follows, sec. 4.2) into this project's exact Keras copy of it
(`srgan.model_tl.build_tl_generator`, `arch "tl"`: ReLU, tanh output) and
writes it where `pipeline.run` looks for the SR model. TensorLayer itself is
not needed. Accepted files (told apart by content):

* TL1 `g_srgan.npz` (`tl.files.save_npz`; an object array, read without
  running pickle: only numpy arrays are let through),
* an npz from `tl.files.save_npz_dict` (TL2 or TL1),
* TL2 `g.h5` (`Model.save_weights`, what TL2's `train.py` writes).

Sub-pixel order: TensorLayer >= 1.6.7 (and TL2) shuffles with
`tf.nn.depth_to_space`, which is what this model does. Checkpoints trained
with TensorLayer 1.5.x or older used a different channel order and convert
without error to a model whose output is scrambled.

`--format savedmodel` (default) writes the export contract through
`srgan.saved_model.export_saved_model`, as `srgan.export` does: a SavedModel
whose `serving_default` maps `lr` float32 `[B,H,W,3]` in [0,1] to
`{"sr": [B,4H,4W,3]}` in [0,1], and a `config.json` beside `saved_model.pb`
(`"model": "srgan"`, `"arch": "tl"`, `"scale": 4`, the generator size and the
source file). `--format keras` writes `generator.keras` and the same
`config.json` (load it after `import srgan.model_tl`, which registers the
sub-pixel layer). A non-empty `--output` is only replaced with `--overwrite`;
the folder is written beside it and renamed into place.
"""
from __future__ import annotations

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "npz", None,
    "TensorLayer generator weights from tensorlayer/srgan (paper sec. 4.2): TL1 g_srgan.npz, "
    "an npz from tl.files.save_npz_dict, or TL2 g.h5.",
)
flags.DEFINE_string("output", "checkpoints/srgan", "Folder to write (the pipeline's default SR model location).")
flags.DEFINE_enum(
    "format", "savedmodel", ["savedmodel", "keras"],
    "savedmodel: the pipeline's export contract; keras: generator.keras for Keras code.",
)
flags.DEFINE_integer("num_blocks", None, "Residual blocks; inferred from the file when unset (paper sec. 4.2: 16).")
flags.DEFINE_integer("filters", None, "Trunk channels; inferred from the file when unset (paper sec. 4.2: 64).")
flags.DEFINE_boolean("overwrite", False, "Replace a non-empty --output.")

SCALE = 4


def _meta(info: dict) -> dict:
    meta = dict(info)
    meta.update(model="srgan", arch="tl", scale=SCALE, io_range="01", trained=True, converted_by="srgan.import_tl")
    return meta


def _write_keras(model, meta: dict, output_dir: str, overwrite: bool) -> str:
    """Writes `generator.keras` and `config.json` into `output_dir`, atomically.

    Like `common.export.write_saved_model`: written into a temporary folder
    beside `output_dir` and renamed into place, so a crash never leaves half a
    model behind.
    """
    import os

    from common.export import atomic_folder, write_config_json

    with atomic_folder(output_dir, overwrite) as tmp:
        model.save(os.path.join(tmp, "generator.keras"))
        write_config_json(tmp, dict(meta, keras_file="generator.keras"))
    return os.path.abspath(output_dir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.npz:
        raise app.UsageError("give --npz (a tensorlayer/srgan generator checkpoint)")
    from common.export import ExportError, check_output_dir

    try:
        # Fail before the slow part (importing TensorFlow, building the model).
        check_output_dir(FLAGS.output, FLAGS.overwrite)
        from srgan.tl_weights import convert_tl_checkpoint

        model, info = convert_tl_checkpoint(FLAGS.npz, FLAGS.num_blocks, FLAGS.filters, io_range="01")
        if FLAGS.format == "savedmodel":
            from srgan.saved_model import export_saved_model

            out = export_saved_model(model, FLAGS.output, _meta(info), overwrite=FLAGS.overwrite)
        else:
            out = _write_keras(model, _meta(info), FLAGS.output, FLAGS.overwrite)
    except (ExportError, FileNotFoundError, ValueError) as e:  # TLCheckpointError is a ValueError
        raise SystemExit(f"error: {e}") from None
    logging.info("converted %s (%s)", FLAGS.npz, info["source_format"])
    print(f"converted {info['source_format']} generator ({info['num_blocks']} blocks, {info['filters']} filters) "
          f"from {FLAGS.npz} to {out} ({FLAGS.format})")


if __name__ == "__main__":
    app.run(main)
