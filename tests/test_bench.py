"""The benchmark suite's arithmetic: FLOPs counted from layers, and the CPU peak formula."""
import importlib.util
import os

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("bench_suite", os.path.join(ROOT, "bench", "suite.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conv_flops_by_hand(suite):
    x = keras.Input((4, 6, 1))
    y = keras.layers.Conv2D(2, 3, padding="same")(x)  # 2 x (3*3*1) x 2 x (4*6) = 864
    y = keras.layers.Conv2D(5, 1, strides=2)(y)  # 2 x (1*1*2) x 5 x (2*3) = 120
    z = keras.layers.Dense(7)(keras.layers.Flatten()(y))  # 2 x 30 x 7 = 420
    assert suite.conv_flops(keras.Model(x, z), (4, 6, 1)) == 864 + 120 + 420


def test_srresnet_flops_match_the_formula(suite):
    from srgan.model import build_generator

    h = w = 8
    f, blocks = 8, 2
    expected = 2 * h * w * (9 * 9 * 3 * f + (2 * blocks + 1) * 9 * f * f + 9 * f * 4 * f)  # in, blocks, mid, up1
    expected += 2 * (2 * h) * (2 * w) * 9 * f * 4 * f  # up2 at 2x
    expected += 2 * (4 * h) * (4 * w) * 9 * 9 * f * 3  # conv_out at 4x
    assert suite.conv_flops(build_generator(blocks, f, 4), (h, w, 3)) == expected


def test_cpu_peak_is_positive_with_its_formula(suite):
    peak, how = suite.cpu_peak_gflops()
    assert peak > 0 and "cores" in how
