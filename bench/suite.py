"""The benchmark suite: speed, FLOP efficiency, stage overlap and memory, side by side in one run.

    python bench/suite.py [--out bench/results.md] [--repeats 5] [--train_steps 3] [--skip_training]

Sections (each in its own subprocess, so its peak memory is its own):

* `sr`: per SR configuration (the default residual 8x32 `checkpoints/srgan`;
  the paper's SRResNet 16x64, built untrained: speed only; the old default's
  SRResNet 6x32, untrained), on each engine (the SavedModel run by
  TensorFlow; the export's LiteRT flatbuffer run by XNNPACK): GFLOP per output
  MP counted from the layer shapes (`conv_flops`), seconds per output MP at
  224 -> 896 (batch 4), GFLOP/s, share of the CPU's peak, and the FLOP limit
  (the s/MP the FLOPs would take at peak) with the ratio to it. Bicubic and
  Lanczos (PIL) are measured in the same process; every s/MP is also given as a
  ratio to bicubic's.
* `colorize`: colouriser images per second at 224 (`checkpoints/colorize`).
* `pipeline`: the whole faithful command (`pipeline.runner.run`: decode, colourise
  224, x4, consistency, PNG encode and write, overlapped) over the test images,
  per output MP, on each engine, with each stage's share of the wall time.
* `full`: full mode on a 1024x1024 frame (-> 4096x4096 PNG): wall time and the
  subprocess's peak RSS (`ru_maxrss`), with the stages' shares.
* `dask`: `pipeline.run`'s frames/s serially and with `--executor dask` on 1 and 2
  local workers (`bench/dask_bench.py`; `$BENCH_DASK_FRAMES` frames, 16 by default).
* `train_colorize`, `train_srgan_mse`, `train_srgan_gan`: training steps per
  second at the paper's batch sizes (6 at 224; 16 at 96 px HR) with the
  paper's model sizes, random weights, on random data;
  `train_colorize_compact`: the same for the shipped colouriser's
  configuration (compact encoder, batch 8).

Medians over `--repeats` after a warm-up; timings on shared machines are
noisy, so compare the ratios within one table rather than numbers across runs.
The CPU peak (`cpu_peak`) is cores x clock x fp32 FLOPs per cycle from the
instruction set in /proc/cpuinfo's flags, assuming 2 FMA units per core; it is
an upper bound, and its assumptions are printed with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/'s own modules (machine, dask_bench)
from machine import conv_flops, cpu_peak_gflops  # noqa: E402

MODELS = os.path.join(ROOT, "checkpoints")
SECTIONS = ("sr", "colorize", "pipeline", "full", "dask", "train_colorize", "train_colorize_compact", "train_srgan_mse",
            "train_srgan_gan")
#: The faithful job's shapes: working size and SR factor.
LR, SCALE = 224, 4
#: Full mode's frame side in the bench (-> 4096 x 4096).
FULL_SIDE = 1024


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


def _image_paths(n: int = 4) -> list:
    import glob

    return sorted(glob.glob(os.path.join(ROOT, "tests", "data", "images", "*.png")))[:n]


def _images(size: int, n: int = 4):
    import numpy as np

    from data.io import read_image
    from pipeline.evaluation import to_size

    return [np.ascontiguousarray(to_size(read_image(p), size)) for p in _image_paths(n)]


def _sr_configs(tmp: str) -> list:
    """(label, export folder, the Keras generator for FLOP counting) of each SR configuration."""
    from pipeline.models import load_model  # noqa: F401  (TensorFlow loaded before building)
    from srgan.model import build_generator
    from srgan.saved_model import export_saved_model

    def from_config(folder):
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        return cfg, build_generator(cfg["num_blocks"], cfg["filters"], cfg.get("scale", 4), cfg.get("arch", "srresnet"))

    cfg, default = from_config(os.path.join(MODELS, "srgan"))
    configs = [(f"default: residual {cfg['num_blocks']}x{cfg['filters']} (checkpoints/srgan)",
                os.path.join(MODELS, "srgan"), default)]
    paper = build_generator(16, 64, SCALE, "srresnet")
    paper_dir = export_saved_model(paper, os.path.join(tmp, "paper"), {"arch": "srresnet", "num_blocks": 16,
                                                                        "filters": 64, "trained": False})
    configs.append(("paper SRResNet 16x64 (untrained: speed only)", paper_dir, paper))
    # The previous default's shape (SRResNet 6x32), untrained: its speed is what the new design is compared with.
    old = build_generator(6, 32, SCALE, "srresnet")
    old_dir = export_saved_model(old, os.path.join(tmp, "old"), {"arch": "srresnet", "num_blocks": 6,
                                                                  "filters": 32, "trained": False})
    configs.append(("old default's SRResNet 6x32 (untrained: speed only)", old_dir, old))
    return configs


def _run_pipeline(inputs: str, engine: str, mode: str = "faithful", full=None):
    from pipeline.runner import RunConfig, run

    out = tempfile.mkdtemp(prefix="bench-out-")
    try:
        config = RunConfig(input=inputs, output=out, colorize_model=os.path.join(MODELS, "colorize"),
                           srgan_model=os.path.join(MODELS, "srgan"), engine=engine, mode=mode, full=full,
                           progress=False)
        result = run(config, log=lambda _: None)
        if result.failed or not result.written:
            raise SystemExit(f"bench pipeline run failed: {result.failed}")
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _stage_shares(result) -> dict:
    return {k: v / result.wall_seconds for k, v in sorted(result.stage_seconds.items()) if not k.endswith("_wait")}


def run_section(name: str, repeats: int, train_steps: int) -> dict:
    import tensorflow as tf

    rows = []
    if name == "sr":
        from pipeline.evaluation import pil_upscale
        from pipeline.models import load_model

        images = _images(LR)
        batch = __import__("numpy").stack(images)
        out_mp = len(images) * (LR * SCALE) ** 2 / 1e6
        peak, _ = cpu_peak_gflops()
        methods = [("bicubic (PIL)", "", lambda: [pil_upscale(im, SCALE, "bicubic") for im in images], None),
                   ("Lanczos (PIL)", "", lambda: [pil_upscale(im, SCALE, "lanczos") for im in images], None)]
        tmp = tempfile.mkdtemp(prefix="bench-sr-")
        try:
            for label, folder, keras_model in _sr_configs(tmp):
                flops = conv_flops(keras_model, (LR, LR, 3))
                for engine in ("savedmodel", "litert"):
                    model = load_model(folder, "srgan", engine=engine, device="cpu")
                    methods.append((label, model.engine, lambda m=model: m.run(batch), flops))
            for label, engine, fn, flops in methods:
                secs = _median(fn, repeats)
                row = {"what": label, "engine": engine, "s_per_output_mp": secs / out_mp}
                if flops:
                    gflops = flops * len(images) / secs / 1e9
                    per_mp = flops / ((LR * SCALE) ** 2 / 1e6) / 1e9
                    row.update(gflop_per_output_mp=per_mp, gflops=gflops, share_of_peak=gflops / peak,
                               flop_limit_s_per_mp=per_mp / peak, x_flop_limit=secs / out_mp / (per_mp / peak))
                rows.append(row)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif name == "colorize":
        from pipeline.models import load_model

        batch = _greys(LR)
        for engine in ("savedmodel", "litert"):
            model = load_model(os.path.join(MODELS, "colorize"), "colorize", engine=engine, device="cpu")
            secs = _median(lambda: model.run(batch), repeats)
            rows.append({"what": f"colouriser {LR} px, batch {len(batch)}", "engine": engine,
                         "images_per_s": len(batch) / secs})
    elif name == "pipeline":
        inputs = tempfile.mkdtemp(prefix="bench-in-")
        try:
            paths = _image_paths(10)
            for p in paths:
                shutil.copy(p, inputs)
            out_mp = len(paths) * (LR * SCALE) ** 2 / 1e6
            from common.litert import xnnpack_preferred

            auto = "litert" if xnnpack_preferred() else "savedmodel"
            for engine in ("litert", "savedmodel"):
                _run_pipeline(inputs, engine)  # warm-up (and models' first calls)
                runs = sorted((_run_pipeline(inputs, engine) for _ in range(max(1, repeats))),
                              key=lambda r: r.wall_seconds)
                median = runs[len(runs) // 2]
                rows.append({"what": f"faithful pipeline, {len(paths)} files (decode, colourise 224, x4 to 896, "
                                     "consistency, PNG write; overlapped)",
                             "engine": engine + (" (= auto here)" if engine == auto else ""),
                             "s_per_output_mp": median.wall_seconds / out_mp, "stages": _stage_shares(median)})
        finally:
            shutil.rmtree(inputs, ignore_errors=True)
    elif name == "full":
        import numpy as np

        from data.io import read_image
        from data.writers import write_png
        from pipeline.evaluation import to_size
        from pipeline.config import FullOptions

        inputs = tempfile.mkdtemp(prefix="bench-full-")
        try:
            frame = to_size(read_image(_image_paths(1)[0]), FULL_SIDE)
            write_png(os.path.join(inputs, "frame.png"), np.clip(frame, 0, 1))
            result = _run_pipeline(inputs, "auto", "full", FullOptions())
            rows.append({"what": f"full mode, {FULL_SIDE}x{FULL_SIDE} PNG -> {FULL_SIDE * SCALE}x"
                                 f"{FULL_SIDE * SCALE} PNG (tile 256, overlap 64, batch 4)",
                         "engine": "auto", "wall_s": result.wall_seconds,
                         "s_per_output_mp": result.wall_seconds / ((FULL_SIDE * SCALE) ** 2 / 1e6),
                         "stages": _stage_shares(result)})
        finally:
            shutil.rmtree(inputs, ignore_errors=True)
    elif name == "dask":  # frames/s: serial, 1 and 2 Dask workers (bench/dask_bench.py)
        from dask_bench import rows as dask_rows

        rows += dask_rows(int(os.environ.get("BENCH_DASK_FRAMES", "16")))
    elif name in ("train_colorize", "train_colorize_compact"):
        from colorize.losses import colorize_loss
        from colorize.model import build_colorizer
        from colorize.config import ColorizeConfig, make_optimizer

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
        import numpy as np

        from srgan.config import SRGANConfig
        from srgan.fit import SRGANFit

        m = SRGANFit(SRGANConfig(data_dir="", vgg_weights="none"))
        m.compile_for_fit(False)
        m.set_phase(1 if name == "train_srgan_mse" else 2)
        hr = np.random.default_rng(0).random((16, 96, 96, 3), dtype=np.float32)
        block = np.zeros(16, np.float32)  # bicubic LR, made inside the step
        secs = _median(lambda: m.train_on_batch(hr, block), train_steps)
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


def _stages(row: dict) -> str:
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in row.get("stages", {}).items())


def table(results: list, repeats: int, note: str = "") -> str:
    """The Markdown table of `results` (rows of every section), with the machine and its peak above it."""
    from common.litert import available_cores, interpreter_class

    peak, how = cpu_peak_gflops()
    base = next((r["s_per_output_mp"] for res in results for r in res["rows"] if r["what"].startswith("bicubic")),
                None)
    lines = [
        f"Benchmarks on {available_cores()} CPU cores ({platform.processor() or platform.machine()}), median of "
        f"{repeats}; LiteRT engine: {interpreter_class()[1]} (XNNPACK). CPU fp32 peak {peak:.0f} GFLOP/s = {how}."
        + (f" {note}" if note else ""),
        "",
        "'FLOP limit' is the s/MP the counted FLOPs take at that peak; 'x limit' how far above it the measurement "
        "is. Stage shares are each stage's seconds over the wall time (stages overlap, so they can add up to more "
        "than 100%).",
        "",
        "| what | engine | s per output MP | vs bicubic | GFLOP per output MP | GFLOP/s | % of CPU peak "
        "| FLOP limit s/MP | x limit | images/s | steps/s | wall s | stage shares of wall time | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for r in res["rows"]:
            ratio = f"{r['s_per_output_mp'] / base:.1f}x" if base and "s_per_output_mp" in r else ""
            share = f"{100 * r['share_of_peak']:.0f}%" if "share_of_peak" in r else ""
            limit = f"{r['x_flop_limit']:.2f}x" if "x_flop_limit" in r else ""
            lines.append(f"| {r['what']} | {r.get('engine', '')} | {_fmt(r, 's_per_output_mp', '.4f')} | {ratio} | "
                         f"{_fmt(r, 'gflop_per_output_mp', '.1f')} | {_fmt(r, 'gflops', '.1f')} | {share} | "
                         f"{_fmt(r, 'flop_limit_s_per_mp', '.4f')} | {limit} | "
                         f"{_fmt(r, 'images_per_s', '.2f')} | {_fmt(r, 'steps_per_s', '.3f')} | "
                         f"{_fmt(r, 'wall_s', '.1f')} | {_stages(r)} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=SECTIONS, help="run one section here and print JSON (internal)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train_steps", type=int, default=3, help="timed training steps per model")
    parser.add_argument("--skip_training", action="store_true")
    parser.add_argument("--out", default="", help="also write the Markdown table here")
    parser.add_argument("--note", default="", help="a sentence about the machine (e.g. its load) for the table")
    parser.add_argument("--sections", default="", help="comma-separated sections to run (default: all)")
    args = parser.parse_args()
    if args.section:
        print(json.dumps(run_section(args.section, args.repeats, args.train_steps)))
        return 0
    results = []
    chosen = [x for x in args.sections.split(",") if x] or list(SECTIONS)
    for section in SECTIONS:
        if section not in chosen or (args.skip_training and section.startswith("train")):
            continue
        print(f"running {section} ...", file=sys.stderr)
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--section", section, "--repeats",
                              str(args.repeats), "--train_steps", str(args.train_steps)],
                             capture_output=True, text=True)
        if res.returncode:
            print(res.stderr[-3000:], file=sys.stderr)
            return 1
        results.append(json.loads(res.stdout.strip().splitlines()[-1]))
    text = table(results, args.repeats, args.note)
    print(text)
    if args.out:
        from common.files import atomic_write_bytes

        atomic_write_bytes(args.out, text.encode())  # as every bench report: never half written
    return 0


if __name__ == "__main__":
    sys.exit(main())
