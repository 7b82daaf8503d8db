"""The colouriser loss (paper sec. 4.1) against values worked out by hand."""
import numpy as np
import pytest
import tensorflow as tf

from colorize.losses import GAUSS_3X3, GAUSS_5X5, blur_loss_terms, colorize_loss, gaussian_blur, uv_mse


def test_gaussian_kernels_are_guos():
    # Guo's config.py: [[1,2,1],[2,4,2],[1,2,1]]/16 and the 5x5 with 41 in the middle, /273.
    np.testing.assert_allclose(GAUSS_3X3 * 16, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    assert GAUSS_5X5[2, 2] * 273 == pytest.approx(41)
    np.testing.assert_allclose(GAUSS_5X5[2] * 273, [7, 26, 41, 26, 7])
    for k in (GAUSS_3X3, GAUSS_5X5):
        assert k.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(k, k.T)


def _one_pixel_pair(du=0.2, dv=0.0):
    """3x3 chroma images equal everywhere except the centre pixel."""
    true = np.full((1, 3, 3, 2), 0.5, np.float32)
    pred = true.copy()
    pred[0, 1, 1, 0] += du
    pred[0, 1, 1, 1] += dv
    return true, pred


def test_loss_matches_hand_computation():
    true, pred = _one_pixel_pair(du=0.2)
    d2 = 0.2**2
    n = 1 * 3 * 3 * 2  # means over batch, pixels and both channels
    # The difference is a single spike; blurring it spreads it as the kernel,
    # and the 3x3 image keeps all of a 3x3 kernel and the centre 3x3 of a 5x5.
    plain = d2 / n
    blur3 = d2 * (1 + 4 + 1 + 4 + 16 + 4 + 1 + 4 + 1) / 16**2 / n
    blur5 = d2 * (4 * 16**2 + 4 * 26**2 + 41**2) / 273**2 / n
    terms = [float(t) for t in blur_loss_terms(true, pred)]
    np.testing.assert_allclose(terms, [plain, blur3, blur5], rtol=1e-5)
    assert float(colorize_loss(true, pred)) == pytest.approx((plain + blur3 + blur5) / 3, rel=1e-5)
    assert float(uv_mse(true, pred)) == pytest.approx(plain, rel=1e-6)


def test_blur_is_per_channel():
    # Guo's (k,k,2,2) kernel blurred U+V into both channels; ours keeps them apart.
    x = np.zeros((1, 5, 5, 2), np.float32)
    x[0, 2, 2, 0] = 1.0
    out = np.asarray(gaussian_blur(tf.constant(x), GAUSS_3X3))
    assert np.all(out[..., 1] == 0.0)
    np.testing.assert_allclose(out[0, 1:4, 1:4, 0], GAUSS_3X3, rtol=1e-6)


def test_loss_is_a_mean_not_a_sum():
    true, pred = _one_pixel_pair(du=0.3, dv=-0.1)
    one = float(colorize_loss(true, pred))
    four = float(colorize_loss(np.repeat(true, 4, 0), np.repeat(pred, 4, 0)))
    assert four == pytest.approx(one, rel=1e-6)
    assert float(colorize_loss(true, true)) == 0.0


def test_low_saturation_weight_by_hand():
    # Target strongly coloured at the centre (chroma (0.3, 0.4): magnitude 0.5), prediction grey.
    pred = np.full((1, 3, 3, 2), 0.5, np.float32)
    true = pred.copy()
    true[0, 1, 1] = (0.8, 0.9)
    lam = 2.0
    w_centre = 1 + lam * 0.5
    e2 = 0.3**2 + 0.4**2
    n = 18
    plain = w_centre * e2 / n
    # Blurred errors reach every pixel; only the centre one carries the weight.
    blur3 = e2 * (36 / 256 + (w_centre - 1) * (4 / 16) ** 2) / n
    blur5 = e2 * ((4 * 16**2 + 4 * 26**2 + 41**2) / 273**2 + (w_centre - 1) * (41 / 273) ** 2) / n
    terms = [float(t) for t in blur_loss_terms(true, pred, lam)]
    np.testing.assert_allclose(terms, [plain, blur3, blur5], rtol=1e-5)
    # A prediction more saturated than the target is not up-weighted.
    assert float(colorize_loss(pred, true, lam)) == pytest.approx(float(colorize_loss(pred, true)), rel=1e-6)
    assert float(colorize_loss(true, pred, 0.0)) == pytest.approx(float(colorize_loss(true, pred)))
    with pytest.raises(ValueError):
        colorize_loss(true, pred, -1.0)


def test_saturation_weight_is_constant_for_the_gradient():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.2, 0.8, (2, 6, 6, 2)).astype(np.float32)
    pred = tf.Variable(rng.uniform(0.4, 0.6, (2, 6, 6, 2)).astype(np.float32))
    lam = 3.0
    c_t = np.linalg.norm(true - 0.5, axis=-1, keepdims=True)
    c_p = np.linalg.norm(pred.numpy() - 0.5, axis=-1, keepdims=True)
    w = tf.constant(1 + lam * np.maximum(c_t - c_p, 0), tf.float32)

    def manual(p):
        def term(a, b):
            return tf.reduce_mean(w * tf.square(a - b))

        return (term(true, p) + term(gaussian_blur(true, GAUSS_3X3), gaussian_blur(p, GAUSS_3X3))
                + term(gaussian_blur(true, GAUSS_5X5), gaussian_blur(p, GAUSS_5X5))) / 3

    with tf.GradientTape(persistent=True) as tape:
        ours = colorize_loss(true, pred, lam)
        ref = manual(pred)
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)
    np.testing.assert_allclose(tape.gradient(ours, pred), tape.gradient(ref, pred), rtol=1e-4, atol=1e-9)
