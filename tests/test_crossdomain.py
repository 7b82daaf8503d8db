"""Cross-domain evaluation: its metrics worked out by hand, star photometry on synthetic stars,
and the whole run on a tiny fake packages root (generated data only)."""
import gzip
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from data import domains
from pipeline import crossdomain as xd
from pipeline import crossdomain_metrics as cm
from pipeline import photometry as ph
from pipeline.evaluation import make_lr, pil_upscale, psnr_255

L = 1.0 / 255.0  # one 8-bit level


def test_colourfulness_by_hand():
    # One red pixel, one black: rg = (255, 0), yb = (127.5, 0); std = mean = half of each
    # -> sqrt(127.5^2 + 63.75^2) = 63.75 sqrt(5) for both terms: C = 1.3 * 63.75 sqrt(5).
    img = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    assert abs(cm.colourfulness(img) - 1.3 * 63.75 * np.sqrt(5)) < 1e-9
    assert cm.colourfulness(np.full((3, 3, 3), 0.4)) == 0.0
    assert cm.is_grey(np.full((3, 3, 3), 0.4)) and not cm.is_grey(img)


def test_ring_psnr_sees_only_the_outer_ring():
    hr = np.full((20, 20, 3), 100 * L)
    sr = hr + 10 * L  # every pixel 10 levels off: MSE 100 in the ring
    sr[8:12, 8:12] = 200 * L  # the 4x4 inside the 8 px ring is far off, and must not count
    assert abs(cm.ring_psnr(hr, sr) - 10 * np.log10(255**2 / 100.0)) < 1e-9
    assert cm.ring_psnr(hr, hr) == float("inf")


def test_channel_bias_by_hand_and_border_shaved():
    hr = np.full((16, 16, 3), 100 * L)
    sr = hr + np.array([3, -2, 0]) * L
    sr[:4, :, 0] = 1.0  # in the 4 px border: shaved away
    np.testing.assert_allclose(cm.channel_bias(hr, sr, border=4), [3.0, -2.0, 0.0], atol=1e-9)


def test_hue_error_circular_and_only_on_saturated_truth():
    red, green, magenta, grey = [1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 1.0], [0.5, 0.5, 0.5]
    truth = np.array([[red, magenta, grey]])
    out = np.array([[green, red, green]])
    # red->green 120 deg; magenta (300) -> red (0) is 60 deg round the circle, not 300;
    # the grey truth pixel (saturation 0) is left out.
    assert abs(cm.hue_error(truth, out) - 90.0) < 1e-9
    assert np.isnan(cm.hue_error(np.array([[grey]]), np.array([[red]])))


def test_grid_crops_fixed_and_non_overlapping():
    crops = domains.grid_crops(np.zeros((872, 1000, 3)), 256)
    assert len(crops) == 9 and all(c.shape == (256, 256, 3) for _, c in crops)
    boxes = [b for b, _ in crops]
    assert boxes[0] == (52, 116) and boxes[-1] == (52 + 512, 116 + 512)
    assert domains.grid_crops(np.zeros((101, 99, 3)), 256)[0][1].shape == (100, 96, 3)


def _star_field(shape=(64, 64), stars=(), sigma=1.2, background=10.0, noise=1.0, seed=0):
    """Gaussian sources (row, col, amplitude[, sigma]) on a flat background with Gaussian noise;
    also the sources' part alone."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    part = np.zeros(shape)
    for y, x, amp, *own in stars:
        s = own[0] if own else sigma
        part += amp * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * s**2))
    rng = np.random.default_rng(seed)
    return background + part + rng.normal(0, noise, shape), part


def test_raw_lr_kinds_average_linear_light_or_display_values():
    """`block` and `bicubic-linear` average the frame's linear data (both kernels sum to 1, so a flat frame's
    level is kept and a sharp star's light spreads but is not lost); `bicubic` averages display values, which
    for a star through the concave asinh loses light."""
    from data.fits_io import Stretch

    stretch = Stretch(name="asinh", interval="minmax", vmin=0.0, vmax=1.0, a=0.1)
    flat = np.full((32, 32), 0.2, np.float32)
    for kind in xd.LR_KINDS:
        np.testing.assert_allclose(xd.raw_lr(flat, stretch, kind)[..., 0], stretch.apply(np.full((8, 8), 0.2)), atol=1e-5)
    # An interval from below 0, so the bicubic kernel's negative lobes are not clipped away.
    stretch = Stretch(name="asinh", interval="minmax", vmin=-0.5, vmax=1.0, a=0.1)
    star = np.zeros((32, 32), np.float32)
    star[14:18, 14:18] = 0.5  # one LR block's worth, in the middle: away from the resize's edges
    flux = {k: stretch.invert(xd.raw_lr(star, stretch, k)[..., 0]).sum() * 16 for k in xd.LR_KINDS}
    # float32 stretch round trips on 64 values of up to 1: 1e-4 relative.
    assert flux["block"] == pytest.approx(star.sum(), rel=1e-4)
    assert flux["bicubic-linear"] == pytest.approx(star.sum(), rel=1e-4)
    assert flux["bicubic"] < 0.8 * star.sum()


def test_photometry_finds_isolated_unsaturated_stars_and_recovers_flux():
    stars = [(20, 20, 500.0), (20, 44, 800.0), (44, 30, 300.0),
             (44, 40, 200.0),  # 10 px from a brighter star (< 10.5): not isolated
             (5, 30, 900.0),  # within r_outer (12 px) of the border
             (48, 50, 5000.0)]  # peak above the saturation level
    frame, part = _star_field(stars=stars)
    found = ph.find_stars(frame, k=20, isolation=10.5, saturation=2000.0)
    assert [tuple(p) for p in found] == [(20, 20), (20, 44), (44, 30)]
    # Noise-free: the flux is the star's own sum within r <= 4 px; the annulus median is the
    # background plus the star's tail at r >= 8 px (<= amp exp(-64 / 2.88) < 1e-9 amp per
    # pixel), times the 49 aperture pixels: far below 0.1. (The 200 star lies in (44, 30)'s
    # 8-12 px annulus but covers a minority of its ~250 pixels, so the median stays on clean ones.)
    clean = 10.0 + part
    expected = [sum(part[y + dy, x + dx] for dy in range(-4, 5) for dx in range(-4, 5) if dy * dy + dx * dx <= 16)
                for y, x in found]
    np.testing.assert_allclose(ph.aperture_flux(clean, found), expected, atol=0.1)
    np.testing.assert_array_equal(ph.flux_errors(frame, frame, found), 0.0)
    # Scaling the whole frame (background too) scales every flux: 10 % error, to float rounding.
    np.testing.assert_allclose(ph.flux_errors(frame, 1.1 * frame, found), 0.1, rtol=1e-9)


def test_model_upscalers_use_the_consistency_hook_when_it_exists(monkeypatch):
    run = lambda lr: np.repeat(np.repeat(lr, 4, 0), 4, 1)  # noqa: E731
    monkeypatch.setitem(sys.modules, "pipeline.consistency", None)  # absent: import fails
    assert list(xd.model_upscalers("m", run)) == ["m"]
    calls = []
    fake = types.ModuleType("pipeline.consistency")
    fake.consistent_upscale = lambda fn, lr, operator="bicubic", stretch=None: calls.append((operator, stretch)) or fn(lr)
    monkeypatch.setitem(sys.modules, "pipeline.consistency", fake)
    ups = xd.model_upscalers("m", run)
    assert list(ups) == ["m", "m + consistency"]
    out = ups["m + consistency"](np.zeros((2, 2, 3)), stretch="S", operator="block")
    assert out.shape == (8, 8, 3) and calls == [("block", "S")]
    assert ups["m"](np.zeros((2, 2, 3)), stretch="S", operator="block").shape == (8, 8, 3)


TEXTURES = """{"subTiles": [
  {"imageCredits": {"short": "NASA, ESA and the Hubble Heritage Team"}, "imageUrl": "hub.png",},
  {"imageCredits": {"short": "ESO"}, "imageUrl": "eso.png"},
]}"""


def _fake_packages(root):
    """Two small PNGs (one Hubble-credited), a 4-chip WFPC2-like cube and an int32 gzipped frame."""
    neb = root / domains.STELLARIUM_DIR
    neb.mkdir(parents=True)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:66, :70]
    hub = np.stack([120 + 100 * np.sin(xx / 5.0), 90 + 60 * np.cos(yy / 4.0), 60 + 0 * xx], -1)
    Image.fromarray(hub.astype(np.uint8)).save(neb / "hub.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(neb / "eso.png")
    (neb / "textures.json").write_text(TEXTURES)
    from astropy.io import fits

    # Each frame has a bright extended blob far from the stars: it sets the stretch's 99.5 %
    # top (vmax) above the stars' peaks, so they are not clipped (the blob itself is).
    blob = (52, 12, 3000.0, 3.0)
    chips = np.stack([_star_field(stars=[(24, 24, 400.0 + 100 * i), (40, 44, 250.0), blob], seed=i)[0]
                      for i in range(4)]).astype(np.float32)
    wfpc2 = root / domains.HELD_OUT_FITS[0][0]
    wfpc2.parent.mkdir(parents=True)
    fits.PrimaryHDU(chips).writeto(wfpc2)
    m51 = root / domains.HELD_OUT_FITS[1][0]
    m51.parent.mkdir(parents=True)
    frame = _star_field(shape=(48, 48), stars=[(24, 24, 600.0), (40, 8, 3000.0, 3.0)], seed=9)[0]
    buf = fits.PrimaryHDU((frame * 10).astype(np.int32))
    with gzip.open(m51, "wb") as f:
        buf.writeto(f)


def test_whole_run_on_a_fake_packages_root(tmp_path):
    _fake_packages(tmp_path / "pkg")
    config = xd.CrossDomainConfig(packages_root=str(tmp_path / "pkg"), output=str(tmp_path / "out"),
                                  domains=("stellarium-hubble", "raw-hst"))
    tint = lambda grey: np.concatenate([grey, grey, 0.9 * grey], -1)  # noqa: E731
    result = xd.run_cross_domain(config, xd.baseline_upscalers(), tint, log=lambda *_: None)
    for name in ("crossdomain.md", "crossdomain_sr.csv", "crossdomain_colour.csv", "colour_crossdomain.png"):
        assert os.path.getsize(tmp_path / "out" / name) > 0
    sr = {(r["domain"], r["lr"], r["method"]): r for r in result["sr"]}
    assert set(sr) == {("stellarium-hubble", "bicubic", m) for m in ("bicubic (PIL)", "Lanczos (PIL)")} | {
        ("raw-hst", k, m) for k in ("bicubic", "bicubic-linear", "block") for m in ("bicubic (PIL)", "Lanczos (PIL)")}
    # Only the Hubble-credited PNG is scored, mod-cropped to 4: its bicubic row is that image's own PSNR.
    row = sr[("stellarium-hubble", "bicubic", "bicubic (PIL)")]
    hr = np.asarray(Image.open(tmp_path / "pkg" / domains.STELLARIUM_DIR / "hub.png"), np.float32)[:64, :68] / 255
    assert row["n"] == 1 and abs(row["psnr_rgb"] - psnr_255(hr, pil_upscale(make_lr(hr, 4), 4, "bicubic"), 4)) < 1e-9
    raw = sr[("raw-hst", "block", "bicubic (PIL)")]
    assert raw["n"] == 5 and raw["stars"] == 9 and 0 < raw["flux_err_median"] < 1  # 2 stars a chip, 1 in m51
    colour = {r["method"]: r for r in result["colour"]}
    assert colour["grey baseline (no chroma)"]["mse_vs_grey"] == 1.0 and colour["colouriser"]["n"] == 1
    md = (tmp_path / "out" / "crossdomain.md").read_text()
    assert "| raw-hst | block | bicubic (PIL) | 5 |" in md and "## Colourisation" in md
    assert "eso" not in json.dumps(result["colour"])


def test_missing_package_is_one_clear_error(tmp_path):
    _fake_packages(tmp_path / "pkg")
    os.remove(tmp_path / "pkg" / domains.HELD_OUT_FITS[1][0])
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.evaluate", "--cross_domain", "--packages_root", str(tmp_path / "pkg"),
         "--output", str(tmp_path / "out"), "--srgan_model=", "--colorize_model="],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 2
    assert "m51.fits.gz: missing; unpack Debian package libastro-fits-cfitsio-perl" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_raw_loader_gives_each_chip_in_display_order_and_central_crop(tmp_path):
    from astropy.io import fits

    _fake_packages(tmp_path / "pkg")
    frames = domains.load_raw_hst(str(tmp_path / "pkg"), crop=32)
    assert [f.name for f in frames] == [f"u40x010hm_c0f_chip{i}" for i in range(4)] + ["m51"]
    cube = fits.getdata(tmp_path / "pkg" / domains.HELD_OUT_FITS[0][0]).astype(np.float32)
    np.testing.assert_array_equal(frames[2].linear, cube[2][::-1][16:48, 16:48])
    assert frames[4].linear.shape == (32, 32) and frames[4].image is None
    with pytest.raises(domains.DomainDataError, match="stellarium-data"):
        domains.load_stellarium_hubble(str(tmp_path / "nothing"))


def test_hdf_loader_fixed_crops():
    pytest.importorskip("skimage")
    crops = domains.load_hdf(384)
    assert [c.name for c in crops] == ["hdf_y52_x116", "hdf_y52_x500", "hdf_y436_x116", "hdf_y436_x500"]
    assert all(c.image.shape == (384, 384, 3) and c.image.dtype == np.float32 for c in crops)
    assert 0.0 <= min(c.image.min() for c in crops) and max(c.image.max() for c in crops) <= 1.0


def test_figure_samples_evenly_spaced_and_every_domain_shown():
    from pipeline.crossdomain_report import pick_samples

    samples = {"stellarium-hubble": [(f"s{i}",) for i in range(48)], "hdf": [(f"h{i}",) for i in range(9)]}
    picked = pick_samples(samples, 8)
    assert [(d, s[0]) for d, s in picked] == [("stellarium-hubble", f"s{i}") for i in (0, 9, 19, 28, 38, 47)] + [
        ("hdf", "h0"), ("hdf", "h8")]


def test_entry_library_loads_an_exported_model_and_adds_consistency_rows(tmp_path, tiny_exports, monkeypatch):
    from pipeline.evaluation import evaluate_cross_domain

    operators = []
    fake = types.ModuleType("pipeline.consistency")
    fake.consistent_upscale = lambda fn, lr, operator="bicubic", stretch=None: operators.append(operator) or fn(lr)
    monkeypatch.setitem(sys.modules, "pipeline.consistency", fake)
    _fake_packages(tmp_path / "pkg")
    config = xd.CrossDomainConfig(packages_root=str(tmp_path / "pkg"), output=str(tmp_path / "out"),
                                  domains=("raw-hst",), max_images=1)
    result = evaluate_cross_domain(config, [tiny_exports["srgan"]], "", log=lambda *_: None)
    methods = sorted({(r["lr"], r["method"]) for r in result["sr"]})
    assert methods == sorted((k, m) for k in ("bicubic", "bicubic-linear", "block") for m in (
        "bicubic (PIL)", "Lanczos (PIL)", "SR model srgan", "SR model srgan + consistency"))
    assert operators == ["block"] * 3  # a raw frame: the pipeline's auto operator, whatever made its LR
    assert "[UNTRAINED: random weights]" in (tmp_path / "out" / "crossdomain.md").read_text()
