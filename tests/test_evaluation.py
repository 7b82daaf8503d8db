"""Evaluation protocol: metric values worked out by hand, baselines, bicubic row."""
import numpy as np
import pytest
from PIL import Image

from data.colour import rgb_to_yuv
from data.io import read_image
from pipeline import evaluation as ev


def test_psnr_255_of_a_known_error():
    ref = np.full((10, 10, 3), 100 / 255.0)
    out = ref.copy()
    out[:5] = 110 / 255.0  # half the pixels off by 10 levels: MSE = 50
    assert abs(ev.mse_255(ref, out) - 50.0) < 1e-9
    assert abs(ev.psnr_255(ref, out) - 10 * np.log10(255**2 / 50)) < 1e-9
    # Shaving 4 px keeps rows 4..5 of the 10: rows 4 wrong, row 5 right -> MSE 50 again.
    assert abs(ev.mse_255(ref, out, border=4) - 50.0) < 1e-9
    assert ev.psnr_255(ref, ref) == float("inf")


def test_errors_do_not_wrap_like_uint8():
    # The paper's script: uint8 subtraction wraps. 10 - 250 in uint8 is 16, so its
    # squared error would be 256 instead of 57600.
    ref, out = np.full((2, 2, 3), 10 / 255.0), np.full((2, 2, 3), 250 / 255.0)
    assert ev.mse_255(ref, out) == 240.0**2
    wrapped = (np.uint8(10) - np.uint8(250)).astype(np.float64) ** 2
    assert wrapped == 256.0


def test_psnr_y_uses_bt601():
    ref = np.zeros((4, 4, 3))
    out = np.zeros((4, 4, 3))
    out[..., 1] = 1.0  # pure green: Y differs by 128.553 levels
    assert abs(ev.psnr_255(ref, out, y_only=True) - 10 * np.log10(255**2 / 128.553**2)) < 1e-9


def test_ssim_identical_and_different(real_images):
    img = read_image(real_images[0])
    assert abs(ev.ssim_255(img, img) - 1.0) < 1e-6
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 0.2, img.shape), 0, 1)
    assert ev.ssim_255(img, noisy, border=4) < 0.5


def test_grey_baseline_and_saturation():
    rgb = np.array([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]])
    grey = ev.grey_baseline(rgb)
    np.testing.assert_allclose(grey[0, 0], [0.299] * 3, atol=1e-6)
    assert ev.saturation(rgb) == 0.5  # red: 1, grey: 0
    assert ev.saturation(grey) == 0.0


def test_bicubic_row_matches_independent_computation(real_images):
    images = [read_image(p) for p in real_images[:3]]
    rows = ev.evaluate_sr(images, {"bicubic": lambda lr: ev.pil_upscale(lr, 4, "bicubic")}, 4)
    expected = []
    for img in images:
        hr8 = np.round(img * 255).astype(np.uint8)
        import tensorflow as tf

        lr = tf.image.resize(img[None], (64, 64), "bicubic", antialias=True)[0].numpy()
        lr8 = np.round(np.clip(lr, 0, 1) * 255).astype(np.uint8)
        up = np.asarray(Image.fromarray(lr8).resize((256, 256), Image.BICUBIC)).astype(np.float64)
        err = np.mean((up[4:-4, 4:-4] - hr8[4:-4, 4:-4].astype(np.float64)) ** 2)
        expected.append(10 * np.log10(255**2 / err))
    assert rows[0].method == "bicubic"
    assert abs(rows[0].values["psnr_rgb"] - np.mean(expected)) < 1e-6


def test_mod_crop_and_make_lr_shapes(real_images):
    img = read_image(real_images[0])[:203, :117]
    hr = ev.mod_crop(img, 4)
    assert hr.shape == (200, 116, 3) and ev.make_lr(hr, 4).shape == (50, 29, 3)


def test_evaluate_writes_table_and_figures(tmp_path, real_images, tiny_exports):
    import shutil

    from pipeline.evaluation import EvalConfig, evaluate

    data = tmp_path / "data" / "test"
    data.mkdir(parents=True)
    for p in real_images[:2]:
        shutil.copy(p, data)
    result = evaluate(EvalConfig(data=str(tmp_path / "data"), output=str(tmp_path / "eval"),
                                 colorize_model=tiny_exports["colorize"], srgan_models=(tiny_exports["srgan"],),
                                 size=64, inception_weights="none", figures=1), log=lambda m: None)
    md = (tmp_path / "eval" / "results.md").read_text()
    assert "not available" in md and "wrapped modulo 256" in md
    assert (tmp_path / "eval" / "results.csv").read_text().count("\n") == len(result["rows"]) + 1
    bicubic = next(r for r in result["rows"] if r.method == "bicubic (PIL)")
    images = [read_image(p) for p in real_images[:2]]
    independent = ev.evaluate_sr(images, {"b": lambda lr: ev.pil_upscale(lr, 4, "bicubic")}, 4)[0]
    assert abs(bicubic.values["psnr_rgb"] - independent.values["psnr_rgb"]) < 1e-9
    assert len([f for f in result["files"] if f.endswith(".png")]) == 2


def test_evaluate_finds_models_named_as_pipeline_run_names_them(tmp_path, real_images, tiny_exports, monkeypatch):
    """`--colorize_model checkpoints/X` from a folder that has no checkpoints/: found in the model
    search folders ($ASTRO_MODELS_DIR here), as pipeline.run finds it, not a cwd-relative failure."""
    import shutil

    from pipeline.evaluation import EvalConfig, evaluate

    models = tmp_path / "models"
    shutil.copytree(tiny_exports["colorize"], models / "tiny_colour")
    shutil.copytree(tiny_exports["srgan"], models / "tiny_sr")
    data = tmp_path / "data" / "test"
    data.mkdir(parents=True)
    shutil.copy(real_images[0], data)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("ASTRO_MODELS_DIR", str(models))
    monkeypatch.chdir(elsewhere)
    result = evaluate(EvalConfig(data=str(tmp_path / "data"), output=str(tmp_path / "eval"),
                                 colorize_model="checkpoints/tiny_colour", srgan_models=("checkpoints/tiny_sr",),
                                 size=64, inception_weights="none", figures=0), log=lambda m: None)
    # The SR rows name the export's folder: the one found under $ASTRO_MODELS_DIR.
    assert any(r.method.startswith("SR model tiny_sr") for r in result["rows"])


def test_make_lr_is_antialiased_bicubic_on_8_bit_levels(real_images):
    import tensorflow as tf

    hr = read_image(real_images[0])[:48, :40]
    lr = ev.make_lr(hr, 4)
    assert lr.shape == (12, 10, 3) and lr.dtype == np.float32
    reference = tf.image.resize(hr[None], (12, 10), "bicubic", antialias=True)[0].numpy()
    expected = np.round(np.clip(reference, 0, 1) * 255) / 255
    # The same TensorFlow op: equal to float rounding, so on the same 8-bit levels.
    np.testing.assert_allclose(lr, expected, atol=1e-6)
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    # Kept float (a stretched FITS frame): the resize itself, only clipped.
    np.testing.assert_allclose(ev.make_lr(hr, 4, quantize=False), np.clip(reference, 0, 1), atol=1e-6)
    with pytest.raises(ValueError, match="50x40 is not a multiple of 4; mod_crop"):
        ev.make_lr(read_image(real_images[0])[:50, :40], 4)


def test_working_size_is_the_whole_image_resized(real_images):
    """The colouriser's eval input: the whole image, antialiased bilinear to the square working size."""
    import tensorflow as tf

    img = read_image(real_images[0])
    small = ev.to_size(img, 32)
    ref = np.clip(tf.image.resize(img[None], (32, 32), "bilinear", antialias=True)[0].numpy(), 0, 1)
    assert small.shape == (32, 32, 3)
    np.testing.assert_allclose(small, ref, atol=1e-6)
    y = np.asarray(rgb_to_yuv(small))[..., 0]
    assert 0.0 <= y.min() and y.max() <= 1.0
