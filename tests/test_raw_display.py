"""How a raw frame's flux-consistent SR is displayed: the expected stretch of the sky with its pixel noise."""
import numpy as np
import pytest
from astropy.io import fits

from data.fits_io import Stretch
from pipeline.consistency import expected_display, hr_noise, noise_sigma

ASINH = Stretch(name="asinh", interval="minmax", vmin=0.0, vmax=1.0, a=0.1)


def _block_mean(x: np.ndarray, s: int = 4) -> np.ndarray:
    return x.reshape(x.shape[0] // s, s, x.shape[1] // s, s).mean(axis=(1, 3))


def test_noise_sigma_of_white_noise_beside_stars_and_a_gradient():
    rng = np.random.default_rng(0)
    sigma = 0.02
    y, x = np.mgrid[:256, :256]
    sky = 0.1 + 0.2 * x / 256 + sigma * rng.standard_normal((256, 256))
    for cy, cx in rng.integers(10, 246, (20, 2)):
        sky += 0.8 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 4.0)
    # The MAD of ~65000 differences has a relative standard error of about 0.5 %; stars and the gradient
    # move its median by less than that: 3 % is several standard errors.
    assert noise_sigma(sky) == pytest.approx(sigma, rel=0.03)
    # A 4x4 block mean has a quarter of the noise; hr_noise gives the fine pixels' back (16 times fewer
    # differences: about 2 % standard error).
    assert hr_noise(_block_mean(sky), 4, "block") == pytest.approx(sigma, rel=0.08)
    assert hr_noise(_block_mean(sky), 4, "bicubic") == pytest.approx(sigma / 4, rel=0.08)
    with_nan = sky.copy()
    with_nan[:10] = np.nan
    assert noise_sigma(with_nan) == pytest.approx(sigma, rel=0.03)
    assert noise_sigma(np.full((4, 4), np.nan)) == 0.0


def test_expected_display_without_noise_is_the_stretch():
    linear = np.linspace(-0.1, 1.2, 64, dtype=np.float32).reshape(8, 8)
    np.testing.assert_array_equal(expected_display(linear, ASINH, 0.0), ASINH.apply(linear))


def test_expected_display_of_a_linear_stretch_inside_its_interval_is_the_value():
    """No curvature and no clipping: the expectation of x + n is x (the quadrature's weights sum to 1, its nodes
    to 0), to float32 rounding."""
    linear = Stretch(name="linear", interval="minmax", vmin=0.0, vmax=1.0, a=0.1)
    x = np.linspace(0.3, 0.7, 16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(expected_display(x, linear, 0.02), x, atol=1e-6)


def test_noise_aware_display_of_an_exact_smooth_estimate_is_unbiased_on_a_noisy_sky():
    """Sky 0.1 (on the asinh's concave part) with white noise 0.03; the estimate is the exact flux-consistent
    smooth one (each block's mean, repeated). Plain stretch: brighter than the truth (Jensen). Noise-aware:
    within 10 % of that gap (the block means' own noise adds 1/16 of the variance: about 6 % of the gap)."""
    rng = np.random.default_rng(1)
    truth = 0.1 + 0.03 * rng.standard_normal((512, 512))
    lr = _block_mean(truth)
    estimate = np.repeat(np.repeat(lr, 4, 0), 4, 1).astype(np.float32)
    shown = ASINH.apply(truth).mean()
    plain = ASINH.apply(estimate).mean() - shown
    aware = expected_display(estimate, ASINH, hr_noise(lr, 4, "block")).mean() - shown
    assert plain > 1.0 / 255  # more than an 8-bit level: the bias the noise-aware display removes
    assert abs(aware) < 0.1 * plain


def test_full_mode_display_is_the_expected_stretch_of_its_flux_consistent_output(tmp_path, m51_fits, tiny_exports):
    """Full mode on a FITS frame: the display output is `expected_display` of the linear output with the whole
    frame's noise (`--display_noise`), or its plain stretch (the default)."""
    from data.io import read_fits
    from pipeline.full import FullOptions
    from pipeline.runner import RunConfig, run

    raw = fits.getdata(m51_fits).astype(np.float32)[:96, :80]
    src = tmp_path / "crop.fits"
    fits.PrimaryHDU(raw).writeto(src)
    outputs = {}
    for name, kw in {"linear": dict(linear_output=True), "aware": dict(display_noise=True), "plain": {}}.items():
        options = FullOptions(size=64, tile=48, tile_overlap=16, output_format="fits", **kw)
        result = run(RunConfig(input=str(src), output=str(tmp_path / name), colorize_model=tiny_exports["colorize"],
                               srgan_model=tiny_exports["srgan"], mode="full", full=options, progress=False))
        assert result.written, result.failed
        outputs[name] = np.moveaxis(fits.getdata(result.written[0]).astype(np.float32), 0, -1)
    f = read_fits(str(src))
    linear = outputs["linear"]
    # float32 storage and stretch arithmetic on values in [0, 1]: 1e-5.
    np.testing.assert_allclose(outputs["plain"], f.stretch.apply(linear.reshape(384, -1)).reshape(linear.shape),
                               atol=1e-5)
    noise = hr_noise(f.raw, 4, "block")
    assert noise > 0
    np.testing.assert_allclose(outputs["aware"], expected_display(linear, f.stretch, noise), atol=1e-5)
    assert outputs["aware"].mean() < outputs["plain"].mean()


def test_noise_sigma_of_a_large_frame_reads_a_row_sample(monkeypatch):
    """Over `NOISE_SAMPLE` pixels only evenly spaced rows are read (bounded memory on a whole frame); the
    estimate stays within a few standard errors (about 10000 differences here: 1.2 %)."""
    import pipeline.consistency as pc

    monkeypatch.setattr(pc, "NOISE_SAMPLE", 10_000)
    sky = 0.1 + 0.02 * np.random.default_rng(2).standard_normal((256, 256))
    assert pc.noise_sigma(sky) == pytest.approx(0.02, rel=0.06)
    sky[1::6] = np.nan  # rows the sample does not read (every 6th from 0) cannot move it
    assert pc.noise_sigma(sky) == pytest.approx(0.02, rel=0.06)
