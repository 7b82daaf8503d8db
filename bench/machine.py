"""The benchmark suite's machine arithmetic: FLOPs counted from a model's layers, and the CPU's peak.

Used by `bench/suite.py` (its `sr` section's FLOPs per output MP, share of
peak and FLOP limit); tested by hand-worked values in `tests/test_bench.py`.
"""
from __future__ import annotations


def conv_flops(model, input_shape) -> float:
    """Multiply-adds x 2 of every convolution and Dense layer of `model` for one input of `input_shape` (H, W, C).

    Counts `Conv2D`, `Dense` and the residual generator's fixed bicubic phase
    layer (`srgan.residual.BicubicPhases`: two 5x5 convolutions on the LR grid,
    the image and the all-ones edge weights). Convolutions dominate both
    generators; batch norm, activations, adds, padding and pixel shuffles
    (< 1 % here) are not counted.
    """
    import keras
    import numpy as np

    from srgan.residual import BicubicPhases

    kinds = (keras.layers.Conv2D, keras.layers.Dense, BicubicPhases)
    layers = [l for l in model.layers if isinstance(l, kinds)]
    probe = keras.Model(model.inputs, [l.output for l in layers])
    shapes = [o.shape for o in probe(np.zeros((1, *input_shape), "float32"))]
    total = 0.0
    for layer, shape in zip(layers, shapes):
        positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
        if isinstance(layer, BicubicPhases):
            c = int(shape[-1]) // layer.scale**2
            total += 2 * (2.0 * 5 * 5 * c * int(shape[-1]) * positions)
            continue
        kernel = layer.kernel.shape
        fan_in = int(np.prod(kernel[:-1]))
        total += 2.0 * fan_in * int(kernel[-1]) * positions
    return total


def flops_per_cycle(flags: str) -> tuple[int, str]:
    """fp32 FLOPs per cycle per core from a /proc/cpuinfo `flags` line, and the assumption in words.

    One FMA is 2 FLOPs per lane; 2 FMA units per core are assumed (Intel
    server cores since Skylake-SP, AMD Zen 4/5; some parts have one 512-bit unit,
    halving the AVX-512 figure).
    """
    words = set(flags.split())
    if "avx512f" in words:
        return 2 * 2 * 16, "AVX-512: 16 fp32 lanes x 2 (FMA) x 2 FMA units"
    if "avx2" in words and "fma" in words:
        return 2 * 2 * 8, "AVX2+FMA: 8 fp32 lanes x 2 (FMA) x 2 FMA units"
    if "avx" in words:
        return 2 * 8, "AVX (no FMA): 8 fp32 lanes x (1 mul + 1 add)"
    return 2 * 4, "SSE: 4 fp32 lanes x (1 mul + 1 add)"


def cpu_clock_mhz() -> tuple[float, str]:
    """The cores' clock in MHz and where it came from (cpufreq's maximum, else /proc/cpuinfo's 'cpu MHz')."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read()) / 1e3, "/sys/.../cpufreq/cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(l.split(":")[1]) for l in f if l.startswith("cpu MHz")]
        return max(mhz), "/proc/cpuinfo 'cpu MHz' (no cpufreq in /sys)"
    except (OSError, ValueError):
        return float("nan"), "unknown clock"


def cpu_peak(flags: str, cores: int, mhz: float) -> tuple[float, str]:
    """Peak fp32 GFLOP/s = cores x GHz x FLOPs per cycle (`flops_per_cycle`), and the formula in words."""
    per_cycle, how = flops_per_cycle(flags)
    return cores * mhz / 1e3 * per_cycle, f"{cores} cores x {mhz / 1e3:.2f} GHz x {per_cycle} FLOP/cycle ({how})"


def cpu_peak_gflops() -> tuple[float, str]:
    """This process's peak: `cpu_peak` for its CPU's flags, the cores it may use and their clock."""
    from common.litert import available_cores, cpu_flags

    mhz, where = cpu_clock_mhz()
    peak, how = cpu_peak(" ".join(sorted(cpu_flags())), available_cores(), mhz)
    return peak, f"{how}; clock from {where}; cores = os.sched_getaffinity"


