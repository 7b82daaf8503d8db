"""The Guo residual-encoder colouriser: shapes, backbone options, colour joining, export."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorize.model import (
    U_MAX,
    V_MAX,
    BilinearUpsample2x,
    COMPACT_WIDTHS,
    build_backbone,
    build_colorizer,
    build_compact_backbone,
    compose_rgb,
    vgg_preprocess,
)
from colorize.saved_model import ExportError, colorize_rgb, export_colorizer
from data.colour import rgb_to_luma, rgb_to_yuv, y_uv_to_rgb
from data.io import read_image


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_colorizer(backbone_weights=None)


@pytest.fixture(scope="module")
def greys(real_images):
    """Four real Hubble frames as luminance, resized to 64x64."""
    rgb = np.stack([read_image(p) for p in real_images[:4]])
    return tf.image.resize(rgb_to_luma(rgb), (64, 64), antialias=True).numpy().clip(0, 1)


@pytest.mark.parametrize("shape", [(1, 224, 224, 1), (2, 48, 80, 1)])
def test_output_shape_and_range(model, shape):
    grey = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    uv = np.asarray(model(grey, training=False))
    assert uv.shape == shape[:3] + (2,)
    # Sigmoid output mapped onto the full U and V gamut around the 0.5 offset.
    assert np.all(np.abs(uv[..., 0] - 0.5) < U_MAX) and np.all(np.abs(uv[..., 1] - 0.5) < V_MAX)


def test_freeze_backbone(model):
    frozen = {v.path for v in model.trainable_variables}
    assert not any("block" in p for p in frozen)  # no VGG16 weight trains
    assert any("b_conv4" in p for p in frozen) and any("bn_0" in p for p in frozen)
    trainable = build_colorizer(backbone_weights="none", freeze_backbone=False)
    names = {v.path for v in trainable.trainable_variables}
    assert any("block4_conv3" in p for p in names) and len(names) > len(frozen)


def test_compact_backbone_taps_and_everything_trains():
    keras.utils.set_random_seed(0)
    taps = build_compact_backbone()(np.zeros((1, 48, 80, 1), np.float32))
    assert [tuple(t.shape) for t in taps] == [
        (1, 6, 10, COMPACT_WIDTHS[3]), (1, 12, 20, COMPACT_WIDTHS[2]), (1, 24, 40, COMPACT_WIDTHS[1]),
        (1, 48, 80, COMPACT_WIDTHS[0]),
    ]
    compact = build_colorizer(backbone="compact", freeze_backbone=True)  # freezing is VGG16's option only
    names = {v.path for v in compact.trainable_variables}
    assert any("block1_conv1" in p for p in names) and any("b_conv4" in p for p in names)
    # A quarter of VGG16's widths: far fewer weights than the VGG16 colouriser (~15M).
    assert compact.count_params() < 1_000_000
    uv = np.asarray(compact(np.full((2, 32, 32, 1), 0.3, np.float32), training=False))
    assert uv.shape == (2, 32, 32, 2)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_colorizer(backbone="resnet")


def test_output_batchnorm_is_optional():
    names = {layer.name for layer in build_colorizer(backbone="compact").layers}
    assert "output_conv_bn" in names  # Guo's network
    plain = build_colorizer(backbone="compact", output_batchnorm=False)
    assert "output_conv_bn" not in {layer.name for layer in plain.layers}
    assert plain.get_layer("output_conv").use_bias  # the shift BN supplied
    # Zero logits -> sigmoid 0.5 -> exactly grey chroma.
    conv = plain.get_layer("output_conv")
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    np.testing.assert_allclose(np.asarray(plain(np.full((1, 16, 16, 1), 0.7, np.float32))), 0.5, atol=1e-7)


@pytest.mark.parametrize("global_context", [False, True])
def test_global_context_lets_a_far_corner_change_the_colour(global_context):
    """Without it the compact network sees ~100 px; with it, the whole frame."""
    keras.utils.set_random_seed(3)
    net = build_colorizer(backbone="compact", global_context=global_context)
    grey = np.random.default_rng(0).uniform(0, 1, (1, 256, 256, 1)).astype(np.float32)
    changed = grey.copy()
    changed[:, :32, :32] = 1.0 - changed[:, :32, :32]
    # The decoder's input (the untrained output differs by less than float32
    # resolves around 0.5, as Guo's 0.01-scale kernels shrink the signal).
    deep = keras.Model(net.input, net.get_layer("bn_4").output)
    a = np.asarray(deep(grey, training=False))[0, -2:, -2:]  # pixels 240..255 of 256
    b = np.asarray(deep(changed, training=False))[0, -2:, -2:]
    assert (np.abs(a - b).max() > 1e-4) == global_context


# Keras' own h5 writer trips a NumPy 2 deprecation warning; not ours.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_backbone_weights_from_h5(tmp_path):
    keras.utils.set_random_seed(1)
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "vgg16_notop.weights.h5")
    vgg.save_weights(path)
    backbone = build_backbone(path)
    np.testing.assert_array_equal(backbone.get_layer("block4_conv3").kernel.numpy(),
                                  vgg.get_layer("block4_conv3").kernel.numpy())
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_backbone(str(tmp_path / "missing.h5"))


def test_vgg_preprocessing_is_keras_caffe_mode():
    grey = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 1)).astype(np.float32)
    grey3 = np.repeat(grey, 3, -1)
    expected = keras.applications.vgg16.preprocess_input(grey3 * 255.0)
    np.testing.assert_allclose(np.asarray(vgg_preprocess(grey3)), expected, rtol=1e-5, atol=1e-4)


def test_bilinear_upsample_equals_tf_resize_with_unknown_sizes():
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
    expected = tf.image.resize(x, (10, 14), "bilinear").numpy()
    layer = BilinearUpsample2x()
    np.testing.assert_allclose(layer(x), expected, atol=1e-6)
    dynamic = tf.function(layer, input_signature=[tf.TensorSpec([None, None, None, 3])])
    np.testing.assert_allclose(dynamic(x), expected, atol=1e-6)


def test_compose_rgb_keeps_luminance_where_clipping_would_not():
    # Extreme chroma on dark and bright greys: far out of the RGB gamut.
    y = np.array([0.02, 0.1, 0.5, 0.9, 0.98, 0.0, 1.0], np.float32)[:, None]
    uv = np.array([[0.0, 1.0], [1.0, 0.0], [0.06, 1.11], [0.94, -0.1], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]], np.float32)
    rgb = np.asarray(compose_rgb(y, uv))
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    np.testing.assert_allclose(np.asarray(rgb_to_luma(rgb)), y, atol=1e-6)
    # Plain clipping (data.colour.y_uv_to_rgb) moves the luminance of these pixels a lot.
    clipped = np.asarray(rgb_to_luma(y_uv_to_rgb(y, uv)))
    assert np.abs(clipped - y).max() > 0.05
    # In-gamut colours are left exactly as they are.
    colours = np.random.default_rng(0).uniform(0, 1, (100, 3)).astype(np.float32)
    yuv = np.asarray(rgb_to_yuv(colours))
    np.testing.assert_allclose(np.asarray(compose_rgb(yuv[:, :1], yuv[:, 1:])), colours, atol=1e-5)


def test_export_reload_without_package_matches_keras(model, greys, tmp_path):
    out = export_colorizer(model, str(tmp_path / "colorize"), {"size": 64}, steps_trained=7, trained=True)
    meta = json.loads(open(os.path.join(out, "config.json")).read())
    assert meta["model"] == "colorize" and meta["steps_trained"] == 7 and meta["trained"] and meta["size"] == 64

    np.save(tmp_path / "grey.npy", greys)
    # A fresh interpreter in isolated mode (-I: no cwd, no PYTHONPATH) so none of
    # this project's code can be imported: the SavedModel must stand alone.
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({out!r})\n"
        "f = m.signatures['serving_default']\n"
        f"r = f(grey=tf.constant(np.load({str(tmp_path / 'grey.npy')!r})))\n"
        f"np.save({str(tmp_path / 'rgb.npy')!r}, r['rgb'].numpy())\n"
        "assert not any(k.split('.')[0] in ('colorize', 'data', 'common') for k in sys.modules)\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-I", "-c", script], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = np.load(tmp_path / "rgb.npy")
    keras_rgb = np.asarray(colorize_rgb(model, greys))
    assert served.shape == (4, 64, 64, 3)
    assert np.abs(served - keras_rgb).max() < 1e-5
    # Luminance preserved: Y of the output is the input grey (float rounding only;
    # compose_rgb desaturates out-of-gamut chroma instead of clipping RGB).
    np.testing.assert_allclose(np.asarray(rgb_to_luma(served)), greys, atol=1e-5)
    assert served.min() >= 0.0 and served.max() <= 1.0


def test_export_refuses_non_empty_folder_and_bad_sizes(model, tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    (target / "keep.txt").write_text("user file")
    with pytest.raises(ExportError, match="not empty"):
        export_colorizer(model, str(target), {}, trained=False)
    assert (target / "keep.txt").read_text() == "user file"
    out = export_colorizer(model, str(target), {}, trained=False, overwrite=True)
    assert not (target / "keep.txt").exists() and os.path.isfile(os.path.join(out, "saved_model.pb"))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp") or p.startswith(".old")]
    fn = tf.saved_model.load(out).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of 8"):
        fn(grey=tf.zeros([1, 20, 20, 1]))
