"""The default models shipped in checkpoints/: they fit the size budget, load, are trained and work on real frames.

Their quality on the test split is measured by `pipeline.evaluate` (numbers in
checkpoints/MODEL_CARD.md), not here; these tests catch a missing, untrained,
broken or oversized export.
"""
import os

import numpy as np
import pytest
import tensorflow as tf

from data.colour import rgb_to_luma
from data.io import read_image
from pipeline.models import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINTS = os.path.join(ROOT, "checkpoints")
MODELS = ("colorize", "srgan", "srgan_gan")


def test_everything_under_checkpoints_fits_in_50_mb():
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(CHECKPOINTS) for f in files)
    assert 0 < total <= 50 * 1024 * 1024


@pytest.mark.parametrize("name", MODELS)
def test_shipped_models_are_trained_exports(name):
    model = load_model(os.path.join(CHECKPOINTS, name), "colorize" if name == "colorize" else "srgan")
    assert model.trained and model.config["steps_trained"] > 0


@pytest.fixture(scope="module")
def frames(real_images):
    """Three real Hubble colour frames, 224x224, and their luminance."""
    rgb = np.stack([read_image(p) for p in real_images[:3]]).astype(np.float32)
    rgb = tf.image.resize(rgb, (224, 224), antialias=True).numpy().clip(0, 1)
    return rgb, np.asarray(rgb_to_luma(rgb), np.float32)


def test_default_colouriser_keeps_luminance_and_adds_colour(frames):
    _, grey = frames
    out = load_model(os.path.join(CHECKPOINTS, "colorize"), "colorize").run(grey)
    assert out.shape == (3, 224, 224, 3) and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(np.asarray(rgb_to_luma(out)), grey, atol=1e-5)
    # Not a grey image: a trained colouriser tints (mean |R - B| well above float noise).
    assert np.abs(out[..., 0] - out[..., 2]).mean() > 1e-3


@pytest.mark.parametrize("name", ("srgan", "srgan_gan"))
def test_default_sr_models_upscale_real_frames_4x_closer_than_nearest(frames, name):
    """In luminance: on these deep-field frames (unlike the nebulae they were trained on) the models'
    colour noise in dark sky makes their RGB error no better than nearest's (see the model card)."""
    rgb, _ = frames
    lr = tf.image.resize(rgb, (56, 56), method="bicubic", antialias=True).numpy().clip(0, 1)
    sr = load_model(os.path.join(CHECKPOINTS, name), "srgan").run(lr)
    assert sr.shape == (3, 224, 224, 3)
    nearest = np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2)

    def y_mse(out):
        return np.mean((np.asarray(rgb_to_luma(out)) - np.asarray(rgb_to_luma(rgb))) ** 2)

    assert y_mse(sr) < 0.9 * y_mse(nearest)
