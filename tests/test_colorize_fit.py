"""The colouriser's `model.fit` trainer (any Keras backend) and its examples (`data.examples`):
examples equal to TensorFlow's resize of each crop, training, resume, export; and the same under JAX in a subprocess."""
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorize import trainer
from data import examples
from colorize.config import ColorizeConfig
from colorize.losses import colorize_loss
from colorize.saved_model import export_colorizer, restore_colorizer
from data.colour import rgb_to_yuv
from data.splits import split_files


def _tf_resize(image, size):
    return np.clip(tf.image.resize(image[None], size, method="bilinear", antialias=True).numpy()[0], 0, 1)


def test_whole_images_match_the_tf_eval_examples(real_images):
    """Dev examples: each image (not its zero padding) resized whole with tf.image.resize, split into Y and UV."""
    images, sizes = examples.load_images(real_images[:2])
    cut = images[1, :200, :150].astype(np.float32)  # a non-square image among square ones
    images[1] = 0
    images[1, :200, :150] = cut
    sizes[1] = (200, 150)
    y, uv = examples.make_examples(images, examples.whole_images(sizes), 48)
    for i in range(2):
        h, w = sizes[i]
        ref = np.asarray(rgb_to_yuv(_tf_resize(images[i, :h, :w].astype(np.float32), (48, 48))))
        np.testing.assert_allclose(np.asarray(y[i]), ref[..., :1], atol=2e-6)
        np.testing.assert_allclose(np.asarray(uv[i]), ref[..., 1:], atol=2e-6)


@pytest.mark.parametrize("side,size", [(30, 24), (12, 24), (20, 20)])
def test_crops_flips_and_resizes_match_tf(side, size):
    """Every one of the 8 orientations, shrinking and enlarging, equals crop + flip + tf.image.resize."""
    image = np.random.default_rng(side).random((1, 40, 50, 3)).astype(np.float32)
    for code in range(8):
        ud, lr, tr = code & 1, (code >> 1) & 1, (code >> 2) & 1
        params = np.array([[5, 7, side, side, ud, lr, tr]], np.float32)
        out = np.asarray(examples.crop_resize(image, params, size))[0]
        crop = image[0, 5:5 + side, 7:7 + side]
        crop = crop[::-1] if ud else crop
        crop = crop[:, ::-1] if lr else crop
        ref = _tf_resize(np.ascontiguousarray(crop), (size, size))
        np.testing.assert_allclose(out, ref.transpose(1, 0, 2) if tr else ref, atol=1e-5, err_msg=f"orientation {code}")


def test_random_crops_are_squares_of_half_to_all_of_the_short_side():
    rng = np.random.default_rng(0)
    sizes = np.tile([[120, 200]], (2000, 1))
    p = examples.random_crops(rng, sizes)
    top, left, h, w = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    assert np.array_equal(h, w) and h.min() >= 60 and h.max() <= 120
    assert (top >= 0).all() and (top + h <= 120).all() and (left >= 0).all() and (left + w <= 200).all()
    orientations = p[:, 4] + 2 * p[:, 5] + 4 * p[:, 6]
    counts = np.bincount(orientations.astype(int), minlength=8)
    assert counts.min() > 2000 / 8 * 0.7  # all 8 flips/rotations, about equally often


def test_load_images_pads_repeats_grey_and_skips_unreadable(tmp_path, real_images):
    from data.io import read_image
    from data.writers import write_png

    grey = read_image(real_images[0])[:100, :80].mean(axis=-1, keepdims=True)
    write_png(str(tmp_path / "grey.png"), grey)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    images, sizes = examples.load_images([str(tmp_path / "grey.png"), str(tmp_path / "broken.png"), real_images[1]])
    assert images.shape == (2, 256, 256, 3) and images.dtype == np.float16
    assert sizes.tolist() == [[100, 80], [256, 256]]
    assert np.array_equal(images[0, :100, :80, 0], images[0, :100, :80, 2])  # grey repeated
    assert not images[0, 100:].any() and not images[0, :, 80:].any()  # black padding
    np.testing.assert_allclose(images[1], read_image(real_images[1]), atol=1e-3)
    with pytest.raises(ValueError, match="could be read"):
        examples.load_images([str(tmp_path / "broken.png")])


def test_learning_rate_drops_after_the_named_steps():
    """--lr_decay_steps 3,5 --lr_decay_factor 0.5: updates 1-3 at 1e-3, 4-5 at 5e-4, then 2.5e-4."""
    from colorize.config import make_optimizer

    optimizer = make_optimizer(ColorizeConfig(data_dir="", learning_rate=1e-3, lr_decay_steps=(3, 5),
                                              lr_decay_factor=0.5))
    w = keras.Variable(np.zeros(2, np.float32))
    optimizer.build([w])
    rates = []
    for _ in range(7):
        rates.append(float(optimizer.learning_rate))  # the rate the next update uses
        optimizer.apply_gradients([(np.ones(2, np.float32), w)])
    np.testing.assert_allclose(rates, [1e-3] * 3 + [5e-4] * 2 + [2.5e-4] * 2, rtol=1e-6)


@pytest.fixture(scope="module")
def prepared(make_prepared):
    return make_prepared(4, 2)


def _config(data_dir, **kw):
    base = dict(data_dir=data_dir, batch_size=4, size=64, backbone_weights="none", log_every=5, eval_every=10,
                checkpoint_every=10, max_to_keep=2)
    base.update(kw)
    return ColorizeConfig(**base)


def _fixed_examples(prepared):
    images, sizes = examples.load_images(split_files(prepared, "train"))
    return examples.make_examples(images, examples.whole_images(sizes), 64)


@pytest.fixture(scope="module")
def run20(prepared, tmp_path_factory):
    """20 steps of the paper's network (random, frozen VGG16) with a learning-rate drop at step 10."""
    config = _config(prepared, iterations=20, lr_decay_steps=(10,), lr_decay_factor=0.5)
    workdir = str(tmp_path_factory.mktemp("fit"))
    return config, workdir, trainer.train(config, workdir)


def test_training_lowers_the_loss_and_writes_its_run(prepared, run20):
    config, workdir, result = run20
    y, uv = _fixed_examples(prepared)
    keras.utils.set_random_seed(config.seed)
    from colorize.model import architecture, build_colorizer

    untrained = build_colorizer(None, **architecture(dataclasses.asdict(config)))
    # Batch norm in training mode: what the optimiser saw, without waiting for the slow
    # (momentum 0.99) moving statistics; a training-mode call moves them, so they are put back.
    before = float(colorize_loss(uv, untrained(y, training=True)))
    saved = result.model.get_weights()
    after = float(colorize_loss(uv, result.model(y, training=True)))
    result.model.set_weights(saved)
    print("before", before, "after", after)
    assert after < 0.5 * before
    assert [s for s, _ in result.losses] == list(range(1, 21)) and np.isfinite([v for _, v in result.losses]).all()
    assert set(result.dev) == {"loss", "uv_mse", "rgb_mse", "rgb_psnr", "grey_baseline_loss", "grey_uv_mse"}
    assert json.load(open(os.path.join(workdir, "state", "step.json")))["step"] == 20
    assert sorted(os.listdir(os.path.join(workdir, "weights"))) == ["step_0000010.weights.h5",
                                                                    "step_0000020.weights.h5"]
    best = json.load(open(os.path.join(workdir, "best", "best.json")))
    assert best["step"] in (10, 20)
    saved = json.load(open(os.path.join(workdir, "config.json")))
    assert saved["backbone"] == "vgg16" and saved["lr_decay_steps"] == [10]


def test_a_resumed_run_equals_an_uninterrupted_one(prepared, run20, tmp_path):
    config, _, straight = run20
    workdir = str(tmp_path / "resumed")
    first = trainer.train(dataclasses.replace(config, iterations=10), workdir)
    assert first.step == 10
    second = trainer.train(config, workdir)
    assert (second.start_step, second.step) == (10, 20)
    for a, b in zip(straight.model.get_weights(), second.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_run_exports_the_same_colours(prepared, run20, tmp_path):
    config, workdir, result = run20
    y, _ = _fixed_examples(prepared)
    model, step, saved = restore_colorizer(workdir, "latest")
    assert step == 20 and saved["backbone"] == "vgg16"
    np.testing.assert_array_equal(model(y, training=False).numpy(), result.model(y, training=False).numpy())
    best, best_step = restore_colorizer(workdir, "best")[:2]
    assert best_step == json.load(open(os.path.join(workdir, "best", "best.json")))["step"]
    with pytest.raises(FileNotFoundError, match="no '7' weights"):
        restore_colorizer(workdir, "7")
    out = export_colorizer(model, str(tmp_path / "export"), saved, steps_trained=step, trained=True)
    served = tf.saved_model.load(out).signatures["serving_default"](grey=tf.constant(y))
    np.testing.assert_allclose(served["uv"].numpy(), result.model(y, training=False).numpy(), atol=1e-5)
    rgb = served["rgb"].numpy()
    np.testing.assert_allclose(rgb_to_yuv(rgb)[..., :1], y, atol=2e-3)  # luminance kept


def test_trainer_refuses_what_it_cannot_do(prepared, run20, tmp_path):
    config, workdir, _ = run20
    with pytest.raises(ValueError, match="backbone"):
        trainer.train(dataclasses.replace(config, backbone="compact"), workdir)
    os.makedirs(tmp_path / "tf" / "ckpt")
    with pytest.raises(ValueError, match="TensorFlow-loop trainer"):
        trainer.train(config, str(tmp_path / "tf"))
    with pytest.raises(ValueError, match="lr_decay_steps"):
        trainer.train(dataclasses.replace(config, lr_decay_steps=(5, 3)), str(tmp_path / "d"))
    assert json.load(open(os.path.join(workdir, "state", "step.json")))["step"] == 20  # untouched


def test_trains_and_resumes_exactly_under_jax(prepared, tmp_path):
    """The same trainer under `KERAS_BACKEND=jax` (a GPU machine without TensorFlow runs this): a few steps
    lower the loss, and a run stopped at step 4 and resumed ends with the uninterrupted run's weights.

    Tolerance 1e-5 absolute, the size of `test_a_resumed_run_equals_an_uninterrupted_one`'s (the resumed run
    compiles its steps afresh; XLA may order float32 sums differently)."""
    pytest.importorskip("jax")
    from backend_check import run_under_jax

    out = run_under_jax("colorize", prepared, str(tmp_path))
    assert out["backend"] == "jax"
    assert out["after"] < 0.5 * out["before"], out
    assert len(out["losses"]) == 8 and np.isfinite(out["losses"]).all()
    assert out["steps"] == [4, 4, 8]
    assert out["max_abs_diff_resumed"] < 1e-5, out
    assert out["samples"] == ["step_0000004.png", "step_0000008.png"]
    assert "rgb_psnr" in out["dev"]
