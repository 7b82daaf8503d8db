"""How much of the true chroma a colouriser predicts: the correlation the colour bars need, measured.

    nice python bench/colour_ceiling.py [--packages_root /work/data/pkg] [--out bench/colour_ceiling.md]

With predicted chroma `p` and true chroma `t` (RGB minus its BT.601 grey,
pooled over a domain's pixels), the colour MSE against the grey baseline's is
1 + k^2 - 2 rho k, with k = |p| / |t| and rho their correlation. So
MSE <= 0.95x grey at k = 0.75 (colourfulness near the truth's) needs
rho >= 0.41. This script measures rho, k and MSE / grey at 224 px (the
originals resized by `pipeline.evaluation.to_size`, exactly grey ones left
out, as `pipeline.crossdomain.score_colour` does) for:

* the colourisers named by `--colorize_models` (exported SavedModels);
* a luminance table: the mean chroma of each of 32 luminance levels over the
  training images (Stellarium's nebula pictures that `data.domains` does not
  hold out, not grey, resized to 128 px), the simplest predictor there is.

on each held-out picture domain (`stellarium-hubble`, `hdf`), and, for the
table, inside the training collection: fit on one half of its images (a
seeded split) and scored on the other, both ways. A diagnostic: nothing is
chosen by it. About a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LEVELS = 32
BT601 = np.array([0.299, 0.587, 0.114], np.float32)


def chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(grey `[..., H, W]`, chroma = RGB minus grey `[..., H, W, 3]`) of RGB in [0, 1]."""
    grey = rgb @ BT601
    return grey, rgb - grey[..., None]


def levels(grey: np.ndarray) -> np.ndarray:
    return np.clip((grey * LEVELS).astype(int), 0, LEVELS - 1)


def fit_table(grey: np.ndarray, c: np.ndarray) -> np.ndarray:
    """`[LEVELS, 3]` mean chroma per luminance level."""
    table, count = np.zeros((LEVELS, 3)), np.zeros(LEVELS)
    idx = levels(grey).ravel()
    np.add.at(table, idx, c.reshape(-1, 3))
    np.add.at(count, idx, 1)
    return table / np.maximum(count, 1)[:, None]


def sums(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[p.t, p.p, t.t] for pooling over images."""
    p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
    return np.array([(p * t).sum(), (p * p).sum(), (t * t).sum()])


def figures(s: np.ndarray) -> tuple[float, float, float]:
    """(rho, k, MSE / grey) from pooled `sums`."""
    pt, pp, tt = s
    return pt / np.sqrt(pp * tt), np.sqrt(pp / tt), (tt - 2 * pt + pp) / tt


def training_images(root: str, size: int = 128) -> np.ndarray:
    """The trainable Stellarium pictures (not held out, not grey) at `size` px, `[N, size, size, 3]`."""
    from PIL import Image

    from data.domains import STELLARIUM_DIR, is_held_out_credit
    from data.io import read_rgb
    from data.stellarium import parse_textures_json
    from pipeline.crossdomain_metrics import is_grey

    folder = os.path.join(root, STELLARIUM_DIR)
    with open(os.path.join(folder, "textures.json"), encoding="utf-8") as f:
        credits = parse_textures_json(f.read())
    out = []
    for name in sorted(credits):
        path = os.path.join(folder, name)
        if is_held_out_credit(credits[name]["credit"]) or not os.path.isfile(path):
            continue
        image = read_rgb(path)
        if is_grey(image):
            continue
        small = Image.fromarray((image * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        out.append(np.asarray(small, np.float32) / 255.0)
    return np.stack(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages_root", default="/work/data/pkg")
    parser.add_argument("--colorize_models", default="checkpoints/colorize,checkpoints/colorize_classification")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/colour_ceiling.md")
    args = parser.parse_args()

    from data.domains import load_domain
    from pipeline.crossdomain_metrics import is_grey
    from pipeline.evaluation import to_size
    from pipeline.models import load_found

    train = training_images(args.packages_root)
    grey, c = chroma(train)
    rows = [f"Training images: {len(train)} (Stellarium, not held out, not grey, at 128 px).", "",
            "| data | predictor | rho | k | MSE / grey |", "|---|---|---|---|---|"]
    halves = np.array_split(np.random.default_rng(args.seed).permutation(len(train)), 2)
    for fit, test in (halves, halves[::-1]):
        table = fit_table(grey[fit], c[fit])
        rho, k, ratio = figures(sums(table[levels(grey[test])], c[test]))
        rows.append(f"| training collection, other half | luminance table | {rho:+.3f} | {k:.2f} | {ratio:.3f} |")
    table = fit_table(grey, c)
    models = {m: load_found(m, "colorize", engine="savedmodel") for m in args.colorize_models.split(",") if m}
    for domain in ("stellarium-hubble", "hdf"):
        pooled = {}
        for item in load_domain(domain, args.packages_root):
            if is_grey(item.image):
                continue
            truth = to_size(item.image, args.size)
            y, t = chroma(truth)
            predictions = {"luminance table (all training images)": table[levels(y)]}
            for name, model in models.items():
                out = np.clip(model.run(y[None, ..., None].astype(np.float32))[0], 0, 1)
                predictions[name] = chroma(out)[1]
            for name, p in predictions.items():
                pooled[name] = pooled.get(name, 0) + sums(p, t)
        for name, s in pooled.items():
            rho, k, ratio = figures(s)
            rows.append(f"| {domain} (held out) | {name} | {rho:+.3f} | {k:.2f} | {ratio:.3f} |")
    text = "# Colour: predicted vs true chroma\n\n" + "\n".join(rows) + "\n"
    print(text)
    if args.out:
        from common.files import atomic_write_bytes

        atomic_write_bytes(args.out, text.encode())  # as every bench report: never half written
    return 0


if __name__ == "__main__":
    sys.exit(main())
