"""The benchmark suite: speed, throughput, memory and FLOP efficiency, side by side in one run.

    python bench/suite.py [--out bench/results.md] [--repeats 5] [--train_steps 3] [--skip_training]

Sections (each in its own subprocess, so its peak memory is its own):

* `sr`: seconds per output megapixel at 224 -> 896 for bicubic, Lanczos, the
  default generator (`checkpoints/srgan`) and the paper-size one (16 blocks x
  64 filters, random weights: speed only), with each generator's FLOPs
  counted from its layers, the achieved GFLOP/s, and that as a share of the
  CPU's peak.
* `colorize`: colouriser images per second at 224 (`checkpoints/colorize`).
* `pipeline`: the whole faithful job (colourise 224 + x4) per output megapixel.
* `dask`: `pipeline.run`'s frames/s serially and with `--executor dask` on 1 and 2
  local workers (`bench/dask_bench.py`; `$BENCH_DASK_FRAMES` frames, 16 by default).
* `train_colorize`, `train_srgan_mse`, `train_srgan_gan`: training steps per
  second at the paper's batch sizes (6 at 224; 16 at 96 px HR) with the
  paper's model sizes, random weights, on random data;
  `train_colorize_compact`: the same for the shipped colouriser's
  configuration (compact encoder, batch 8).

Medians over `--repeats` after a warm-up; timings on shared machines are
noisy, so compare the ratios within one table rather than numbers across runs.
The CPU peak assumes 2 FMA units per core (2 x 2 x SIMD-width fp32 FLOPs per
cycle) at the clock in /proc/cpuinfo; that is an upper bound, stated in the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
MODELS = os.path.join(ROOT, "checkpoints")
SECTIONS = ("sr", "colorize", "pipeline", "dask", "train_colorize", "train_colorize_compact", "train_srgan_mse",
            "train_srgan_gan")


def conv_flops(model, input_shape) -> float:
    """Multiply-adds x 2 of every Conv2D/Dense of `model` for one input of `input_shape` (H, W, C).

    Convolutions dominate an SRResNet; batch norm, PReLU, adds and pixel
    shuffles (< 1 % here) are not counted.
    """
    import keras
    import numpy as np

    total = 0.0
    layers = [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    probe = keras.Model(model.inputs, [l.output for l in layers])
    shapes = [o.shape for o in probe(np.zeros((1, *input_shape), "float32"))]
    for layer, shape in zip(layers, shapes):
        kernel = layer.kernel.shape
        fan_in = int(np.prod(kernel[:-1]))
        positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
        total += 2.0 * fan_in * int(kernel[-1]) * positions
    return total


def cpu_peak_gflops() -> tuple[float, str]:
    """Peak fp32 GFLOP/s of this machine's cores, and how it was worked out."""
    mhz, width = None, 4
    try:
        text = open("/proc/cpuinfo").read()
        mhz = max(float(line.split(":")[1]) for line in text.splitlines() if line.startswith("cpu MHz"))
        flags = text.split("flags")[1].split("\n")[0]
        width = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    except (OSError, ValueError, IndexError):
        pass
    cores = os.cpu_count() or 1
    if mhz is None:
        return float("nan"), "unknown clock"
    peak = cores * mhz / 1e3 * width * 2 * 2
    return peak, f"{cores} cores x {mhz / 1e3:.2f} GHz x {width} fp32 lanes x 2 (FMA) x 2 units"


def _median(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _greys(size: int):
    """`_images` as the pipeline feeds the colouriser: BT.601 luminance, `[N, size, size, 1]`."""
    import numpy as np

    from pipeline.inference import to_luminance

    return np.stack([to_luminance(im)[0] for im in _images(size)])


def _images(size: int, n: int = 4):
    import glob

    import numpy as np

    from data.io import read_image
    from pipeline.evaluation import to_size

    paths = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "images", "*.png")))[:n]
    return [np.ascontiguousarray(to_size(read_image(p), size)) for p in paths]


def run_section(name: str, repeats: int, train_steps: int) -> dict:
    import tensorflow as tf

    rows = []
    if name == "sr":
        from pipeline.evaluation import pil_upscale
        from pipeline.models import load_model
        from srgan.model import build_generator

        images = _images(224)
        out_mp = len(images) * 896 * 896 / 1e6
        peak, _ = cpu_peak_gflops()
        default = load_model(os.path.join(MODELS, "srgan"), "srgan")
        cfg = default.config
        paper = build_generator(16, 64, 4)
        paper_fn = tf.function(lambda x: paper(x, training=False),
                               input_signature=[tf.TensorSpec([1, 224, 224, 3], tf.float32)])
        flops_default = conv_flops(build_generator(cfg.get("num_blocks", 16), cfg.get("filters", 64), 4), (224, 224, 3))
        flops_paper = conv_flops(paper, (224, 224, 3))
        methods = [
            ("bicubic (PIL)", lambda im: pil_upscale(im, 4, "bicubic"), None),
            ("Lanczos (PIL)", lambda im: pil_upscale(im, 4, "lanczos"), None),
            (f"default generator ({cfg.get('num_blocks')}x{cfg.get('filters')})",
             lambda im: default.run(im[None]), flops_default),
            ("paper generator (16x64)", lambda im: paper_fn(tf.constant(im[None])).numpy(), flops_paper),
        ]
        # The pipeline's --precision / --jit_compile options on the default generator (before/after).
        for precision, jit in (("float32", True), ("mixed_bfloat16", False)):
            variant = load_model(os.path.join(MODELS, "srgan"), "srgan", precision, jit)
            label = f"default generator, --precision {precision}" + (" --jit_compile" if jit else "")
            methods.append((label, lambda im, m=variant: m.run(im[None]), flops_default))
        for label, fn, flops in methods:
            secs = _median(lambda: [fn(im) for im in images], repeats)
            row = {"what": label, "s_per_output_mp": secs / out_mp}
            if flops:
                gflops = flops * len(images) / secs / 1e9
                row.update(gflop_per_image=flops / 1e9, gflops=gflops, share_of_peak=gflops / peak)
            rows.append(row)
    elif name == "colorize":
        from pipeline.models import load_model

        model = load_model(os.path.join(MODELS, "colorize"), "colorize")
        batch = _greys(224)
        secs = _median(lambda: model.run(batch), repeats)
        rows.append({"what": f"colouriser 224 px, batch {len(batch)}", "images_per_s": len(batch) / secs})
    elif name == "pipeline":
        from pipeline.inference import colourise_and_upscale
        from pipeline.models import load_model

        col = load_model(os.path.join(MODELS, "colorize"), "colorize")
        sr = load_model(os.path.join(MODELS, "srgan"), "srgan")
        greys = _greys(224)
        secs = _median(lambda: colourise_and_upscale(greys, col, sr), repeats)
        rows.append({"what": "faithful pipeline (colourise 224 + x4 to 896)",
                     "s_per_output_mp": secs / (len(greys) * 896 * 896 / 1e6)})
    elif name == "dask":  # frames/s: serial, 1 and 2 Dask workers (bench/dask_bench.py)
        from dask_bench import rows as dask_rows

        rows += dask_rows(int(os.environ.get("BENCH_DASK_FRAMES", "16")))
    elif name in ("train_colorize", "train_colorize_compact"):
        from colorize.losses import colorize_loss
        from colorize.model import build_colorizer
        from colorize.trainer import ColorizeConfig, make_optimizer

        compact = name == "train_colorize_compact"
        batch = 8 if compact else 6
        model = (build_colorizer(backbone="compact", global_context=True, output_batchnorm=False) if compact
                 else build_colorizer("none", freeze_backbone=True))
        opt = make_optimizer(ColorizeConfig(data_dir=""))
        y = tf.random.uniform((batch, 224, 224, 1))
        uv = tf.random.uniform((batch, 224, 224, 2), 0.4, 0.6)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = colorize_loss(uv, model(y, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        secs = _median(step, train_steps)
        what = ("batch 8, 224 px, compact encoder (the default model's)" if compact
                else "batch 6, 224 px, frozen VGG16")
        rows.append({"what": f"colouriser training step ({what})", "steps_per_s": 1 / secs})
    elif name in ("train_srgan_mse", "train_srgan_gan"):
        from srgan.steps import SRGANModels
        from srgan.config import SRGANConfig

        m = SRGANModels(SRGANConfig(data_dir="", vgg_weights="none"))
        lr = tf.random.uniform((16, 24, 24, 3))
        hr = tf.random.uniform((16, 96, 96, 3))
        step = m.mse_step if name == "train_srgan_mse" else m.gan_step
        secs = _median(lambda: step(lr, hr), train_steps)
        label = "SRResNet MSE step" if name == "train_srgan_mse" else "SRGAN step (D + G, VGG19 conv5_4)"
        rows.append({"what": f"{label} (batch 16, 96 px HR, 16x64)", "steps_per_s": 1 / secs})
    else:
        raise SystemExit(f"unknown section {name!r}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for row in rows:
        row["peak_rss_mb"] = peak_mb
    return {"section": name, "rows": rows}


def _fmt(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if key in row else ""


def table(results: list, repeats: int) -> str:
    peak, how = cpu_peak_gflops()
    base = next((r["s_per_output_mp"] for res in results for r in res["rows"] if r["what"].startswith("bicubic")),
                None)
    lines = [
        f"Benchmarks on {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
        f"median of {repeats}; CPU fp32 peak {peak:.0f} GFLOP/s ({how}).",
        "",
        "| what | s per output MP | vs bicubic | images/s | steps/s | GFLOP per image | GFLOP/s | % of CPU peak "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for r in res["rows"]:
            ratio = f"{r['s_per_output_mp'] / base:.1f}x" if base and "s_per_output_mp" in r else ""
            share = f"{100 * r['share_of_peak']:.0f}%" if "share_of_peak" in r else ""
            lines.append(f"| {r['what']} | {_fmt(r, 's_per_output_mp', '.4f')} | {ratio} | "
                         f"{_fmt(r, 'images_per_s', '.2f')} | {_fmt(r, 'steps_per_s', '.3f')} | "
                         f"{_fmt(r, 'gflop_per_image', '.1f')} | {_fmt(r, 'gflops', '.1f')} | {share} | "
                         f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=SECTIONS, help="run one section here and print JSON (internal)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train_steps", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--skip_training", action="store_true")
    parser.add_argument("--out", default="", help="also write the Markdown table here")
    args = parser.parse_args()
    if args.section:
        print(json.dumps(run_section(args.section, args.repeats, args.train_steps)))
        return 0
    results = []
    for section in SECTIONS:
        if args.skip_training and section.startswith("train"):
            continue
        print(f"running {section} ...", file=sys.stderr)
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--section", section, "--repeats",
                              str(args.repeats), "--train_steps", str(args.train_steps)],
                             capture_output=True, text=True)
        if res.returncode:
            print(res.stderr[-3000:], file=sys.stderr)
            return 1
        results.append(json.loads(res.stdout.strip().splitlines()[-1]))
    text = table(results, args.repeats)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
