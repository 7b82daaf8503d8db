"""tf.data builders: shapes, dtypes, ranges, determinism, eval passes."""
import numpy as np
import pytest
import tensorflow as tf

from data.colour import rgb_to_yuv
from data.datasets import colorize_dataset, downscale, split_files, sr_dataset
from data.io import read_image


def test_colorize_batches(real_images):
    ds = colorize_dataset(real_images, size=64, batch_size=4, training=True, seed=3)
    y, uv = next(iter(ds))
    assert y.shape == (4, 64, 64, 1) and uv.shape == (4, 64, 64, 2)
    assert y.dtype == tf.float32 and uv.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(y)) and float(tf.reduce_max(y)) <= 1.0
    # Guo's chroma range for RGB in [0, 1].
    assert -0.12 <= float(tf.reduce_min(uv)) and float(tf.reduce_max(uv)) <= 1.12
    y2, uv2 = next(iter(colorize_dataset(real_images, size=64, batch_size=4, training=True, seed=3)))
    np.testing.assert_array_equal(y, y2)
    y3, _ = next(iter(colorize_dataset(real_images, size=64, batch_size=4, training=True, seed=4)))
    assert not np.array_equal(y, y3)


def test_colorize_eval_is_whole_image_resized(real_images):
    ds = colorize_dataset(real_images[:3], size=32, batch_size=2, training=False)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [2, 1]  # one pass, remainder kept
    img = read_image(real_images[0])[None]
    ref = rgb_to_yuv(tf.clip_by_value(tf.image.resize(img, (32, 32), "bilinear", antialias=True), 0, 1))
    np.testing.assert_allclose(batches[0][0][0], ref[0, ..., :1], atol=1e-6)


def test_sr_batches_and_lr_is_antialiased_bicubic(real_images):
    lr, hr = next(iter(sr_dataset(real_images, hr_size=48, scale=4, batch_size=3, training=True, seed=0)))
    assert lr.shape == (3, 12, 12, 3) and hr.shape == (3, 48, 48, 3)
    expected = tf.round(tf.clip_by_value(tf.image.resize(hr, (12, 12), "bicubic", antialias=True), 0, 1) * 255) / 255
    np.testing.assert_allclose(lr, expected, atol=1e-6)
    # LR sits on 8-bit levels.
    np.testing.assert_allclose(np.asarray(lr) * 255, np.round(np.asarray(lr) * 255), atol=1e-4)


def test_sr_eval_center_crop_and_padding(tmp_path, real_images):
    lr, hr = next(iter(sr_dataset(real_images[:1], hr_size=96, training=False, batch_size=1)))
    img = read_image(real_images[0])
    np.testing.assert_array_equal(hr[0], img[80:176, 80:176])
    from data.writers import write_png

    small = tmp_path / "small.png"
    write_png(str(small), img[:40, :50])
    lr, hr = next(iter(sr_dataset([str(small)], hr_size=96, training=False, batch_size=1)))
    assert hr.shape == (1, 96, 96, 3) and float(tf.reduce_sum(hr[0, :20])) == 0.0  # black padding
    with pytest.raises(ValueError, match="multiple of scale"):
        sr_dataset(real_images, hr_size=50, scale=4)


def test_downscale_shape():
    x = tf.random.uniform((2, 40, 24, 3))
    assert downscale(x, 4).shape == (2, 10, 6, 3)


def test_split_files_errors(tmp_path, real_images):
    with pytest.raises(ValueError, match="data.prepare"):
        split_files(str(tmp_path), "train")
    (tmp_path / "dev").mkdir()
    with pytest.raises(ValueError, match="no usable images"):
        split_files(str(tmp_path), "dev")
    with pytest.raises(ValueError, match="unknown split"):
        split_files(str(tmp_path), "val")
