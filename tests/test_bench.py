"""The benchmarks' arithmetic: FLOPs counted from layers and the CPU peak formula (bench/machine.py), the chroma
figures of bench/colour_ceiling.py."""
import importlib.util
import os

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench_module(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def machine():
    return _bench_module("machine")


def test_conv_flops_by_hand(machine):
    x = keras.Input((4, 6, 1))
    y = keras.layers.Conv2D(2, 3, padding="same")(x)  # 2 x (3*3*1) x 2 x (4*6) = 864
    y = keras.layers.Conv2D(5, 1, strides=2)(y)  # 2 x (1*1*2) x 5 x (2*3) = 120
    z = keras.layers.Dense(7)(keras.layers.Flatten()(y))  # 2 x 30 x 7 = 420
    assert machine.conv_flops(keras.Model(x, z), (4, 6, 1)) == 864 + 120 + 420


def test_srresnet_flops_match_the_formula(machine):
    from srgan.model import build_generator

    h = w = 8
    f, blocks = 8, 2
    expected = 2 * h * w * (9 * 9 * 3 * f + (2 * blocks + 1) * 9 * f * f + 9 * f * 4 * f)  # in, blocks, mid, up1
    expected += 2 * (2 * h) * (2 * w) * 9 * f * 4 * f  # up2 at 2x
    expected += 2 * (4 * h) * (4 * w) * 9 * 9 * f * 3  # conv_out at 4x
    assert machine.conv_flops(build_generator(blocks, f, 4), (h, w, 3)) == expected


def test_cpu_peak_is_positive_with_its_formula(machine):
    peak, how = machine.cpu_peak_gflops()
    assert peak > 0 and "cores" in how


def test_flops_per_cycle_from_the_flags(machine):
    # 16 fp32 lanes x 2 FLOPs per FMA x 2 units; 8 lanes for AVX2.
    assert machine.flops_per_cycle("fpu sse2 avx avx2 fma avx512f avx512bw")[0] == 64
    assert machine.flops_per_cycle("fpu sse2 avx avx2 fma bmi2")[0] == 32
    assert machine.flops_per_cycle("fpu sse2 avx")[0] == 16  # no FMA: a multiply and an add per lane
    assert machine.flops_per_cycle("fpu sse2")[0] == 8
    # A flag that merely starts like another one is not it.
    assert machine.flops_per_cycle("avx2 fma avx512_bf16")[0] == 32


def test_cpu_peak_formula(machine):
    peak, how = machine.cpu_peak("avx2 fma", cores=2, mhz=3000.0)
    assert peak == 2 * 3.0 * 32  # 192 GFLOP/s
    assert "2 cores" in how and "AVX2" in how


def test_residual_generator_flops_by_hand(machine):
    from srgan.residual import build_residual_generator

    h, w, f, blocks, s = 6, 10, 4, 1, 4
    n = h * w
    expected = 2 * n * 9 * 3 * f  # conv_in
    expected += (2 * blocks + 1) * 2 * n * 9 * f * f  # the blocks' two convolutions each, and mid_conv
    expected += 2 * n * 9 * f * 3 * s * s  # to_phases, still at LR
    expected += 2 * (2 * n * 25 * 3 * 3 * s * s)  # bicubic phases: the image and the edge weights
    assert machine.conv_flops(build_residual_generator(blocks, f, s), (h, w, 3)) == expected


def test_colour_ceiling_figures_by_hand():
    """rho, k and MSE / grey from pooled sums; the ratio is the real MSE over the grey baseline's (sum of t^2)."""
    import numpy as np

    cc = _bench_module("colour_ceiling")
    # p = (1, 0), t = (1, 1) per pixel: p.t = 1, p.p = 1, t.t = 2 -> rho = 1/sqrt(2), k = 1/sqrt(2),
    # MSE / grey = |p - t|^2 / |t|^2 = 1 / 2 = 1 + k^2 - 2 rho k.
    p, t = np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])
    rho, k, ratio = cc.figures(cc.sums(p, t))
    assert (rho, k, ratio) == pytest.approx((2**-0.5, 2**-0.5, 0.5), abs=1e-12)
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    rho, k, ratio = cc.figures(cc.sums(p, t))
    assert ratio == pytest.approx(((p - t) ** 2).sum() / (t**2).sum(), rel=1e-12)
    assert ratio == pytest.approx(1 + k * k - 2 * rho * k, rel=1e-12)
    # chroma: grey is BT.601 luma, chroma = RGB - grey, so a grey pixel has none. float32: 3 products and
    # 2 sums of values <= 1 (then one difference), each rounded by <= 2^-24 ~ 6e-8: 5e-7 bounds any order.
    grey, c = cc.chroma(np.array([[[0.5, 0.5, 0.5], [1.0, 0.0, 0.0]]], np.float32))
    np.testing.assert_allclose(grey, [[0.5, 0.299]], atol=5e-7)
    np.testing.assert_allclose(c[0, 0], 0.0, atol=5e-7)
    np.testing.assert_allclose(c[0, 1], [0.701, -0.299, -0.299], atol=5e-7)
