"""YUV round trip, normalisation, and metric values worked out by hand."""
import numpy as np
import tensorflow as tf

from data.colour import rgb_to_yuv, y_uv_to_rgb, yuv_to_rgb
from data.normalize import normalize, to_uint8
from common.metrics import luma_bt601, mse, psnr, ssim


def test_yuv_known_values():
    rgb = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]], np.float32)
    yuv = np.asarray(rgb_to_yuv(tf.constant(rgb)))
    np.testing.assert_allclose(yuv[0], [1.0, 0.5, 0.5], atol=1e-6)  # white: no chroma
    np.testing.assert_allclose(yuv[1], [0.299, 0.5 - 0.492 * 0.299, 0.5 + 0.877 * 0.701], atol=1e-6)
    np.testing.assert_allclose(yuv[2], [0.114, 0.5 + 0.492 * 0.886, 0.5 - 0.877 * 0.114], atol=1e-6)
    np.testing.assert_allclose(yuv[3], [0.5, 0.5, 0.5], atol=1e-6)


def test_yuv_roundtrip_random_and_real(real_images):
    from data.io import read_image

    rgb = np.random.default_rng(0).random((4, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(yuv_to_rgb(rgb_to_yuv(tf.constant(rgb)))), rgb, atol=2e-6)
    img = read_image(real_images[3])[None]
    yuv = rgb_to_yuv(tf.constant(img))
    np.testing.assert_allclose(np.asarray(y_uv_to_rgb(yuv[..., :1], yuv[..., 1:])), img, atol=2e-6)


def test_normalize_dtypes():
    assert normalize(np.array([0, 255], np.uint8)).tolist() == [0.0, 1.0]
    np.testing.assert_allclose(normalize(np.array([0, 32768, 65535], np.uint16)), [0, 32768 / 65535, 1])
    np.testing.assert_allclose(normalize(np.array([-0.5, np.nan, 0.25, 2.0])), [0, 0, 0.25, 1])
    assert to_uint8(np.array([0.0, 0.5, 1.0, 0.499 / 255])).tolist() == [0, 128, 255, 0]


def test_psnr_of_known_mse():
    a = np.zeros((2, 8, 8, 3), np.float32)
    b = a.copy()
    b[0] += 0.1  # MSE 0.01 -> 20 dB
    b[1] += 0.01  # MSE 1e-4 -> 40 dB
    assert abs(float(psnr(a, b)) - 30.0) < 1e-4
    assert abs(float(mse(a, b)) - (0.01 + 1e-4) / 2) < 1e-7
    assert abs(float(psnr(a * 255, b * 255, max_val=255.0)) - 30.0) < 1e-3
    assert abs(float(psnr(a, a)) - 100.0) < 1e-4  # capped, finite


def test_ssim_identical_is_one_and_noise_lowers_it(real_images):
    from data.io import read_image

    img = read_image(real_images[0])[None, :64, :64]
    assert abs(float(ssim(img, img)) - 1.0) < 1e-6
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 0.1, img.shape), 0, 1).astype(np.float32)
    assert float(ssim(img, noisy)) < 0.9


def test_luma_bt601_range():
    y = luma_bt601(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(y[:, 0], [16.0, 235.0], atol=1e-9)
