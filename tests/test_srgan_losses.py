"""SRGAN losses against values worked out by hand."""
import numpy as np

from srgan import losses


def test_content_loss_identical_is_zero_and_hand_value():
    hr = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    # A stub "feature extractor": 2x2 average pooling then x2 (a fixed linear map).
    def stub(x):
        x = np.asarray(x)
        return 2 * x.reshape(x.shape[0], x.shape[1] // 2, 2, x.shape[2] // 2, 2, 3).mean(axis=(2, 4))

    assert float(losses.perceptual_content_loss(stub, hr, hr)) == 0.0
    sr = hr + 0.1  # every pooled feature moves by 2 * 0.1 = 0.2 -> squared 0.04
    assert abs(float(losses.perceptual_content_loss(stub, hr, sr)) - 0.04) < 1e-6
    f1 = np.zeros((1, 2, 2, 1), np.float32)
    f2 = np.array([1.0, 2.0, 0.0, 1.0], np.float32).reshape(1, 2, 2, 1)
    assert abs(float(losses.content_loss(f1, f2)) - (1 + 4 + 0 + 1) / 4) < 1e-7  # normalised by map size


def test_adversarial_and_discriminator_losses():
    logits = np.array([[0.0], [2.0]], np.float32)
    # -log sigmoid(0) = log 2; -log sigmoid(2) = log(1 + e^-2)
    expected = (np.log(2.0) + np.log1p(np.exp(-2.0))) / 2
    assert abs(float(losses.adversarial_loss(logits)) - expected) < 1e-6
    real, fake = np.array([[3.0]], np.float32), np.array([[-1.0]], np.float32)
    assert abs(float(losses.discriminator_loss(real, fake)) - (np.log1p(np.exp(-3.0)) + np.log1p(np.exp(-1.0)))) < 1e-6
    assert np.isfinite(float(losses.adversarial_loss(np.array([[-200.0]], np.float32))))


def test_generator_loss_weights():
    hr = np.zeros((1, 4, 4, 3), np.float32)
    sr = np.full((1, 4, 4, 3), 0.5, np.float32)
    parts = losses.generator_loss(hr, sr, np.zeros((1, 1), np.float32), lambda x: x, adversarial_weight=1e-3,
                                  content_weight=1.0, pixel_weight=2.0)
    assert abs(float(parts["content"]) - 0.25) < 1e-7 and abs(float(parts["pixel"]) - 0.25) < 1e-7
    assert abs(float(parts["total"]) - (0.25 + 1e-3 * np.log(2.0) + 2 * 0.25)) < 1e-6
