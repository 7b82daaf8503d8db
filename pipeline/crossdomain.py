"""Cross-domain evaluation: SR and colour scored on whole domains nobody trained on.

The held-out domains and their loaders are in `data.domains` (Hubble-credited
Stellarium pictures, the Hubble Deep Field, raw HST frames); each is scored on
its own, per-image metrics averaged over the domain's images.

SR on pictures: HR mod-cropped to 4, LR = `pipeline.evaluation.make_lr`
(`tf.image.resize` bicubic, antialias=True, 8-bit rounded); every output rounded
to 8-bit levels; RGB and BT.601 Y PSNR/SSIM with `scale` px shaved; per-channel
mean bias (SR - HR, levels, same shaved region); PSNR of the full image's outer
8 px ring. Bicubic and Lanczos (PIL) rows always beside the models.

SR on raw frames (grey, linear units): the display image is the pipeline's
stretch (`data.io.fit_stretch` on the HR frame, asinh / 99.5 %), repeated to 3
channels; three LR kinds, kept float as a FITS frame reaches the pipeline:
`bicubic` (make_lr of the HR display image), `bicubic-linear` (antialiased
bicubic of the LINEAR data, then the same stretch) and `block` (4x4 block mean
of the linear data, then the same stretch). Upscalers are called
`fn(lr, stretch=Stretch, operator="bicubic"|"block")` so a flux-consistent one
can work in linear units. Plus star photometry (`pipeline.photometry`): stars
found on the HR linear frame, aperture flux on truth and on the SR output's
channel mean taken back to linear units with `stretch.invert`; median |dF/F|
pooled over the domain's stars.

Colour (picture domains, at 224 resized like `evaluate_colour`): MSE in 0..255
levels against the grey baseline, colourfulness (Hasler & Suesstrunk 2003),
mean HSV saturation, and HSV hue error on pixels whose true saturation > 0.2.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence

import numpy as np

from data.domains import DOMAINS, HDF_CROP, RAW_CROP
from pipeline.crossdomain_metrics import (RING, channel_bias, colourfulness, hue_error, is_grey,
                                          psnr_of_mse, ring_mse)
from pipeline.evaluation import grey_baseline, make_lr, mse_255, pil_upscale, quantize, saturation, sr_metrics, to_size
from pipeline.inference import sr_output
from pipeline.photometry import DEFAULT_APERTURES, find_stars, relative_flux_errors

SCALE = 4
PICTURE_DOMAINS = ("stellarium-hubble", "hdf")
LR_KINDS = ("bicubic", "bicubic-linear", "block")
STAR_K = 50.0  # detection threshold in robust sigmas: bright stars only
STAR_ISOLATION = 12.0  # px (HR) to any other peak at least as bright: outside the annulus

# --------------------------------------------------------------------------- upscalers


def plain(fn: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """An upscaler `fn(lr)` that ignores the raw-frame keywords (`stretch`, `operator`)."""
    return lambda lr, stretch=None, operator="bicubic": fn(lr)


def baseline_upscalers(scale: int = SCALE) -> dict[str, Callable]:
    """The rows that are always there: PIL bicubic and Lanczos on 8-bit levels."""
    return {"bicubic (PIL)": plain(lambda lr: pil_upscale(lr, scale, "bicubic")),
            "Lanczos (PIL)": plain(lambda lr: pil_upscale(lr, scale, "lanczos"))}


def consistency_function() -> Optional[Callable]:
    """`pipeline.consistency.consistent_upscale` when that module exists, else None.

    The hook for the flux-consistent post-processing (issue 14, item 4): when it
    is there, every model also gets a `+ consistency` row.
    """
    try:
        from pipeline.consistency import consistent_upscale
    except ImportError:
        return None
    return consistent_upscale


def model_upscalers(label: str, run: Callable[[np.ndarray], np.ndarray]) -> dict[str, Callable]:
    """A model's rows: `label` (its output as is) and, with `pipeline.consistency`, `label + consistency`."""
    rows = {label: plain(run)}
    consistent = consistency_function()
    if consistent is not None:
        # What `pipeline.run --consistency auto` does: bicubic for pictures, 4x4 block means in
        # linear units for a raw frame (it cannot know how the frame's LR came about).
        rows[label + " + consistency"] = (
            lambda lr, stretch=None, operator="bicubic": consistent(
                run, lr, operator="bicubic" if stretch is None else "block", stretch=stretch))
    return rows


# --------------------------------------------------------------------------- scoring


def _sr_values(hr: np.ndarray, sr: np.ndarray, scale: int) -> dict:
    values = sr_metrics(hr, sr, scale)
    bias = channel_bias(hr, sr, scale)
    values.update({"bias_r": bias[0], "bias_g": bias[1], "bias_b": bias[2], "ring_mse": ring_mse(hr, sr)})
    return values


def _upscale(fn: Callable, lr: np.ndarray, scale: int, **kw) -> np.ndarray:
    sr = sr_output(fn(lr, **kw))
    want = (lr.shape[0] * scale, lr.shape[1] * scale, 3)
    if sr.shape != want:
        raise ValueError(f"upscaler returned shape {sr.shape}, expected {want}")
    return sr


def _rows(domain: str, lr_kind: str, per_method: dict[str, list[dict]]) -> list[dict]:
    out = []
    for method, values in per_method.items():
        row = {"domain": domain, "lr": lr_kind, "method": method, "n": len(values)}
        for key in values[0]:
            if key != "flux_errors":
                row[key] = float(np.mean([v[key] for v in values]))
        # Pooled: many Stellarium images have black borders every method reproduces exactly,
        # so a per-image ring PSNR would be infinite and so would its mean.
        row["ring_psnr"] = psnr_of_mse(row["ring_mse"])
        if "flux_errors" in values[0]:
            errors = np.concatenate([v["flux_errors"] for v in values])
            row["stars"] = int(errors.size)
            row["flux_err_median"] = float(np.median(np.abs(errors))) if errors.size else float("nan")
            row["flux_dev_median"] = float(np.median(errors)) if errors.size else float("nan")
        out.append(row)
    return out


def score_sr_pictures(domain: str, images: Sequence[np.ndarray], upscalers: dict[str, Callable],
                      scale: int = SCALE) -> list[dict]:
    """SR rows of one picture domain; `images` RGB `[H, W, 3]` in [0, 1], H and W multiples of `scale`."""
    per_method: dict[str, list] = {name: [] for name in upscalers}
    for hr in images:
        lr = make_lr(hr, scale)
        for name, fn in upscalers.items():
            per_method[name].append(_sr_values(hr, _upscale(fn, lr, scale), scale))
    return _rows(domain, "bicubic", per_method)


def raw_lr(linear: np.ndarray, stretch, kind: str, scale: int = SCALE) -> np.ndarray:
    """The LR display image `[h, w, 3]` of a raw frame for one of `LR_KINDS` (see module doc)."""
    if kind == "bicubic":
        return make_lr(np.repeat(stretch.apply(linear)[..., None], 3, -1), scale, quantize=False)
    if kind not in LR_KINDS:
        raise ValueError(f"unknown LR kind {kind!r}; choose from {LR_KINDS}")
    from common.back_projection import downscale

    # The same `down` as the consistency step's (pipeline.consistency), on the linear data.
    operator = "bicubic" if kind == "bicubic-linear" else "block"
    small = np.asarray(downscale(np.asarray(linear, np.float32)[None, ..., None], scale, operator))[0, ..., 0]
    return np.repeat(stretch.apply(small)[..., None], 3, -1)


def score_sr_raw(frames: Sequence, upscalers: dict[str, Callable], scale: int = SCALE,
                 star_k: float = STAR_K) -> tuple[list[dict], dict]:
    """SR rows of the raw-frame domain, one set per LR kind, with star photometry.

    Args:
        frames: `data.domains.DomainImage`s with `linear` `[H, W]`.

    Returns:
        (rows, facts): facts has `stars` (found per frame) and `floor`, the median
        |dF/F| of the HR display image itself taken back to linear units (what
        the stretch's clipping alone costs).
    """
    from data.io import fit_stretch

    per_kind = {kind: {name: [] for name in upscalers} for kind in LR_KINDS}
    floor, found = [], {}
    for frame in frames:
        linear = np.asarray(frame.linear, np.float32)
        stretch = fit_stretch(frame.name, linear)
        hr = np.repeat(stretch.apply(linear)[..., None], 3, -1)
        stars = find_stars(linear, k=star_k, isolation=STAR_ISOLATION, saturation=stretch.vmax)
        found[frame.name] = len(stars)
        floor.append(np.abs(relative_flux_errors(linear, stretch.invert(hr[..., 0]), stars)))
        for kind in LR_KINDS:
            lr = raw_lr(linear, stretch, kind, scale)
            for name, fn in upscalers.items():
                sr = _upscale(fn, lr, scale, stretch=stretch, operator=kind)
                values = _sr_values(hr, sr, scale)
                values["flux_errors"] = relative_flux_errors(linear, stretch.invert(sr.mean(axis=-1)), stars)
                per_kind[kind][name].append(values)
    rows = [r for kind in LR_KINDS for r in _rows("raw-hst", kind, per_kind[kind])]
    floor_all = np.concatenate(floor) if floor else np.zeros(0)
    return rows, {"stars": found, "floor": float(np.median(floor_all)) if floor_all.size else float("nan")}


def _nanmean(values: Sequence[float]) -> float:
    """Mean over the values that are not NaN (NaN when all are: e.g. no pixel saturated enough for a hue)."""
    v = np.asarray(values, np.float64)
    return float(v[~np.isnan(v)].mean()) if (~np.isnan(v)).any() else float("nan")


def score_colour(domain: str, items: Sequence, colorize: Optional[Callable], size: int = 224) -> tuple[list[dict], list]:
    """Colour rows of one picture domain.

    Args:
        items: `DomainImage`s (RGB `image`); exactly grey ones are left out (nothing to score).
        colorize: grey `[size, size, 1]` -> RGB `[size, size, 3]` in [0, 1]; None scores the baseline only.

    Returns:
        (rows, samples): samples are (name, grey, ours, truth) at `size` for the figure.
    """
    from data.colour import rgb_to_luma

    methods = {"grey baseline (no chroma)": []}
    if colorize is not None:
        methods["colouriser"] = []
    samples, skipped = [], 0
    for item in items:
        if is_grey(item.image):
            skipped += 1
            continue
        truth = to_size(item.image, size)
        grey = np.asarray(rgb_to_luma(truth), np.float32)
        outputs = {"grey baseline (no chroma)": grey_baseline(truth)}
        if colorize is not None:
            outputs["colouriser"] = np.clip(np.asarray(colorize(grey), np.float32), 0, 1)
            samples.append((item.name, grey, outputs["colouriser"], truth))
        for name, out in outputs.items():
            methods[name].append({
                "mse": mse_255(truth, out), "colourfulness": colourfulness(out),
                "truth_colourfulness": colourfulness(truth), "saturation": saturation(quantize(out) / 255.0),
                "truth_saturation": saturation(quantize(truth) / 255.0),
                "hue_error": float("nan") if name.startswith("grey") else hue_error(truth, out)})
    rows = []
    if not methods["grey baseline (no chroma)"]:
        return rows, samples
    grey_mse = _nanmean([v["mse"] for v in methods["grey baseline (no chroma)"]])
    for name, values in methods.items():
        mean = {k: _nanmean([v[k] for v in values]) for k in values[0]}
        rows.append({"domain": domain, "method": name, "n": len(values), "skipped_grey": skipped,
                     "mse": mean["mse"], "mse_vs_grey": mean["mse"] / grey_mse,
                     "colourfulness": mean["colourfulness"], "truth_colourfulness": mean["truth_colourfulness"],
                     "colourfulness_ratio": mean["colourfulness"] / mean["truth_colourfulness"],
                     "saturation": mean["saturation"], "truth_saturation": mean["truth_saturation"],
                     "saturation_ratio": mean["saturation"] / mean["truth_saturation"],
                     "hue_error_deg": mean["hue_error"]})
    return rows, samples


# --------------------------------------------------------------------------- the whole run


@dataclasses.dataclass(frozen=True)
class CrossDomainConfig:
    """What `run_cross_domain` scores and where it writes.

    Attributes:
        packages_root: folder where the Debian packages were unpacked (`dpkg-deb -x`).
        output: folder for `crossdomain.md`, `crossdomain_sr.csv`, `crossdomain_colour.csv`.
        domains: which of `data.domains.DOMAINS` to score.
        size: colouriser working size.
        hdf_crop, raw_crop: crop sides for the HDF and the raw frames (see `data.domains`).
        max_images: at most this many images per domain (0: all).
        figure: the colour grid PNG ("" -> `output/colour_crossdomain.png`).
        figure_images: at least this many images in the grid.
    """

    packages_root: str
    output: str
    domains: tuple = DOMAINS
    size: int = 224
    hdf_crop: int = HDF_CROP
    raw_crop: int = RAW_CROP
    max_images: int = 0
    figure: str = ""
    figure_images: int = 8


def run_cross_domain(config: CrossDomainConfig, upscalers: dict[str, Callable], colorize: Optional[Callable] = None,
                     extra_notes: Sequence[str] = (), log=print) -> dict:
    """Scores every domain of `config`, writes the tables (and the colour grid when there is a colouriser).

    Args:
        upscalers: {row name: fn(lr, stretch=None, operator="bicubic") -> sr}; the
            bicubic and Lanczos rows are added in front when missing (see `plain`).
        colorize: grey `[S, S, 1]` -> RGB `[S, S, 3]`; None: colour table has the grey baseline only.
        extra_notes: extra lines for the Markdown's protocol notes (model descriptions).

    Returns:
        {"sr": [row dict], "colour": [row dict], "files": [paths written]}.

    Raises:
        data.domains.DomainDataError: a domain's package is missing under `packages_root`.
    """
    from common.files import atomic_write_bytes
    from data.domains import load_domain
    from pipeline.crossdomain_report import colour_grid, colour_table, pick_samples, sr_table

    upscalers = {**{k: v for k, v in baseline_upscalers().items() if k not in upscalers}, **upscalers}
    loaded = {d: load_domain(d, config.packages_root, config.max_images, config.hdf_crop, config.raw_crop)
              for d in config.domains}  # all first: a missing package fails before any work
    sr_rows, colour_rows, samples, facts = [], [], {}, {}
    for domain, items in loaded.items():
        log(f"{domain}: {len(items)} images")
        if domain == "raw-hst":
            rows, facts = score_sr_raw(items, upscalers)
            sr_rows += rows
            continue
        sr_rows += score_sr_pictures(domain, [i.image for i in items], upscalers)
        rows, samples[domain] = score_colour(domain, items, colorize, config.size)
        colour_rows += rows
    consistent = consistency_function()
    notes = [
        "Held-out domains, never trained or tuned on (data.domains): "
        + "; ".join(f"{d}: {len(v)} images" for d, v in loaded.items()) + ".",
        f"SR x{SCALE}, pictures: HR mod-cropped to {SCALE}; LR by pipeline.evaluation.make_lr = tf.image.resize "
        "bicubic with antialias=True, rounded to 8 bits (not PIL's bicubic, which the issue's protocol used; "
        f"both antialias). Outputs rounded to 8-bit levels; PSNR/SSIM on RGB and BT.601 Y with {SCALE} px "
        f"shaved; bias = mean(SR - HR) per channel in levels on the same region; ring = PSNR of the full "
        f"image's outer {RING} px, from the domain's mean ring MSE (black borders that every method gets exactly "
        "right make a per-image ring PSNR infinite). Other values: per-image, averaged over the domain's images.",
        "SR, raw-hst: display = data.io.fit_stretch of the HR linear frame (asinh, 99.5 % interval), repeated to "
        "RGB; LR kept float: 'bicubic' = make_lr of the HR display image, 'bicubic-linear' = antialiased "
        "bicubic (tf.image.resize) of the linear data, 'block' = 4x4 block mean of the linear data, each of the "
        "linear ones then the same stretch. Upscalers get fn(lr, stretch=, operator=).",
        f"Star photometry: peaks on the HR linear frame > median + {STAR_K:g} robust sigma, {STAR_ISOLATION:g} px "
        f"from any peak at least as bright, no aperture/annulus pixel at or above the stretch's vmax; aperture "
        f"r = {DEFAULT_APERTURES.r_aperture:g} px, background = median of the {DEFAULT_APERTURES.r_inner:g}-"
        f"{DEFAULT_APERTURES.r_outer:g} px annulus; SR taken back to linear units by stretch.invert of its "
        "channel mean; median |dF/F| (and signed median dF/F: negative = flux lost) pooled over all stars of "
        "the domain.",
    ]
    if facts:
        notes.append("Stars per frame: " + ", ".join(f"{k} {v}" for k, v in facts["stars"].items())
                     + f". Floor: the HR display image itself, inverted, has median |dF/F| {facts['floor']:.4f}.")
    notes.append(f"Colour at {config.size} (the original resized as pipeline.evaluation.to_size does); MSE in "
                 "0..255 levels; grey baseline = luminance kept, no chroma; colourfulness = Hasler & Suesstrunk "
                 "2003 on levels, domain mean, ratio = ours / truth; saturation = mean HSV saturation; hue error = "
                 "mean circular |dH| in degrees over pixels whose true saturation > 0.2. Raw frames have no colour "
                 "truth and are not in the colour table.")
    notes.append("Flux-consistent post-processing (pipeline.consistency): " +
                 ("present, '+ consistency' rows." if consistent else "not present in this checkout; no "
                  "'+ consistency' rows (crossdomain.model_upscalers adds them once the module exists)."))
    notes += list(extra_notes)
    os.makedirs(config.output, exist_ok=True)
    sr_md, sr_csv = sr_table(sr_rows)
    col_md, col_csv = colour_table(colour_rows)
    lr_line = ("LR: `bicubic` = pipeline.evaluation.make_lr, tf.image.resize bicubic with antialias=True, /4 "
               "(8-bit rounded for pictures, float for raw frames: of the display image); `bicubic-linear` = the "
               "same resize of the raw frame's linear data, then its display stretch; `block` = 4x4 block mean "
               "of the raw frame's linear data, then its display stretch.")
    md = "\n".join(["# Cross-domain evaluation", "", "## Super-resolution x4", "", lr_line, "", sr_md, "",
                    "## Colourisation", "", col_md, "", "## Protocol", "", *[f"- {n}" for n in notes], ""])
    files = [os.path.join(config.output, n) for n in ("crossdomain.md", "crossdomain_sr.csv", "crossdomain_colour.csv")]
    for path, text in zip(files, (md, sr_csv, col_csv)):
        atomic_write_bytes(path, text.encode())
    if colorize is not None and samples:
        figure = config.figure or os.path.join(config.output, "colour_crossdomain.png")
        colour_grid(figure, pick_samples(samples, config.figure_images))
        files.append(figure)
    log(md)
    return {"sr": sr_rows, "colour": colour_rows, "files": files}
