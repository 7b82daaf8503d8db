"""The classification colouriser (colorize.chroma): bins, rebalancing, encoding, decoding, training, export."""
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorize.chroma import (ChromaHead, annealed_mean, bin_centres, classification_loss, counts_in, data_bins,
                             rebalance_weights, soft_encode)
from colorize.config import ColorizeConfig, validate
from colorize.model import architecture, build_colorizer
from colorize.saved_model import TEMPERATURE_SIGNATURE, chroma_head, colorize_rgb, export_colorizer
from data.colour import rgb_to_luma, rgb_to_yuv
from data.examples import crop_resize, make_examples, random_crops, stretch_rgb, whole_images

# float32 keeps ~7 digits; these hand-worked values are computed in float64.
F32 = 1e-6

THREE_BINS = [[0, 0], [1, 0], [0, 2]]  # centres (0.5, 0.5), (0.54, 0.5), (0.5, 0.58) at width 0.04


def test_rebalancing_weights_on_three_bins_by_hand():
    # p = (0.5, 0.3, 0.2), lambda = 0.5, Q = 3, no smoothing:
    # mix = 0.5 p + 0.5 / 3 = (0.416667, 0.316667, 0.266667); 1 / mix = (2.4, 3.157895, 3.75);
    # sum p / mix = 1.2 + 0.947368 + 0.75 = 2.897368, so w = (0.828338, 1.089918, 1.294278).
    w = rebalance_weights(np.array(THREE_BINS), np.array([50, 30, 20]), 0.5, smoothing=0)
    np.testing.assert_allclose(w, [2.4 / 2.897368, 3.157895 / 2.897368, 3.75 / 2.897368], rtol=1e-5)
    assert abs(float(np.dot([0.5, 0.3, 0.2], w)) - 1.0) < F32 * 3  # E[w] = 1 under p
    np.testing.assert_allclose(rebalance_weights(np.array(THREE_BINS), np.array([50, 30, 20]), 1.0, 0), 1.0, rtol=F32)
    # lambda = 0 gives w ∝ 1 / p: (2, 3.33, 5) / 3 = (0.6667, 1.1111, 1.6667).
    np.testing.assert_allclose(rebalance_weights(np.array(THREE_BINS), np.array([50, 30, 20]), 0.0, 0),
                               [2 / 3, 10 / 9, 5 / 3], rtol=1e-5)
    # Smoothing moves mass toward neighbours but keeps E[w] = 1 under the smoothed p.
    smooth = rebalance_weights(np.array(THREE_BINS), np.array([50, 30, 20]), 0.5, smoothing=0.5)
    assert smooth[0] < smooth[1] < smooth[2]
    with pytest.raises(ValueError, match="rebalance_lambda"):
        rebalance_weights(np.array(THREE_BINS), np.array([1, 1, 1]), 1.5)


def test_soft_and_one_hot_encoding_by_hand():
    centres = bin_centres(THREE_BINS, 0.04)
    np.testing.assert_allclose(centres, [[0.5, 0.5], [0.54, 0.5], [0.5, 0.58]], atol=F32)
    uv = np.array([0.51, 0.5], np.float32).reshape(1, 1, 1, 2)
    # Squared distances 1e-4, 9e-4, 6.5e-3; sigma = 0.02, 2 sigma^2 = 8e-4:
    # two nearest -> weights 1 and exp(-(9e-4 - 1e-4) / 8e-4) = e^-1, normalised.
    two = np.asarray(soft_encode(uv, centres, 0.04, neighbours=2)).reshape(3)
    np.testing.assert_allclose(two, [1 / (1 + math.e**-1), math.e**-1 / (1 + math.e**-1), 0.0], atol=1e-6)
    one = np.asarray(soft_encode(uv, centres, 0.04, neighbours=1)).reshape(3)
    np.testing.assert_array_equal(one, [1.0, 0.0, 0.0])
    # One-hot target, weights (1, 2, 3): the loss is w of the nearest bin times -log softmax there.
    logits = np.array([1.0, 2.0, 0.0], np.float32).reshape(1, 1, 1, 3)
    log_z = math.log(math.e + math.e**2 + 1)
    loss = float(classification_loss(uv, logits, centres, np.array([1.0, 2.0, 3.0]), 0.04, neighbours=1))
    assert abs(loss - 1.0 * (log_z - 1.0)) < 1e-5
    uv_far = np.array([0.5, 0.57], np.float32).reshape(1, 1, 1, 2)  # nearest is bin 2
    loss = float(classification_loss(uv_far, logits, centres, np.array([1.0, 2.0, 3.0]), 0.04, neighbours=1))
    assert abs(loss - 3.0 * (log_z - 0.0)) < 1e-5


def test_loss_stride_takes_every_nth_pixel():
    centres = bin_centres(THREE_BINS, 0.04)
    rng = np.random.default_rng(2)
    uv = rng.uniform(0.45, 0.6, (2, 4, 4, 2)).astype(np.float32)
    logits = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    w = np.array([0.5, 1.0, 2.0])
    strided = float(classification_loss(uv, logits, centres, w, 0.04, 5, stride=2))
    picked = float(classification_loss(uv[:, ::2, ::2], logits[:, ::2, ::2], centres, w, 0.04, 5))
    assert abs(strided - picked) < F32 * 10 and abs(strided - float(classification_loss(uv, logits, centres, w, 0.04))) > 1e-4


def test_annealed_mean_is_the_mode_at_low_temperature_and_the_mean_at_one():
    centres = bin_centres(THREE_BINS, 0.04)
    logits = np.array([[0.3, 1.2, -0.5], [2.0, 0.1, 1.9]], np.float32).reshape(2, 1, 1, 3)
    mode = np.asarray(annealed_mean(logits, centres, 1e-4)).reshape(2, 2)
    np.testing.assert_allclose(mode, centres[[1, 0]], atol=F32)
    p = np.exp(logits.reshape(2, 3).astype(np.float64))
    p /= p.sum(axis=1, keepdims=True)
    mean = np.asarray(annealed_mean(logits, centres, 1.0)).reshape(2, 2)
    np.testing.assert_allclose(mean, p @ centres.astype(np.float64), atol=F32)
    # Row 0's mode is a coloured bin: a lower temperature moves it farther from grey (0.5, 0.5).
    sat = lambda t: np.abs(np.asarray(annealed_mean(logits, centres, t))[0] - 0.5).sum()  # noqa: E731
    assert sat(0.38) > sat(1.0)


def test_data_bins_count_pixels_and_ignore_padding():
    # Two 2x2 images on a 2x3 canvas; image 1 is 2x2 so its third column (padding) is not counted.
    images = np.zeros((2, 2, 3, 3), np.float32)
    images[0, :, :2] = 0.5  # grey -> bin (0, 0)
    images[1, 0, 0] = [1.0, 0.0, 0.0]  # red: U = -0.492 * 0.299, V = 0.877 * 0.701 -> bin (-4, 15) at 0.04
    images[1, 0, 1] = images[1, 1, 0] = images[1, 1, 1] = 0.2
    bins, counts = data_bins(images, np.array([[2, 2], [2, 2]]), 0.04)
    assert bins.tolist() == [[-4, 15], [0, 0]] and counts.tolist() == [1, 7]
    assert counts_in(np.array([[0, 0], [3, 3], [-4, 15]]), bins, counts).tolist() == [7, 0, 1]


def _config(**kw):
    base = dict(data_dir="unused", loss="classification", backbone="compact", chroma_bins=((0, 0), (1, 0), (0, 2)))
    base.update(kw)
    return dataclasses_asdict(ColorizeConfig(**base))


def dataclasses_asdict(config):
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(config)))


def test_config_checks_and_architecture():
    with pytest.raises(ValueError, match="unknown loss"):
        validate(ColorizeConfig(data_dir="d", loss="l1"))
    with pytest.raises(ValueError, match="temperature"):
        validate(ColorizeConfig(data_dir="d", loss="classification", temperature=0))
    with pytest.raises(ValueError, match="low_saturation_weight"):
        validate(ColorizeConfig(data_dir="d", loss="classification", low_saturation_weight=1.0))
    assert architecture(_config())["chroma_bins"] == 3
    assert "chroma_bins" not in architecture({"backbone": "compact"})  # an old UV model's config.json


@pytest.fixture(scope="module")
def tiny():
    """A compact classification colouriser over 3 bins and 8 x 16x16 generated images."""
    keras.utils.set_random_seed(0)
    model = build_colorizer(None, backbone="compact", chroma_bins=3)
    rng = np.random.default_rng(0)
    # Red blobs on a dark-grey sky: the bins (0,0) and the nearest of (1,0), (0,2) to their chroma.
    rgb = np.full((8, 16, 16, 3), 0.1, np.float32)
    for i in range(8):
        r, c = rng.integers(2, 10, 2)
        rgb[i, r:r + 6, c:c + 6] = [0.5, 0.3, 0.3] if i % 2 else [0.3, 0.3, 0.5]
    yuv = np.asarray(rgb_to_yuv(rgb))
    return model, yuv[..., :1], yuv[..., 1:]


def test_a_few_steps_lower_the_classification_loss(tiny):
    model, y, uv = tiny
    head = ChromaHead.from_config(_config(), counts=np.array([80, 10, 10]))
    optimizer = keras.optimizers.Adam(3e-3)
    losses = []
    for _ in range(30):  # training mode throughout: 30 steps are too few for batch norm's moving statistics
        with tf.GradientTape() as tape:
            loss = head.loss(uv, model(y, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_export_reload_same_colours_luminance_kept_and_temperature(tiny, tmp_path):
    model, y, _ = tiny
    config = _config(temperature=0.38)
    out = export_colorizer(model, str(tmp_path / "cls"), config, steps_trained=30)
    meta = json.loads(open(os.path.join(out, "config.json")).read())
    assert meta["loss"] == "classification" and meta["temperature"] == 0.38 and len(meta["chroma_bins"]) == 3
    loaded = tf.saved_model.load(out)
    grey = tf.constant(y)
    served = loaded.signatures["serving_default"](grey=grey)["rgb"].numpy()
    head = chroma_head(config)
    keras_rgb = np.asarray(colorize_rgb(model, y, head))
    # Same graph on the same machine; the reloaded one may fuse ops differently: a few float32 roundings.
    assert np.abs(served - keras_rgb).max() < 1e-5
    # Luminance kept: compose_rgb moves each channel only along zero-luma chroma; each channel carries a few
    # float32 roundings (2^-24 ~ 6e-8 each, values <= ~2), and the luma weights sum to 1: well under 4e-6.
    np.testing.assert_allclose(np.asarray(rgb_to_luma(served)), y, atol=4e-6)
    warm = loaded.signatures[TEMPERATURE_SIGNATURE](grey=grey, temperature=tf.constant(0.38))["rgb"].numpy()
    assert np.abs(warm - served).max() < 1e-6  # the default temperature is the config's
    hot = loaded.signatures[TEMPERATURE_SIGNATURE](grey=grey, temperature=tf.constant(1.0))
    np.testing.assert_allclose(hot["rgb"].numpy(), np.asarray(colorize_rgb(model, y, head, 1.0)), atol=1e-5)

    from pipeline.models import ModelLoadError, load_model

    via_api = load_model(out, "colorize", colour_temperature=1.0)
    np.testing.assert_allclose(via_api.run(y), hot["rgb"].numpy(), atol=1e-6)
    uv_model = export_colorizer(build_colorizer(None, backbone="compact"), str(tmp_path / "uv"), {}, trained=False)
    with pytest.raises(ModelLoadError, match="classification colouriser"):
        load_model(uv_model, "colorize", colour_temperature=0.5)


def test_brightness_and_contrast_keep_the_hue():
    rng = np.random.default_rng(1)
    images = rng.uniform(0.2, 0.6, (3, 12, 12, 3)).astype(np.float32)
    sizes = np.full((3, 2), 12)
    params = random_crops(rng, sizes, brightness=0.3, contrast=0.3)
    assert params.shape == (3, 9) and np.all(np.abs(params[:, 7:] - 1) <= 0.3) and np.any(params[:, 7:] != 1)
    plain = np.asarray(crop_resize(images, params, 8))
    stretched = np.asarray(stretch_rgb(plain, params[:, 7], params[:, 8]))
    inside = (stretched > 0) & (stretched < 1)
    assert inside.all()  # values 0.2-0.6 stretched by at most 1.3 x 1.3 about their mean stay inside (0, 1)
    # Chroma (U, V) = linear in RGB with zero-luma rows: it scales by gain * contrast, so its direction (hue) stays.
    c0 = np.asarray(rgb_to_yuv(plain))[..., 1:] - 0.5
    c1 = np.asarray(rgb_to_yuv(stretched))[..., 1:] - 0.5
    scale = (params[:, 7] * params[:, 8]).reshape(3, 1, 1, 1)
    np.testing.assert_allclose(c1, c0 * scale, atol=1e-6)
    y, uv = make_examples(images, params, 8)
    np.testing.assert_allclose(np.asarray(uv) - 0.5, c1, atol=1e-6)
    # Evaluation rows leave the image exactly as crop_resize makes it.
    whole = whole_images(sizes)
    np.testing.assert_array_equal(np.asarray(make_examples(images, whole, 8)[1]),
                                  np.asarray(rgb_to_yuv(crop_resize(images, whole, 8)))[..., 1:])


def test_shipped_classification_colouriser_keeps_luminance_and_its_default_temperature():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints",
                        "colorize_classification")
    meta = json.load(open(os.path.join(path, "config.json")))
    assert meta["loss"] == "classification" and meta["trained"] and meta["temperature"] == 1.0
    m = tf.saved_model.load(path)
    grey = tf.constant(np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(1, 32, 32, 1))
    rgb = m.signatures["serving_default"](grey=grey)["rgb"].numpy()
    np.testing.assert_allclose(np.asarray(rgb_to_luma(rgb)), grey.numpy(), atol=4e-6)  # as derived above
    same = m.signatures[TEMPERATURE_SIGNATURE](grey=grey, temperature=tf.constant(1.0))["rgb"].numpy()
    assert np.abs(same - rgb).max() < 1e-6
