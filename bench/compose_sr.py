"""Which way the compose path should super-resolve, and fill a two-filter green: measured on held-out pictures.

    nice python bench/compose_sr.py [--packages_root /work/data/pkg] [--out bench/compose_sr.md]

Data (never trained or tuned on, `data.domains`): the Hubble-credited
Stellarium pictures (`is_held_out_credit`) that are at least `--crop` px both
ways and not grey, their central `--crop` px square (`--stellarium` > 0 keeps
that many, evenly spaced by name); and the `--crop` px grid crops of
scikit-image's Hubble Deep Field (`data.domains.load_hdf`; `--hdf` > 0 keeps
the first that many). All of them by default: 40 + 9 at 256 px, about a minute.

SR (`pipeline.compose --sr_on`): HR = the crop, LR = `pipeline.evaluation.make_lr`
(antialiased bicubic /4, 8-bit rounded, as `pipeline.crossdomain`). Each
`SR_ON` mode runs exactly as the compose path runs it: `pipeline.full.upscaled_bands`
with `pipeline.compose_models.SROnUpscaler` and the default consistency step
(`--consistency auto`: antialiased bicubic). Scored as `pipeline.crossdomain`
does: RGB PSNR on 8-bit levels with 4 px shaved (`pipeline.evaluation.psnr_255`),
per-channel bias mean(SR - HR) in levels (`crossdomain_metrics.channel_bias`),
reported as its absolute value averaged over the images; PIL bicubic beside them.

Two filters (`--two_filter_green`): each HR crop's R and B are the two
measured bands, its G the truth; `mean` is (R + B) / 2 and `colouriser` is
`pipeline.compose_models.colouriser_green` with the default colouriser at its
working size. Scored by the MSE of G against the truth on 8-bit levels.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def held_out_crops(root: str, crop: int, n_stellarium: int, n_hdf: int) -> list[tuple[str, str, object]]:
    """[(domain, name, HR crop float32 [crop, crop, 3] in [0, 1])], always the same ones."""
    import numpy as np

    from data.domains import load_hdf, load_stellarium_hubble
    from pipeline.crossdomain_metrics import is_grey

    out = []
    usable = [d for d in load_stellarium_hubble(root) if min(d.image.shape[:2]) >= crop]
    centred = []
    for d in usable:
        h, w = d.image.shape[:2]
        c = d.image[(h - crop) // 2 : (h - crop) // 2 + crop, (w - crop) // 2 : (w - crop) // 2 + crop]
        if not is_grey(c):
            centred.append((d.name, np.ascontiguousarray(c)))
    n = min(n_stellarium or len(centred), len(centred))
    pick = np.linspace(0, len(centred) - 1, n).round().astype(int)
    out += [("stellarium-hubble", centred[i][0], centred[i][1]) for i in sorted(set(pick))]
    hdf = load_hdf(crop)
    out += [("hdf", d.name, d.image) for d in hdf[: n_hdf or len(hdf)]]
    return out


def sr_rows(crops, upscaler, scale: int = 4) -> list[dict]:
    """Per-image scores of PIL bicubic and every `SR_ON` mode (with the default consistency)."""
    import numpy as np

    from pipeline.compose_models import SR_ON, SROnUpscaler
    from pipeline.crossdomain_metrics import channel_bias
    from pipeline.evaluation import make_lr, pil_upscale, psnr_255
    from pipeline.config import FullOptions
    from pipeline.full import upscaled_bands

    consistency = "auto"  # ComposeConfig's default
    rows = []
    for domain, name, hr in crops:
        lr = make_lr(hr, scale)
        methods = {"bicubic (PIL)": lambda: pil_upscale(lr, scale, "bicubic")}
        for mode in SR_ON:
            methods[f"--sr_on {mode}"] = (lambda m=mode: np.concatenate(list(upscaled_bands(
                lr, SROnUpscaler(upscaler, m), scale, FullOptions(), consistency=consistency)), axis=0))
        for method, fn in methods.items():
            t0 = time.perf_counter()
            sr = fn()
            seconds = time.perf_counter() - t0
            bias = channel_bias(hr, sr, scale)
            rows.append({"domain": domain, "name": name, "method": method, "psnr": psnr_255(hr, sr, scale),
                         "bias": np.abs(bias), "seconds": seconds})
    return rows


def green_rows(crops, colorizer, size: int) -> list[dict]:
    """Per-image MSE (8-bit levels) of the two-filter green against the true G: mean vs colouriser."""
    import numpy as np

    from pipeline.compose_models import colouriser_green
    from pipeline.evaluation import quantize

    rows = []
    for domain, name, hr in crops:
        truth = quantize(hr[..., 1])
        mean = 0.5 * (hr[..., 0] + hr[..., 2])
        usual = np.stack([hr[..., 0], mean, hr[..., 2]], axis=-1)
        ours = colouriser_green(usual, colorizer, size)
        for method, g in (("mean", mean), ("colouriser", ours)):
            rows.append({"domain": domain, "name": name, "method": method,
                         "mse": float(np.mean((quantize(g) - truth) ** 2))})
    return rows


def tables(sr: list[dict], green: list[dict]) -> str:
    import numpy as np

    def groups(rows):
        for domain in ("stellarium-hubble", "hdf", "all"):
            sel = [r for r in rows if domain in ("all", r["domain"])]
            if sel:
                yield domain, sel

    lines = ["| data | n | method | RGB PSNR (dB) | vs bicubic (dB) | images better than rgb | "
             "abs bias R / G / B (levels) | s / image |", "|---|---|---|---|---|---|---|---|"]
    for domain, sel in groups(sr):
        methods = list(dict.fromkeys(r["method"] for r in sel))
        base = np.mean([r["psnr"] for r in sel if r["method"] == "bicubic (PIL)"])
        rgb = {(r["domain"], r["name"]): r["psnr"] for r in sel if r["method"] == "--sr_on rgb"}
        for m in methods:
            rs = [r for r in sel if r["method"] == m]
            psnr, bias = np.mean([r["psnr"] for r in rs]), np.mean([r["bias"] for r in rs], axis=0)
            wins = "" if m == "--sr_on rgb" else f"{sum(r['psnr'] > rgb[(r['domain'], r['name'])] for r in rs)}"
            lines.append(f"| {domain} | {len(rs)} | {m} | {psnr:.2f} | {psnr - base:+.2f} | {wins} | "
                         f"{bias[0]:.2f} / {bias[1]:.2f} / {bias[2]:.2f} | {np.mean([r['seconds'] for r in rs]):.2f} |")
    lines += ["", "| data | n | two-filter green | MSE of G (levels^2) | images where better than mean |",
              "|---|---|---|---|---|"]
    for domain, sel in groups(green):
        by = {m: {r["name"]: r["mse"] for r in sel if r["method"] == m} for m in ("mean", "colouriser")}
        for m in ("mean", "colouriser"):
            wins = "" if m == "mean" else f"{sum(by[m][k] < by['mean'][k] for k in by[m])} of {len(by[m])}"
            lines.append(f"| {domain} | {len(by[m])} | {m} | {np.mean(list(by[m].values())):.1f} | {wins} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages_root", default="/work/data/pkg")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "compose_sr.md"))
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--stellarium", type=int, default=0, help="at most this many (0: all, 40 here)")
    parser.add_argument("--hdf", type=int, default=0, help="at most this many (0: all, 9 of 256 px)")
    parser.add_argument("--srgan_model", default=None, help="default: the bundled SR model")
    parser.add_argument("--colorize_model", default=None, help="default: the bundled colouriser")
    parser.add_argument("--size", type=int, default=224, help="colouriser working size")
    args = parser.parse_args()

    from common.files import atomic_write_bytes
    from pipeline.bundled import resolve_model
    from pipeline.models import load_model

    upscaler = load_model(resolve_model(args.srgan_model, "srgan"), "srgan")
    colorizer = load_model(resolve_model(args.colorize_model, "colorize"), "colorize")
    crops = held_out_crops(args.packages_root, args.crop, args.stellarium, args.hdf)
    t0 = time.perf_counter()
    sr = sr_rows(crops, upscaler)
    green = green_rows(crops, colorizer, args.size)
    names = ", ".join(n for _, n, _ in crops)
    md = "\n".join([
        "# Compose: which way to super-resolve, and the two-filter green", "",
        f"Held-out crops of {args.crop} px ({names}); SR: {upscaler.description}; colouriser: "
        f"{colorizer.description} at {args.size}. Protocol: bench/compose_sr.py docstring. "
        f"{time.perf_counter() - t0:.0f} s.", "", tables(sr, green), ""])
    atomic_write_bytes(args.out, md.encode())
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
