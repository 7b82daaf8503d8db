"""Makes the README's before/after figure from one test-split image with the shipped models.

    python docs/make_before_after.py --image prepared/test/ic418_y00000_x00000.png --out docs/before_after.png

Panels: the grey input the pipeline sees (the image's luminance, 224 px), the
pipeline's 896 px output with the default models (checkpoints/colorize then
checkpoints/srgan), the same with the GAN generator (checkpoints/srgan_gan),
bicubic x4 of the true-colour 224 px image, and the original at 896 px, each
with a zoom on its centre.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True, help="a colour test-split image")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "before_after.png"))
    args = parser.parse_args()

    import numpy as np

    from data.io import read_image
    from pipeline.evaluation import pil_upscale, to_size
    from pipeline.figures import side_by_side
    from pipeline.inference import colourise_and_upscale, to_luminance
    from pipeline.models import load_model

    original = read_image(args.image)
    if original.shape[-1] != 3:
        raise SystemExit(f"{args.image}: need a colour image to compare against")
    colour224 = to_size(original, 224)
    grey = to_luminance(colour224)[0]
    col = load_model(os.path.join(ROOT, "checkpoints", "colorize"), "colorize")
    panels = [("grey input (224)", grey)]
    for name in ("srgan", "srgan_gan"):
        sr = load_model(os.path.join(ROOT, "checkpoints", name), "srgan")
        out = colourise_and_upscale(grey[None], col, sr)[1][0]
        panels.append((f"pipeline output, {name} (896)", out))
    panels.append(("true colour + bicubic x4", pil_upscale(colour224, 4, "bicubic")))
    panels.append(("original (896)", to_size(original, 896)))
    side_by_side(args.out, panels, title=f"{os.path.basename(args.image)} (test split): grey -> colour -> x4")
    print(args.out, np.asarray(panels[1][1]).shape)
    return 0


if __name__ == "__main__":
    sys.exit(main())
