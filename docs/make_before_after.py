"""Makes the README's SR before/after figure from one image of a held-out domain with the shipped models.

    python docs/make_before_after.py --packages_root pkg --name n7023 --out docs/before_after.png

The image is a Hubble-credited Stellarium picture (`data.domains`' held-out
`stellarium-hubble` domain: in none of the training data); its centre `--crop`
px is the truth, its LR is made as the cross-domain evaluation makes it
(`pipeline.evaluation.make_lr`: antialiased bicubic /4, 8-bit). Panels: the
LR input, PIL bicubic x4, what the Python API's `upscale` gives by default with
`checkpoints/srgan` and with `checkpoints/srgan_gan` (consistency step on), and
the truth, each with a zoom on its centre and its RGB PSNR.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packages_root", required=True, help="where stellarium-data was unpacked (dpkg-deb -x)")
    parser.add_argument("--name", default="n7023", help="a held-out Stellarium image (data.domains)")
    parser.add_argument("--crop", type=int, default=256, help="side of the centre crop (HR), a multiple of 4")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "before_after.png"))
    args = parser.parse_args()

    import numpy as np

    from data.domains import load_stellarium_hubble
    from pipeline.api import Pipeline
    from pipeline.evaluation import make_lr, pil_upscale, psnr_255, quantize
    from pipeline.figures import side_by_side

    items = {i.name: i for i in load_stellarium_hubble(args.packages_root)}
    if args.name not in items:
        raise SystemExit(f"{args.name}: not a held-out Stellarium image; choose from {', '.join(sorted(items))}")
    if args.crop <= 0 or args.crop % 4:
        raise SystemExit(f"--crop {args.crop}: need a positive multiple of 4")
    image = items[args.name].image
    h, w = image.shape[:2]
    side = min(args.crop, h - h % 4, w - w % 4)
    top, left = (h - side) // 2, (w - side) // 2
    hr = image[top : top + side, left : left + side]
    lr = make_lr(hr, 4)

    def scored(label: str, sr: np.ndarray) -> tuple[str, np.ndarray]:
        sr = quantize(sr) / 255.0
        return f"{label}\n{psnr_255(hr, sr, 4):.2f} dB", sr

    panels = [("LR input (x4 nearest)", np.repeat(np.repeat(lr, 4, 0), 4, 1)),
              scored("bicubic (PIL)", pil_upscale(lr, 4, "bicubic"))]
    for name in ("srgan", "srgan_gan"):
        pipe = Pipeline.load(srgan_model=os.path.join(ROOT, "checkpoints", name))
        panels.append(scored(f"checkpoints/{name}", pipe.upscale(lr)))
    panels.append(("truth", hr))
    side_by_side(args.out, panels,
                 title=f"{args.name} ({items[args.name].credit}; held out of training): x4 super-resolution")
    print(args.out, "; ".join(label.replace("\n", " ") for label, _ in panels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
