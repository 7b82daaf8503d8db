"""SRGAN networks: shapes, scale handling, sub-pixel init, export round trip."""
import subprocess
import sys

import numpy as np
import pytest

from srgan.model import build_discriminator, build_generator, build_vgg_features


@pytest.fixture(scope="module")
def small_generator():
    import keras

    keras.utils.set_random_seed(1)
    return build_generator(num_blocks=2, filters=16, scale=4)


def test_generator_shapes(small_generator):
    assert small_generator(np.zeros((2, 24, 24, 3), np.float32)).shape == (2, 96, 96, 3)
    assert small_generator(np.zeros((1, 56, 56, 3), np.float32)).shape == (1, 224, 224, 3)
    assert small_generator(np.zeros((1, 13, 7, 3), np.float32)).shape == (1, 52, 28, 3)  # fully convolutional
    assert build_generator(1, 8, scale=2)(np.zeros((1, 10, 10, 3), np.float32)).shape == (1, 20, 20, 3)
    with pytest.raises(ValueError, match="power of 2"):
        build_generator(1, 8, scale=3)


def test_generator_has_paper_layers():
    g = build_generator()  # paper size: 16 blocks x 64 filters
    names = [layer.name for layer in g.layers]
    assert sum(n.endswith("_add") and n.startswith("res") for n in names) == 16
    assert g.get_layer("conv_in").kernel.shape == (9, 9, 3, 64)
    assert g.get_layer("up1_conv").kernel.shape == (3, 3, 64, 256)
    assert g.get_layer("conv_out").kernel.shape == (9, 9, 64, 3)


def test_icnr_starts_as_nearest_neighbour_upsampling():
    g = build_generator(1, 8, scale=2)
    k = g.get_layer("up1_conv").kernel.numpy()
    # The four sub-pixel positions start with identical kernels: no checkerboard.
    for j in range(1, 4):
        np.testing.assert_array_equal(k[..., j * 8 : (j + 1) * 8], k[..., :8])


def test_discriminator_and_vgg_shapes():
    d = build_discriminator(hr_size=32)
    assert d(np.zeros((3, 32, 32, 3), np.float32)).shape == (3, 1)
    assert build_discriminator(96).count_params() > 1_000_000
    v = build_vgg_features("pool4", weights="none")
    assert v(np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 4, 4, 512)
    assert not v.trainable_weights
    with pytest.raises(FileNotFoundError, match="not found"):
        build_vgg_features("conv5_4", weights="/nonexistent/vgg19.h5")


def test_vgg_weights_from_a_file_and_caffe_preprocessing(tmp_path):
    import keras

    keras.utils.set_random_seed(3)
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "vgg19_notop.weights.h5")
    vgg.save_weights(path)
    keras.utils.set_random_seed(4)
    loaded = build_vgg_features("conv2_2", weights=path)
    x = np.random.default_rng(0).random((1, 16, 16, 3)).astype(np.float32)
    # Reference: Keras' own VGG19 preprocessing (RGB->BGR, ImageNet mean) on 0-255 input.
    ref = keras.Model(vgg.input, vgg.get_layer("block2_conv2").output)(
        keras.applications.vgg19.preprocess_input(x * 255.0))
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(ref), rtol=1e-4, atol=1e-3)
    assert float(np.abs(np.asarray(ref)).max()) > 1.0
    bad = tmp_path / "bad.h5"
    bad.write_text("not weights")
    with pytest.raises(ValueError, match="not VGG19"):
        build_vgg_features("pool4", weights=str(bad))


def test_export_reload_same_output(tmp_path, small_generator, real_images):
    from data.io import read_image
    from srgan.saved_model import export_saved_model, upscale

    lr = read_image(real_images[0])[None, 100:140, 60:110]
    out = export_saved_model(small_generator, str(tmp_path / "sr"), {"num_blocks": 2, "filters": 16})
    np.save(tmp_path / "lr.npy", lr)
    # Reload in a fresh interpreter that cannot import this project (-I, other cwd).
    code = (
        "import os, sys, numpy as np; os.environ['TF_CPP_MIN_LOG_LEVEL']='3'; import tensorflow as tf; "
        f"m = tf.saved_model.load({out!r}); x = np.load({str(tmp_path / 'lr.npy')!r}); "
        "y = m.signatures['serving_default'](lr=tf.constant(x))['sr'].numpy(); "
        f"np.save({str(tmp_path / 'sr.npy')!r}, y); print('srgan' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-I", "-c", code], cwd=str(tmp_path), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("False")
    reloaded = np.load(tmp_path / "sr.npy")
    assert reloaded.shape == (1, 160, 200, 3)
    assert np.abs(reloaded - np.asarray(upscale(small_generator, lr))).max() < 1e-5
    from common.export import ExportError

    with pytest.raises(ExportError, match="not empty"):
        export_saved_model(small_generator, out)
