"""`python -m pipeline.evaluate --data DIR --output DIR`: the paper's table, honestly.

Writes `results.md` and `results.csv` (one row per method and section) and
side-by-side figures under `figures/`. See `pipeline.evaluation` for the exact
protocol; in short, all errors are float64 on 8-bit levels (the paper's own
script wrapped its uint8 differences modulo 256, so its MSE of 201.8 / 180.3 and
the 38.09 dB derived from it are not comparable), LR by antialiased bicubic.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import sys
from typing import Sequence

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Colour test images: a folder, or a data.prepare output (its test/ is used).")
flags.DEFINE_string("output", "eval", "Folder for results.md, results.csv and figures/.")
flags.DEFINE_string("colorize_model", "checkpoints/colorize", "Exported colouriser SavedModel folder.")
flags.DEFINE_list("srgan_model", ["checkpoints/srgan"], "Exported SR SavedModel folder(s); each gets its own rows.")
flags.DEFINE_integer("size", 224, "Colouriser working size (paper sec. 5.2: 224).")
flags.DEFINE_string("inception_weights", "imagenet",
                    "Inception v3 weights for the Inception Score (paper's table): imagenet (needs internet), "
                    "a local weights file, or none.")
flags.DEFINE_integer("max_images", 0, "Evaluate at most this many images (0: all).")
flags.DEFINE_integer("figures", 4, "How many images get side-by-side figures.")

IS_NOTE = ("The Inception Score rates how confidently an ImageNet classifier recognises objects; "
           "astronomy images hold no ImageNet classes and a few hundred images give a noisy estimate, "
           "so it means little here (reported because the paper did).")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    data: str
    output: str
    colorize_model: str = "checkpoints/colorize"
    srgan_models: tuple = ("checkpoints/srgan",)
    size: int = 224
    inception_weights: str = "imagenet"
    max_images: int = 0
    figures: int = 4


def _data_files(path: str) -> list[str]:
    from data.io import list_images

    test_dir = os.path.join(path, "test")
    return list_images(test_dir if os.path.isdir(test_dir) else path)


def _table(rows, notes: Sequence[str]) -> tuple[str, str]:
    keys = []
    for r in rows:
        keys += [k for k in r.values if k not in keys]
    md = ["| section | method | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "method", *keys])
    for r in rows:
        cells = [f"{r.values[k]:.4f}" if k in r.values else "" for k in keys]
        md.append(f"| {r.section} | {r.method} | " + " | ".join(cells) + " |")
        w.writerow([r.section, r.method, *cells])
    text = "\n".join(["# Evaluation", "", *md, "", *[f"- {n}" for n in notes], ""])
    return text, buf.getvalue()


def evaluate(config: EvalConfig, log=print) -> dict:
    """Runs every section of the table and writes results and figures.

    Returns:
        {"rows": [Row], "inception": (mean, std) or None, "files": [paths written]}.
    """
    import numpy as np

    from common.training import atomic_write_bytes
    from data.colour import rgb_to_luma
    from data.io import ImageReadError, read_image
    from pipeline import evaluation as ev
    from pipeline.figures import side_by_side
    from pipeline.models import load_model, model_scale

    files = _data_files(config.data)
    if config.max_images:
        files = files[: config.max_images]
    images, names = [], []
    for f in files:
        try:
            img = read_image(f)
        except ImageReadError as e:
            log(f"error: {e}")
            continue
        if img.shape[-1] != 3:
            log(f"skipped {f}: greyscale, cannot serve as a colour reference")
            continue
        images.append(img)
        names.append(os.path.splitext(os.path.basename(f))[0])
    if not images:
        raise ValueError(f"{config.data}: no usable colour images to evaluate on")
    log(f"evaluating on {len(images)} images from {config.data}")

    colorizer = load_model(config.colorize_model, "colorize")
    upscalers = [load_model(p, "srgan") for p in config.srgan_models]
    scale = model_scale(upscalers[0])
    if any(model_scale(u) != scale for u in upscalers):
        raise ValueError("all --srgan_model exports must have the same scale")

    def colorize(grey):
        return colorizer.run(grey[None])[0]

    def runner(model):
        return lambda lr: model.run(lr[None])[0]

    def label(model):
        phase = model.config.get("phase") or model.config.get("export_phase")
        base = os.path.basename(os.path.normpath(model.path))
        return f"SR model {base}" + (f" ({phase})" if phase else "")

    sr_methods = {"bicubic (PIL)": lambda lr: ev.pil_upscale(lr, scale, "bicubic"),
                  "Lanczos (PIL)": lambda lr: ev.pil_upscale(lr, scale, "lanczos")}
    for u in upscalers:
        sr_methods[label(u)] = runner(u)
    rows = ev.evaluate_colour(images, colorize, config.size)
    rows += ev.evaluate_sr(images, sr_methods, scale)
    rows += ev.evaluate_end_to_end(images, colorize, runner(upscalers[0]), config.size, scale)

    finals = []
    for img in images:
        small = ev.to_size(img, config.size)
        finals.append(np.clip(upscalers[0].run(colorize(np.asarray(rgb_to_luma(small), np.float32))[None])[0], 0, 1))
    inception, why = ev.inception_score(finals, config.inception_weights)
    notes = [
        "All errors are float64 on 8-bit levels (0..255). The paper's script subtracted uint8 images, so its "
        "squared differences wrapped modulo 256: its MSE 201.8 / 180.3 are not real errors and are not comparable.",
        f"SR: HR mod-cropped to {scale}, LR by antialiased bicubic (tf.image.resize antialias=True, rounded to "
        f"8 bits), {scale} px border shaved, PSNR/SSIM on RGB and BT.601 Y, per-image mean.",
        "Colourisation at %d against the original resized the way the pipeline resizes; the grey baseline keeps "
        "luminance with no chroma. saturation = mean HSV saturation of the output (truth_saturation: of the "
        "original)." % config.size,
        "Inception Score: " + (f"{inception[0]:.2f} ± {inception[1]:.2f} (10 splits)" if inception else why),
        IS_NOTE,
        f"Models: colouriser {colorizer.description}; SR " + "; ".join(u.description for u in upscalers) + ".",
    ]
    os.makedirs(config.output, exist_ok=True)
    md, csv_text = _table(rows, notes)
    written = [os.path.join(config.output, "results.md"), os.path.join(config.output, "results.csv")]
    atomic_write_bytes(written[0], md.encode())
    atomic_write_bytes(written[1], csv_text.encode())
    for img, name in list(zip(images, names))[: config.figures]:
        hr = ev.mod_crop(img, scale)
        lr = ev.make_lr(hr, scale)
        sr_path = os.path.join(config.output, "figures", f"{name}_sr.png")
        side_by_side(sr_path, [("original", hr), ("bicubic", ev.pil_upscale(lr, scale, "bicubic")),
                               (label(upscalers[0]), np.clip(upscalers[0].run(lr[None])[0], 0, 1))],
                     title=f"{name}: x{scale} from antialiased-bicubic LR")
        small = ev.to_size(img, config.size)
        grey = np.asarray(rgb_to_luma(small), np.float32)
        col_path = os.path.join(config.output, "figures", f"{name}_colour.png")
        side_by_side(col_path, [("grey input", grey), ("colourised", colorize(grey)), ("original", small)],
                     title=f"{name}: colourisation at {config.size}", zoom=False)
        written += [sr_path, col_path]
    log(md)
    return {"rows": rows, "inception": inception, "files": written}


def main(argv: Sequence[str]) -> int:
    del argv
    if not FLAGS.data:
        raise app.UsageError("--data is required")
    config = EvalConfig(
        data=FLAGS.data, output=FLAGS.output, colorize_model=FLAGS.colorize_model,
        srgan_models=tuple(FLAGS.srgan_model), size=FLAGS.size, inception_weights=FLAGS.inception_weights,
        max_images=FLAGS.max_images, figures=FLAGS.figures,
    )
    from data.io import ImageReadError
    from pipeline.models import ModelLoadError

    try:
        evaluate(config)
    except (ImageReadError, ModelLoadError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
