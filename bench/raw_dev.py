"""SR exports on the *training side's* raw frames: the check raw-frame post-processing is chosen by.

    nice python bench/raw_dev.py --packages_root pkg checkpoints/srgan [MORE_EXPORTS ...]

The held-out raw frames (`data.domains.HELD_OUT_FITS`) are for reporting only;
choices about how a raw frame's SR is corrected and displayed are made here,
on the ESO-MIDAS test frames the SR models were trained on
(`data.domains.TRAIN_FITS`), scored exactly as the cross-domain evaluation
scores raw frames (`pipeline.crossdomain.score_sr_raw`: both LR kinds, display
PSNR, per-channel bias, ring, star photometry). Rows per export: the network
alone, `+ consistency` (the default pipeline: the plain stretch of the
flux-consistent result) and `+ consistency, noise-aware display`
(`--display_noise`: `expected_display` with the sky's noise).
Writes `bench/raw_dev.md`. A few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def upscalers_for(model, label: str) -> dict:
    """The three rows of one loaded SR export (see the module docstring)."""
    from pipeline.consistency import consistent_upscale
    from pipeline.crossdomain import plain
    from pipeline.inference import sr_output

    def run(lr):
        return sr_output(model.run(lr[None])[0])

    def consistent(display_noise):
        return lambda lr, stretch=None, operator="bicubic": consistent_upscale(
            run, lr, operator="block", stretch=stretch, display_noise=display_noise)

    return {label: plain(run), label + " + consistency": consistent(False),
            label + " + consistency, noise-aware display": consistent(True)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages_root", required=True, help="where eso-midas-testdata was unpacked")
    parser.add_argument("--crop", type=int, default=512, help="central crop side of each frame (0: whole)")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "raw_dev.md"))
    parser.add_argument("exports", nargs="+", help="SR SavedModel folders")
    args = parser.parse_args()

    from common.files import atomic_write_bytes
    from data.domains import TRAIN_FITS, load_raw_hst
    from pipeline.crossdomain import baseline_upscalers, score_sr_raw
    from pipeline.crossdomain_report import sr_table
    from pipeline.models import load_found

    frames = load_raw_hst(args.packages_root, args.crop, files=TRAIN_FITS)
    upscalers = baseline_upscalers()
    for path in args.exports:
        upscalers.update(upscalers_for(load_found(path, "srgan", engine="savedmodel"), path))
    rows, facts = score_sr_raw(frames, upscalers)
    md, _ = sr_table([dict(r, domain="eso-train") for r in rows])
    text = "\n".join([
        "# SR on the training side's raw frames (bench/raw_dev.py)", "",
        f"Frames: {', '.join(f.name for f in frames)} (central {args.crop} px); stars per frame: "
        + ", ".join(f"{k} {v}" for k, v in facts["stars"].items()) + ".", "",
        "    python bench/raw_dev.py --packages_root pkg " + " ".join(args.exports), "", md, ""])
    atomic_write_bytes(args.output, text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
