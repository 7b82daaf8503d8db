"""Seconds per output megapixel of x4 upscalers, side by side in one run.

    python bench/sr_speed.py --model checkpoints/srgan [--model other/export ...] \
        [--lr_size 224] [--repeats 5] [--out bench/results_sr_speed.md]

Every method upscales the same LR images (the bundled sample frames and test
fixtures, resized to --lr_size) and is timed as the median over --repeats calls
after one warm-up call; the table gives median seconds per output megapixel and
the ratio to bicubic measured in the same run. Timings on shared machines are
noisy: compare ratios, not absolute numbers across runs.
"""
from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _images(lr_size: int):
    import numpy as np

    from data.io import read_image
    from pipeline.evaluation import to_size

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = sorted(glob.glob(os.path.join(root, "tests", "data", "images", "*.png")))[:4]
    out = []
    for p in paths:
        img = read_image(p)
        out.append(np.ascontiguousarray(to_size(img, lr_size)))
    return out


def _time(fn, images, repeats: int) -> float:
    """Median over repeats of the summed time over images (after one warm-up per image)."""
    for im in images:
        fn(im)
    totals = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for im in images:
            fn(im)
        totals.append(time.perf_counter() - t0)
    return statistics.median(totals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], help="exported SR SavedModel folder (repeatable)")
    parser.add_argument("--lr_size", type=int, default=224, help="LR side in px (paper: 224 -> 896)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="", help="also write the table here (Markdown)")
    args = parser.parse_args()

    from pipeline.evaluation import pil_upscale
    from pipeline.models import load_model, model_scale

    images = _images(args.lr_size)
    methods = {
        "bicubic (PIL)": lambda im: pil_upscale(im, 4, "bicubic"),
        "Lanczos (PIL)": lambda im: pil_upscale(im, 4, "lanczos"),
    }
    for path in args.model:
        model = load_model(path, "srgan")
        if model_scale(model) != 4:
            raise SystemExit(f"{path}: scale {model_scale(model)}, this benchmark compares x4")
        cfg = model.config
        name = f"{os.path.basename(os.path.normpath(path))} ({cfg.get('num_blocks', '?')} blocks x {cfg.get('filters', '?')} filters)"
        methods[name] = lambda im, m=model: m.run(im[None])[0]
    out_mp = len(images) * (args.lr_size * 4) ** 2 / 1e6
    rows = []
    base = None
    for name, fn in methods.items():
        secs = _time(fn, images, args.repeats)
        per_mp = secs / out_mp
        base = base or per_mp
        rows.append(f"| {name} | {per_mp:.4f} | {per_mp / base:.1f}x |")
    table = "\n".join([
        f"SR speed, {len(images)} images {args.lr_size}px -> {args.lr_size * 4}px, median of {args.repeats}, "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})",
        "",
        "| method | s per output MP | vs bicubic |",
        "|---|---|---|",
        *rows,
        "",
    ])
    print(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
