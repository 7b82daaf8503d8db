"""The SR design that cannot drift: bicubic + residual, reflect borders, consistency with the input."""
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from pipeline.consistency import back_project, consistency_psnr, degrade, operator_for
from srgan.residual import bicubic_phases, build_residual_generator

# float32 sums of at most 25 products of values in [0, 1] with weights summing to 1 (then one
# division): each step rounds by <= 2^-24 relative, so 1e-5 bounds the error of any summation order.
F32_CONV = 1e-5


def _pil_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    h, w = lr.shape[:2]
    return np.stack([np.asarray(Image.fromarray(lr[..., c]).resize((w * scale, h * scale), Image.BICUBIC))
                     for c in range(lr.shape[-1])], axis=-1)


def test_bicubic_phases_by_hand():
    w = bicubic_phases(4)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    # Phase 0 of x4 sits 3/8 px left of an LR centre: Keys(a=-0.5) weights at offsets 1.625, 0.625, 0.375, 1.375.
    a = -0.5
    near = lambda t: (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = lambda t: a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    np.testing.assert_allclose(w[0], [far(1.625), near(0.625), near(0.375), far(1.375), 0.0], atol=1e-12)
    np.testing.assert_allclose(w[3], w[0][::-1], atol=1e-12)  # mirror symmetry of the phases


@pytest.mark.parametrize("shape", [(1, 20, 24, 3), (2, 7, 5, 3)])
def test_untrained_network_is_bicubic_edges_included(shape):
    g = build_residual_generator(num_blocks=2, filters=8, scale=4)
    lr = np.random.default_rng(0).random(shape, dtype=np.float32)
    out = np.asarray(g(lr, training=False))
    for i in range(shape[0]):
        np.testing.assert_allclose(out[i], _pil_bicubic(lr[i], 4), atol=F32_CONV)


def test_no_border_frame_on_a_flat_image():
    """With every weight random, a flat input still gives a flat output: the border is like the interior."""
    import keras

    g = build_residual_generator(num_blocks=2, filters=8, scale=4)
    rng = np.random.default_rng(1)
    for layer in g.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in layer.get_weights()])
    out = np.asarray(g(np.full((1, 16, 12, 3), 0.4, np.float32), training=False))[0]
    # Random sub-pixel weights give each of the 4x4 output phases its own value, but every 4x4
    # block (border blocks included) must be the same block.
    blocks = out.reshape(16, 4, 12, 4, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 4, 4, 3)
    assert np.abs(blocks - blocks[0]).max() < 1e-5 and np.abs(out - 0.4).max() > 1e-3  # and the network changed it
    # A zero-padded convolution of the same weights would not be flat at the border: the padding matters.
    x = keras.ops.convert_to_tensor(np.full((1, 16, 12, 8), 0.4, np.float32))
    zero_padded = np.asarray(keras.ops.conv(x, rng.normal(0, 0.2, (3, 3, 8, 8)).astype(np.float32), padding="same"))
    assert np.ptp(zero_padded[0, ..., 0]) > 1e-3


def test_block_mean_by_hand():
    from common.back_projection import block_mean

    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(np.asarray(block_mean(x, 2))[0, ..., 0], [[2.5, 4.5], [10.5, 12.5]])
    two = np.concatenate([x, 2 * x], -1)
    np.testing.assert_array_equal(np.asarray(block_mean(two, 4))[0, 0, 0], [7.5, 15.0])
    with pytest.raises(ValueError, match="multiple of 4"):
        block_mean(np.zeros((1, 6, 8, 1), np.float32), 4)


def test_block_consistency_is_exact():
    rng = np.random.default_rng(2)
    lr = rng.random((10, 12, 3), dtype=np.float32) * 100.0  # linear units, any range
    sr = rng.random((40, 48, 3), dtype=np.float32) * 100.0
    out = back_project(sr, lr, 4, "block")
    # Block means of 16 float32 values of size <= ~100: rounding well under 1e-4 (1e-6 relative).
    np.testing.assert_allclose(degrade(out, 4, "block"), lr, atol=1e-4)
    assert np.abs(degrade(sr, 4, "block") - lr).max() > 1.0  # it was not consistent before


def test_bicubic_consistency_reaches_60_db():
    hr = np.asarray(Image.fromarray((np.random.default_rng(3).random((64, 64, 3)) * 255).astype(np.uint8))
                    .filter(__import__("PIL.ImageFilter", fromlist=["x"]).GaussianBlur(1.5)), np.float32) / 255
    lr = degrade(hr, 4, "bicubic")
    guess = np.clip(np.repeat(np.repeat(lr, 4, 0), 4, 1) + 0.02, 0, 1)  # nearest-neighbour, biased
    assert consistency_psnr(guess, lr, 4, "bicubic") < 40
    fixed = np.clip(back_project(guess, lr, 4, "bicubic"), 0, 1)
    assert consistency_psnr(fixed, lr, 4, "bicubic") >= 60


@pytest.mark.parametrize("operator", ["bicubic", "block"])
def test_back_projection_on_the_lr_grid_equals_the_steps_at_sr_resolution(operator):
    """`back_project` runs the residual's recursion on the LR grid; it must give the literal steps'
    result `sr <- sr + up(lr - down(sr))` (then block's exact nearest-neighbour step)."""
    from pipeline.consistency import ITERATIONS, _bicubic_up

    rng = np.random.default_rng(5)
    lr = rng.random((9, 13, 3), dtype=np.float32)
    sr = rng.random((36, 52, 3), dtype=np.float32)
    literal = sr.copy()
    for _ in range(ITERATIONS):
        literal += _bicubic_up(lr - degrade(literal, 4, operator), 4)
    if operator == "block":
        literal += np.repeat(np.repeat(lr - degrade(literal, 4, operator), 4, 0), 4, 1)
    # Same linear maps in another order: float32 rounding (6e-8 relative) of values <= ~2, summed over
    # 10 steps of ~25-tap dot products, stays under 10 * 25 * 6e-8 * 2 = 3e-5.
    np.testing.assert_allclose(back_project(sr, lr, 4, operator), literal, atol=3e-5)
    assert np.abs(literal - sr).max() > 0.1  # the correction is not trivially zero


def test_operator_for_modes():
    assert operator_for("auto", is_raw_frame=True) == "block"
    assert operator_for("auto", is_raw_frame=False) == "bicubic"
    assert operator_for("none", is_raw_frame=True) is None
    assert operator_for("bicubic", is_raw_frame=True) == "bicubic"
    with pytest.raises(ValueError, match="unknown consistency mode"):
        operator_for("sometimes", False)


def test_full_mode_fits_output_conserves_flux(tmp_path, m51_fits, tiny_exports):
    """Linear FITS output of full mode: every 4x4 block mean equals the raw input pixel (stars included)."""
    from pipeline.full import FullOptions
    from pipeline.runner import RunConfig, run

    raw = fits.getdata(m51_fits).astype(np.float64)[:96, :80]
    src = tmp_path / "crop.fits"
    fits.PrimaryHDU(raw.astype(np.float32)).writeto(src)
    options = FullOptions(size=64, tile=48, tile_overlap=16, output_format="fits", linear_output=True, report=True)
    result = run(RunConfig(input=str(src), output=str(tmp_path / "out"), colorize_model=tiny_exports["colorize"],
                           srgan_model=tiny_exports["srgan"], mode="full", full=options, progress=False))
    assert result.written, result.failed
    data = fits.getdata(result.written[0]).astype(np.float64)
    assert data.shape == (3, 384, 320)
    lum = 0.299 * data[0] + 0.587 * data[1] + 0.114 * data[2]
    means = lum.reshape(96, 4, 80, 4).mean(axis=(1, 3))
    # float32 storage and the un-stretch of display values: 1e-5 of the value range.
    tol = 1e-5 * (raw.max() - raw.min())
    np.testing.assert_allclose(means, raw, atol=tol)
    report = (tmp_path / "out" / "fidelity.csv").read_text().splitlines()
    assert float(report[1].split(",")[-1]) >= 60  # the report's consistency for the exact operator


def test_training_block_lr_in_linear_units_is_what_full_mode_sees(m51_fits):
    """`degrade(..., block_linear=True)` on a raw frame's display image gives the stretch of its linear block means:
    the LR a FITS frame with bigger pixels reaches the network with (`pipeline.crossdomain.raw_lr`, `block`)."""
    from data.fits_io import fit_stretch
    from data.sr_examples import degrade as train_degrade
    from pipeline.crossdomain import raw_lr

    raw = np.asarray(fits.getdata(m51_fits), np.float64)[160:224, 160:224]
    # minmax: no pixel clipped, so undoing the stretch gives the frame back up to an affine map, which
    # block means commute with.
    stretch = fit_stretch("m51", raw, interval="minmax")
    display = np.repeat(stretch.apply(raw)[None, ..., None], 3, -1)
    seen = raw_lr(raw, stretch, "block")
    lr = np.asarray(train_degrade(display, np.ones(1), 4, block_linear=True))[0]
    # The trainer rounds to 8-bit levels (half a level); float32 sinh/asinh add < 1e-5.
    np.testing.assert_allclose(lr, seen, atol=0.5 / 255 + 1e-5)
    display_means = np.asarray(train_degrade(display, np.ones(1), 4))[0]
    assert np.abs(display_means - seen).max() > 2 / 255  # means of display values are another LR


def test_training_consistency_layer_is_the_pipelines_step(real_images):
    """`data.sr_examples.consistent` (the trainer's consistency layer) gives what the pipeline's consistency step
    gives: exact linear-unit block means on a block crop, the bicubic back-projection on a picture crop."""
    from data.sr_examples import asinh_linear, consistent, degrade as train_degrade

    from data.io import read_image

    hr = np.stack([read_image(p)[:64, :64] for p in real_images[:2]]).astype(np.float32)
    block = np.array([1.0, 0.0], np.float32)
    lr = np.asarray(train_degrade(hr, block, 4, block_linear=True))
    # A guess that contradicts both inputs: the HR darkened and shifted by a pixel.
    guess = np.clip(0.8 * np.roll(hr, 1, axis=2), 0, 1)
    out = np.asarray(consistent(guess, lr, block, 4, block_linear=True))
    assert out.shape == hr.shape and 0 <= out.min() and out.max() <= 1
    lin_means = np.asarray(asinh_linear(out[0])).reshape(16, 4, 16, 4, 3).mean(axis=(1, 3))
    # float32 sinh/asinh round trip: a few 1e-7 relative on linear values <= 1.
    np.testing.assert_allclose(lin_means, np.asarray(asinh_linear(lr[0])), atol=2e-6)
    picture = np.clip(back_project(guess[1], lr[1], 4, "bicubic"), 0, 1)
    np.testing.assert_allclose(out[1], picture, atol=1e-6)
    assert consistency_psnr(out[1], lr[1], 4, "bicubic") >= 60


def test_training_consistency_layer_is_the_same_under_jax(tmp_path):
    """The layer a lent GPU trains with (JAX) is the step the pipeline runs (TensorFlow): the two backends'
    resizes and matrix products agree to float32 rounding of a few hundred operations on values <= 1."""
    from backend_check import consistency_check, run_under_jax

    tf_out = consistency_check("", str(tmp_path))
    jax_out = run_under_jax("consistency", "", str(tmp_path))
    assert (tf_out["backend"], jax_out["backend"]) == ("tensorflow", "jax")
    np.testing.assert_allclose(jax_out["out"], tf_out["out"], atol=1e-5)
