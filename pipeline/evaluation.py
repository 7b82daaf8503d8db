"""The paper's results table, computed honestly (library part of `pipeline.evaluate`).

Protocol (mission.md, "Metric conventions"):
- Every output is rounded to 8-bit levels first; errors are computed in float64
  on those levels (0..255). The paper's script subtracted uint8 arrays, so its
  squared differences wrapped modulo 256 and its MSE (201.8 / 180.3) is not the
  real error and cannot be compared with these numbers.
- SR: HR mod-cropped to the scale; LR by antialiased bicubic
  (`tf.image.resize(antialias=True)`, rounded to 8 bits); `scale` px shaved from
  each border; PSNR on RGB and on BT.601 Y; SSIM with an 11x11 Gaussian window.
  Per-image values are averaged over images.
- Colourisation: at 224x224 against the original colour image resized the same
  way the pipeline resizes; the "grey" baseline keeps luminance and predicts no
  chroma (UV = 0.5).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from common.metrics import luma_bt601, ssim
from data.colour import rgb_to_luma
from data.examples import resize_image
from data.normalize import to_uint8
from data.sr_examples import degrade
from pipeline.inference import sr_output


def quantize(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> float64 8-bit levels in [0, 255] (rounded, as saved to PNG)."""
    return to_uint8(image).astype(np.float64)


def shave(image: np.ndarray, border: int) -> np.ndarray:
    return image[border:-border, border:-border] if border > 0 else image


def _levels(ref: np.ndarray, out: np.ndarray, border: int, y_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Both images on float64 8-bit levels, `border` px shaved; BT.601 Y (16..235) with `y_only`."""
    a, b = shave(quantize(ref), border), shave(quantize(out), border)
    return (luma_bt601(a / 255.0), luma_bt601(b / 255.0)) if y_only else (a, b)


def mse_255(ref: np.ndarray, out: np.ndarray, border: int = 0) -> float:
    """MSE on 8-bit levels, float64, after shaving `border` px."""
    a, b = _levels(ref, out, border)
    return float(np.mean((a - b) ** 2))


def psnr_255(ref: np.ndarray, out: np.ndarray, border: int = 0, y_only: bool = False) -> float:
    """PSNR (dB) of one image pair on 8-bit levels: 10 log10(255^2 / MSE), float64.

    Args:
        ref, out: `[H, W, 3]` float in [0, 1].
        border: px shaved from each side.
        y_only: compare BT.601 Y (16..235) instead of RGB.
    """
    a, b = _levels(ref, out, border, y_only)
    err = float(np.mean((a - b) ** 2))
    return float("inf") if err == 0 else 10.0 * np.log10(255.0**2 / err)


def ssim_255(ref: np.ndarray, out: np.ndarray, border: int = 0, y_only: bool = False) -> float:
    """SSIM of one pair on 8-bit levels: `common.metrics.ssim` (Gaussian 11x11, sigma 1.5, K1 .01, K2 .03)."""
    a, b = _levels(ref, out, border, y_only)
    return float(ssim(a[None], b[None], max_val=255.0))


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    h, w = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:h, :w]


def make_lr(hr: np.ndarray, scale: int, quantize: bool = True) -> np.ndarray:
    """Antialiased bicubic downscale (`tf.image.resize(antialias=True)`), clipped: training's bicubic LR (`degrade`).

    Args:
        hr: `[H, W, C]` float in [0, 1], H and W multiples of `scale`.
        scale: integer factor.
        quantize: round to 8-bit levels (as a PNG input is); False keeps float
            (as a stretched FITS frame reaches the pipeline).

    Returns:
        `[H/scale, W/scale, C]` float32 in [0, 1].

    Raises:
        ValueError: H or W is not a multiple of `scale` (`mod_crop` first).
    """
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"make_lr: HR {hr.shape[0]}x{hr.shape[1]} is not a multiple of {scale}; mod_crop it first")
    return np.asarray(degrade(np.asarray(hr, np.float32)[None], np.zeros(1, np.float32), scale,
                              quantize=quantize)[0])


def pil_upscale(image: np.ndarray, scale: int, method: str) -> np.ndarray:
    """Bicubic or Lanczos upscaling with Pillow on 8-bit levels, as a float [0, 1] image."""
    resample = {"bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}[method]
    h, w = image.shape[:2]
    up = Image.fromarray(to_uint8(image)).resize((w * scale, h * scale), resample)
    return np.asarray(up, dtype=np.float32) / 255.0


def to_size(image: np.ndarray, size: int) -> np.ndarray:
    """The pipeline's resize (antialiased bilinear) to `size` x `size`."""
    return np.asarray(resize_image(image[None], size, size)[0])


def grey_baseline(rgb: np.ndarray) -> np.ndarray:
    """Luminance kept, no chroma: the image as a neutral grey."""
    y = np.asarray(rgb_to_luma(rgb), np.float32)
    return np.repeat(y, 3, axis=-1)


def saturation(rgb: np.ndarray) -> float:
    """Mean HSV saturation (max - min) / max of an RGB image in [0, 1]; 0 for black."""
    mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
    return float(np.mean(np.where(mx > 1e-6, (mx - mn) / np.maximum(mx, 1e-6), 0.0)))


@dataclasses.dataclass
class Row:
    """One line of the table: a method and its per-image mean metrics."""

    section: str
    method: str
    values: dict


def _mean(rows: list[dict]) -> dict:
    keys = rows[0].keys()
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def sr_metrics(hr: np.ndarray, sr: np.ndarray, border: int) -> dict:
    return {
        "psnr_rgb": psnr_255(hr, sr, border),
        "psnr_y": psnr_255(hr, sr, border, y_only=True),
        "ssim_rgb": ssim_255(hr, sr, border),
        "ssim_y": ssim_255(hr, sr, border, y_only=True),
    }


def evaluate_sr(images: Sequence[np.ndarray], upscalers: dict[str, Callable], scale: int) -> list[Row]:
    """SR table on colour images: each method maps LR `[h, w, 3]` -> `[scale*h, scale*w, 3]`."""
    per_method: dict[str, list] = {name: [] for name in upscalers}
    for img in images:
        hr = mod_crop(img, scale)
        lr = make_lr(hr, scale)
        for name, fn in upscalers.items():
            per_method[name].append(sr_metrics(hr, sr_output(fn(lr)), scale))
    return [Row("super-resolution x%d" % scale, name, _mean(v)) for name, v in per_method.items() if v]


def evaluate_colour(images: Sequence[np.ndarray], colorize: Optional[Callable], size: int) -> list[Row]:
    """Colourisation at `size` against the original; `colorize` maps grey `[S,S,1]` -> RGB `[S,S,3]`."""
    methods: dict[str, list] = {"grey baseline (no chroma)": []}
    if colorize is not None:
        methods["colouriser"] = []
    truth_sat = []
    for img in images:
        ref = to_size(img, size)
        truth_sat.append(saturation(quantize(ref) / 255.0))
        outputs = {"grey baseline (no chroma)": grey_baseline(ref)}
        if colorize is not None:
            grey = np.asarray(rgb_to_luma(ref), np.float32)
            outputs["colouriser"] = np.clip(colorize(grey), 0, 1)
        for name, out in outputs.items():
            err = mse_255(ref, out)
            methods[name].append({
                "mse_255": err,
                "psnr_rgb": psnr_255(ref, out),
                "saturation": saturation(quantize(out) / 255.0),
                "truth_saturation": truth_sat[-1],
            })
    return [Row(f"colourisation at {size}", name, _mean(v)) for name, v in methods.items()]


def evaluate_end_to_end(
    images: Sequence[np.ndarray], colorize: Callable, upscale: Callable, size: int, scale: int
) -> list[Row]:
    """Grey -> colour at `size` -> x`scale`, against the original resized to `size*scale`."""
    out_size = size * scale
    methods: dict[str, list] = {
        "colourise + SR model": [], "colourise + bicubic": [], "true colour + bicubic": [], "true colour + SR model": [],
    }
    for img in images:
        target = to_size(img, out_size)
        small = to_size(img, size)
        grey = np.asarray(rgb_to_luma(small), np.float32)
        colour = np.clip(colorize(grey), 0, 1)
        outputs = {
            "colourise + SR model": upscale(colour),
            "colourise + bicubic": pil_upscale(colour, scale, "bicubic"),
            "true colour + bicubic": pil_upscale(small, scale, "bicubic"),
            "true colour + SR model": upscale(small),
        }
        for name, out in outputs.items():
            out = sr_output(out)
            methods[name].append({"mse_255": mse_255(target, out), "psnr_rgb": psnr_255(target, out, scale)})
    return [Row(f"end to end {size} -> {out_size}", name, _mean(v)) for name, v in methods.items()]


def inception_score(images: Sequence[np.ndarray], weights: str, splits: int = 10) -> tuple[Optional[tuple], str]:
    """Inception Score (mean, std over `splits`), Inception v3 at 299, as tsc2017/Inception-Score.

    Args:
        images: RGB `[H, W, 3]` in [0, 1].
        weights: `imagenet` (Keras download; needs internet), a path to weights, or `none`.

    Returns:
        ((mean, std) or None, a note saying why when None).
    """
    if weights == "none":
        return None, "not available: no Inception v3 weights given (--inception_weights)"
    try:
        import keras

        model = keras.applications.InceptionV3(weights=weights if weights == "imagenet" else None, include_top=True)
        if weights != "imagenet":
            model.load_weights(weights)
    except Exception as e:  # offline, bad file: report instead of a number
        return None, f"not available: Inception v3 weights could not be loaded ({type(e).__name__}: {str(e)[:120]})"
    x = np.stack([to_size(im, 299) for im in images]) * 2.0 - 1.0
    preds = model.predict(x, batch_size=16, verbose=0).astype(np.float64)
    scores = []
    for part in np.array_split(preds, min(splits, len(preds))):
        py = part.mean(axis=0, keepdims=True)
        kl = part * (np.log(part + 1e-12) - np.log(py + 1e-12))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return (float(np.mean(scores)), float(np.std(scores))), ""


IS_NOTE = ("The Inception Score rates how confidently an ImageNet classifier recognises objects; "
           "astronomy images hold no ImageNet classes and a few hundred images give a noisy estimate, "
           "so it means little here (reported because the paper did).")


def model_label(model) -> str:
    """The table's name for an SR export: `SR model <folder> (<phase>)`."""
    phase = model.config.get("phase") or model.config.get("export_phase")
    base = os.path.basename(os.path.normpath(model.path))
    return f"SR model {base}" + (f" ({phase})" if phase else "")


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
    from common.files import atomic_write_bytes
    from data.io import ImageReadError, read_image
    from pipeline.figures import side_by_side
    from pipeline.models import load_found, model_scale

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

    # Named as pipeline.run names models (found from any folder); scored on the SavedModel.
    colorizer = load_found(config.colorize_model, "colorize", engine="savedmodel")
    upscalers = [load_found(p, "srgan", engine="savedmodel") for p in config.srgan_models]
    scale = model_scale(upscalers[0])
    if any(model_scale(u) != scale for u in upscalers):
        raise ValueError("all --srgan_model exports must have the same scale")

    def colorize(grey):
        return colorizer.run(grey[None])[0]

    def runner(model):
        return lambda lr: model.run(lr[None])[0]

    sr_methods = {"bicubic (PIL)": lambda lr: pil_upscale(lr, scale, "bicubic"),
                  "Lanczos (PIL)": lambda lr: pil_upscale(lr, scale, "lanczos")}
    for u in upscalers:
        sr_methods[model_label(u)] = runner(u)
    rows = evaluate_colour(images, colorize, config.size)
    rows += evaluate_sr(images, sr_methods, scale)
    rows += evaluate_end_to_end(images, colorize, runner(upscalers[0]), config.size, scale)

    finals = []
    if config.inception_weights != "none":  # the end-to-end outputs again, only when they will be scored
        for img in images:
            small = to_size(img, config.size)
            finals.append(sr_output(upscalers[0].run(colorize(np.asarray(rgb_to_luma(small), np.float32))[None])[0]))
    inception, why = inception_score(finals, config.inception_weights)
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
        hr = mod_crop(img, scale)
        lr = make_lr(hr, scale)
        sr_path = os.path.join(config.output, "figures", f"{name}_sr.png")
        side_by_side(sr_path, [("original", hr), ("bicubic", pil_upscale(lr, scale, "bicubic")),
                               (model_label(upscalers[0]), sr_output(upscalers[0].run(lr[None])[0]))],
                     title=f"{name}: x{scale} from antialiased-bicubic LR")
        small = to_size(img, config.size)
        grey = np.asarray(rgb_to_luma(small), np.float32)
        col_path = os.path.join(config.output, "figures", f"{name}_colour.png")
        side_by_side(col_path, [("grey input", grey), ("colourised", colorize(grey)), ("original", small)],
                     title=f"{name}: colourisation at {config.size}", zoom=False)
        written += [sr_path, col_path]
    log(md)
    return {"rows": rows, "inception": inception, "files": written}


def evaluate_cross_domain(config, srgan_models: Sequence[str], colorize_model: str, log=print) -> dict:
    """`pipeline.crossdomain.run_cross_domain` with the exported models loaded (`--cross_domain`).

    Each SR export gives a row (`sr_output(model.run(lr[None])[0])`, the
    default pipeline's SR) and, when `pipeline.consistency` exists, a
    `+ consistency` row; bicubic and Lanczos are always there.

    Args:
        config: `pipeline.crossdomain.CrossDomainConfig`.
        srgan_models: SR SavedModel folders (may be empty: baselines only).
        colorize_model: colouriser SavedModel folder ("" for none).
    """
    from pipeline.crossdomain import model_upscalers, run_cross_domain
    from pipeline.models import load_found, model_scale

    upscalers, notes = {}, []
    for path in srgan_models:
        model = load_found(path, "srgan", engine="savedmodel")
        if model_scale(model) != 4:
            raise ValueError(f"{path}: the cross-domain evaluation is x4; this model is x{model_scale(model)}")
        upscalers.update(model_upscalers(model_label(model), lambda lr, m=model: sr_output(m.run(lr[None])[0])))
        notes.append(f"SR: {model.description}.")
    colorize = None
    if colorize_model:
        colorizer = load_found(colorize_model, "colorize", engine="savedmodel")
        colorize = lambda grey: colorizer.run(grey[None])[0]  # noqa: E731
        notes.append(f"Colouriser: {colorizer.description}.")
    return run_cross_domain(config, upscalers, colorize, extra_notes=notes, log=log)
