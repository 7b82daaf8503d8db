"""True colour from filters (`pipeline.compose`): generated frames of one synthetic field.

The sky is an analytic colour scene (stars and gradients, different in each
channel) defined in sky coordinates, so every frame samples it exactly at its
own pixel centres through its own WCS (shifted, rotated, one with SIP
distortion): nothing is interpolated to make the frames, and composing them
back onto the reference grid must give the scene on that grid.
"""
import os
import subprocess
import sys

import numpy as np
import png
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from data.io import ImageReadError
from pipeline.compose_job import ComposeConfig, compose, output_paths
from pipeline.compose_models import SR_ON, SROnUpscaler, colouriser_green
from pipeline.composite import ComposeError, CompositeOptions, order_frames, read_frame
from pipeline.filters import filter_wavelength
from pipeline.full import FullOptions

N = 96  # frame side, px
PIX = 0.2  # arcsec per px
CENTRE = (150.1, 2.2)  # RA, Dec in degrees
PLAM = {"R": 8000.0, "G": 5500.0, "B": 4400.0}


def _scene(ra, dec, channel: int) -> np.ndarray:
    """Scene brightness in [0, ~1.3] at sky positions (degrees) for channel 0/1/2 (R/G/B)."""
    rng = np.random.default_rng(7)
    dx = (np.asarray(ra) - CENTRE[0]) * np.cos(np.radians(CENTRE[1])) * 3600 / PIX
    dy = (np.asarray(dec) - CENTRE[1]) * 3600 / PIX
    stars = rng.uniform(-50, 50, (30, 2))
    colours = rng.uniform(0.1, 1.0, (30, 3))
    out = 0.15 + 0.002 * (dx * np.cos(2.1 * channel) + dy * np.sin(2.1 * channel))
    out = out + 0.3 * np.exp(-((dx - 20 * (channel - 1)) ** 2 + (dy + 10) ** 2) / (2 * 18.0 ** 2))
    for (x, y), col in zip(stars, colours):
        out = out + col[channel] * np.exp(-((dx - x) ** 2 + (dy - y) ** 2) / (2 * 2.2 ** 2))
    return out


def _wcs(rot_deg: float, shift: tuple, sip: bool = False) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"] if sip else ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = CENTRE
    w.wcs.crpix = [N / 2 + 0.5 + shift[0], N / 2 + 0.5 + shift[1]]
    t = np.radians(rot_deg)
    w.wcs.cd = PIX / 3600 * np.array([[-np.cos(t), np.sin(t)], [np.sin(t), np.cos(t)]])
    if sip:
        from astropy.wcs import Sip

        a = np.zeros((3, 3))
        b = np.zeros((3, 3))
        a[2, 0], a[1, 1], b[0, 2] = 1.5e-4, -8e-5, 1.2e-4  # ~0.3 px at the corners
        w.sip = Sip(a, b, None, None, w.wcs.crpix)
    return w


def _frame(path, channel: int, rot: float, shift: tuple, gain: float, sky: float, sip=False, keys=None,
           cards=()):
    """Writes one filter's frame: the scene's `channel` in raw units through its own WCS."""
    w = _wcs(rot, shift, sip)
    y, x = np.mgrid[0:N, 0:N]
    ra, dec = w.all_pix2world(x, y, 0)
    data = (gain * _scene(ra, dec, channel) + sky).astype(np.float32)
    header = w.to_header(relax=True)
    for k, v in (keys or {}).items():
        header[k] = v
    for card in cards:
        header.append(fits.Card.fromstring(card))
    fits.PrimaryHDU(data, header).writeto(path, overwrite=True)
    return str(path)


@pytest.fixture()
def frames(tmp_path):
    """(G, B, R) frames given in that shuffled order; G (the reference) has SIP distortion and, like an
    HST chip cut out of its file, names a D2IM lookup table that the file does not hold."""
    g = _frame(tmp_path / "g.fits", 1, 4.0, (2.0, -3.0), 50.0, 10.0, sip=True, keys={"PHOTPLAM": PLAM["G"]},
               cards=["D2IMDIS1= 'Lookup'", "D2IM1   = 'EXTVER: 1'", "D2IM1   = 'NAXES: 1'", "D2IMEXT = 'x.fits'"])
    b = _frame(tmp_path / "b.fits", 2, -9.0, (-6.0, 5.0), 3.0, 0.5, keys={"PHOTPLAM": PLAM["B"]})
    r = _frame(tmp_path / "r.fits", 0, 13.0, (7.0, 4.0), 1000.0, 200.0, keys={"PHOTPLAM": PLAM["R"]})
    return [g, b, r]


LINEAR = CompositeOptions(stretch="linear", interval="minmax")


def _truth(ref_path: str) -> np.ndarray:
    """The scene on the reference grid, `[3, H, W]` in FITS row order."""
    w = WCS(fits.getheader(ref_path))
    y, x = np.mgrid[0:N, 0:N]
    ra, dec = w.all_pix2world(x, y, 0)
    return np.stack([_scene(ra, dec, c) for c in range(3)])


def _read_png(path: str) -> np.ndarray:
    """A PNG as `[H, W, planes]` uint8/uint16 (pypng: Pillow drops 16-bit colour to 8 bits)."""
    width, height, rows, info = png.Reader(filename=path).asDirect()
    dtype = np.uint16 if info["bitdepth"] == 16 else np.uint8
    return np.vstack([np.asarray(r, dtype) for r in rows]).reshape(height, width, info["planes"])


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_three_frames_compose_back_to_the_scene_red_to_blue(tmp_path, frames):
    res = compose(ComposeConfig(filters=tuple(frames), output=str(tmp_path / "out"), composite=LINEAR,
                                upscale=False, formats=("fits",)), log=lambda s: None)
    [path] = res.written
    cube = fits.getdata(path)
    assert cube.shape == (3, N, N)
    truth = _truth(frames[0])
    common = np.isfinite(cube).all(axis=0)
    assert 0.5 < common.mean() < 0.95  # rotated, shifted frames: a real common footprint with gaps
    # A linear min-max stretch is affine per channel, so the only loss is reproject's
    # bilinear interpolation of the smooth (FWHM 5 px) scene: correlation stays above 0.99.
    corr = np.array([[_corr(cube[i][common], truth[j][common]) for j in range(3)] for i in range(3)])
    assert (np.diag(corr) >= 0.99).all(), corr
    assert (np.argmax(corr, axis=1) == [0, 1, 2]).all(), corr  # planes R, G, B by PHOTPLAM
    head = fits.getheader(path)
    assert [head[f"CMPWAV{i}"] for i in (1, 2, 3)] == [PLAM["R"], PLAM["G"], PLAM["B"]]
    history = [str(h) for h in head["HISTORY"]]
    for name in ("r.fits", "g.fits", "b.fits"):
        assert sum(name in h for h in history) == 1, history  # one HISTORY line per input frame


def test_order_given_keeps_the_listed_order(tmp_path, frames):
    res = compose(ComposeConfig(filters=tuple(frames), output=str(tmp_path), order="given", composite=LINEAR,
                                upscale=False, formats=("fits",)), log=lambda s: None)
    cube = fits.getdata(res.written[0])
    truth = _truth(frames[0])
    common = np.isfinite(cube).all(axis=0)
    best = [int(np.argmax([_corr(cube[i][common], truth[j][common]) for j in range(3)])) for i in range(3)]
    assert best == [1, 2, 0]  # g, b, r as listed


def test_x4_fits_keeps_the_sky_and_gaps_are_nan_and_transparent(tmp_path, frames, tiny_exports):
    logs = []
    res = compose(ComposeConfig(filters=tuple(frames), output=str(tmp_path / "out"),
                                srgan_model=tiny_exports["srgan"], formats=("png", "fits"),
                                full=FullOptions(tile=64, tile_overlap=16)), log=logs.append)
    paths = output_paths(frames[0], str(tmp_path / "out"), ("png", "fits"), 4)
    assert sorted(res.written) == sorted(paths.values())
    cube = fits.getdata(paths["fits"])
    head = fits.getheader(paths["fits"])
    assert cube.shape == (3, 4 * N, 4 * N)
    assert "D2IMDIS1" not in head and "D2IMEXT" not in head  # tables not in the output: keywords dropped
    # Pixel -> sky like the reference at 4x: output pixel p' (0-based) sits at input
    # pixel (p' + 0.5) / 4 - 0.5 (fits_out's centre convention); SIP included.
    ref, out = WCS(fits.getheader(frames[0])), WCS(head, naxis=2)  # a cube: SIP needs 2 axes
    pp = np.array([[0, 0], [383, 0], [0, 383], [383, 383], [191.5, 191.5], [17, 300]], float)
    sky_out = out.all_pix2world(pp, 0)
    sky_ref = ref.all_pix2world((pp + 0.5) / 4 - 0.5, 0)
    dra = (sky_out[:, 0] - sky_ref[:, 0]) * np.cos(np.radians(CENTRE[1]))
    assert np.hypot(dra, sky_out[:, 1] - sky_ref[:, 1]).max() * 3600 < 0.05
    # Gaps: where the scene says a frame does not reach, that plane is NaN; inside it is data.
    y, x = np.mgrid[0:N, 0:N]
    ra, dec = ref.all_pix2world(x, y, 0)
    for plane, (path, rot, shift, sip) in enumerate([(frames[2], 13.0, (7.0, 4.0), False),
                                                     (frames[0], 4.0, (2.0, -3.0), True),
                                                     (frames[1], -9.0, (-6.0, 5.0), False)]):
        fx, fy = _wcs(rot, shift, sip).all_world2pix(ra, dec, 0)
        inside = (fx > 1) & (fx < N - 2) & (fy > 1) & (fy < N - 2)
        outside = (fx < -1.5) | (fx > N + 0.5) | (fy < -1.5) | (fy > N + 0.5)
        finite = np.isfinite(cube[plane]).reshape(N, 4, N, 4).all(axis=(1, 3))
        assert finite[inside].all() and not finite[outside].any()
        assert outside.any() or path == frames[0]  # the reference covers its own grid
    rgba = _read_png(paths["png"])
    assert rgba.dtype == np.uint8 and rgba.shape == (4 * N, 4 * N, 4)
    opaque = np.isfinite(cube).all(axis=0)[::-1]  # FITS rows bottom-up, PNG rows top-down
    assert ((rgba[..., 3] == 255) == opaque).all() and set(np.unique(rgba[..., 3])) == {0, 255}
    assert any("on each channel alone" in line for line in logs)  # the default --sr_on channels
    assert "compose: x4 SR --sr_on channels, tiles 64/16px, consistency bicubic" in head["HISTORY"]


def test_two_filters_make_green_their_mean(tmp_path, frames):
    logs = []
    res = compose(ComposeConfig(filters=(frames[2], frames[1]), output=str(tmp_path), upscale=False,
                                formats=("fits", "png16")), log=logs.append)
    cube = fits.getdata(res.written[0])
    rgba = _read_png(res.written[1])
    assert rgba.dtype == np.uint16 and rgba.shape == (N, N, 4)
    # The 16-bit PNG holds the same composite as the FITS cube, to its rounding (0.5/65535;
    # 1e-7 covers the float32 ulp of cube values near 1).
    shown = rgba[::-1, :, 3] > 0
    assert (shown == np.isfinite(cube).all(axis=0)).all()
    assert np.abs(rgba[::-1, :, :3][shown] / 65535.0 - np.moveaxis(cube, 0, -1)[shown]).max() <= 0.5 / 65535 + 1e-7
    # Lupton scales every band of a pixel by one factor, so G = (R + B) / 2 survives the
    # stretch up to float32 rounding (values in [0, 1]: 1e-6 is ~8 ulp) wherever no band
    # was clipped at 0 (sky-subtracted values below the sky).
    ok = np.isfinite(cube).all(axis=0) & (cube[0] > 0) & (cube[2] > 0)
    assert ok.mean() > 0.2
    assert np.abs(cube[1][ok] - 0.5 * (cube[0][ok] + cube[2][ok])).max() < 1e-6
    assert cube[0][ok].std() > 0.01
    assert "compose: two filters: green is their mean" in logs


def test_frames_that_do_not_overlap_give_one_line(tmp_path, frames):
    far = tmp_path / "far.fits"
    hdu = fits.open(frames[1])[0]
    hdu.header["CRVAL1"] += 1.0
    hdu.writeto(far)
    with pytest.raises(ComposeError) as e:
        compose(ComposeConfig(filters=(frames[0], str(far)), output=str(tmp_path / "o"), upscale=False),
                log=lambda s: None)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(far)) and "does not overlap" in msg
    assert not os.listdir(tmp_path / "o")


def test_frame_without_wcs_gives_one_line_from_the_command(tmp_path, frames):
    bare = tmp_path / "bare.fits"
    fits.PrimaryHDU(fits.getdata(frames[1]), fits.Header({"PHOTPLAM": 4400.0})).writeto(bare)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-m", "pipeline.compose", f"--filters={frames[0]},{bare}",
                        f"--output={tmp_path / 'o'}", "--noupscale"], cwd=root, capture_output=True, text=True)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(bare) in lines[0] and "no celestial WCS" in lines[0], p.stderr


def test_one_filter_falls_back_to_the_colouriser(tmp_path, frames, tiny_exports):
    logs = []
    res = compose(ComposeConfig(filters=(frames[1],), output=str(tmp_path / "o"), formats=("png",),
                                colorize_model=tiny_exports["colorize"], srgan_model=tiny_exports["srgan"],
                                full=FullOptions(size=64, tile=64, tile_overlap=16)), log=logs.append)
    assert res.notes and res.notes[0] in logs and "falling back to the learned colouriser" in res.notes[0]
    assert len(res.written) == 1 and os.path.isfile(res.written[0])


def test_wavelength_from_keywords_and_filter_names(tmp_path):
    assert filter_wavelength("F814W") == 8140.0
    assert filter_wavelength("F160W", "WFC3", "IR") == 16000.0
    assert filter_wavelength("F200W", "NIRCAM") == 20000.0
    assert filter_wavelength("r") == 6166.0 and filter_wavelength("R") == 6410.0  # SDSS r, Johnson R
    assert filter_wavelength("H-alpha") == 6563.0 and filter_wavelength("[OIII]") == 5007.0
    assert filter_wavelength("SDSS g'") == 4686.0 and filter_wavelength("Lum") is None
    paths = {}
    for name, keys in {"acs": {"FILTER1": "CLEAR1L", "FILTER2": "F435W"}, "wav": {"WAVELEN": 0.9},
                       "vee": {"FILTER": "V"}, "none": {"FILTER": "Lum"}}.items():
        paths[name] = _frame(tmp_path / f"{name}.fits", 0, 0.0, (0.0, 0.0), 1.0, 0.0, keys=keys)
    got = {k: read_frame(p) for k, p in paths.items()}
    assert (got["acs"].filter, got["acs"].wavelength) == ("F435W", 4350.0)
    assert got["wav"].wavelength == pytest.approx(9000.0)  # WAVELEN below 30 is in um
    assert [f.name for f in order_frames([got["acs"], got["wav"], got["vee"]])] == ["wav.fits", "vee.fits", "acs.fits"]
    with pytest.raises(ComposeError, match="none.fits: cannot order by wavelength.*--order given"):
        order_frames([got["acs"], got["none"]])


def test_constant_frame_gives_one_line(tmp_path):
    path = _frame(tmp_path / "flat.fits", 0, 0.0, (0.0, 0.0), 0.0, 5.0)
    with pytest.raises(ImageReadError, match=r"flat.fits: image is constant \(every finite pixel = 5\)"):
        read_frame(path)


def test_defaults_give_back_a_picture_split_into_frames(tmp_path, data_dir):
    """Frames holding a colour picture's display values (NGC 3314 fixture) compose back to it with the
    default Lupton stretch: Q=1 is mild enough not to stretch an already stretched picture much."""
    from scipy import ndimage

    from data.io import read_rgb

    picture = read_rgb(os.path.join(data_dir, "images", "n3314.png"))[::-1]  # FITS row order
    size, side = picture.shape[0], 192
    grid = _wcs(0.0, (0.0, 0.0))
    grid.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    paths = []
    # The reference (G) lies on the picture's own pixel grid, 32 px in: its truth is an exact crop.
    for channel, rot, shift, plam in ((1, 0.0, (0.0, 0.0), 5500.0), (2, 7.0, (5.0, -4.0), 4400.0),
                                      (0, -10.0, (-6.0, 3.0), 8000.0)):
        w = _wcs(rot, shift)
        w.wcs.crpix = [side / 2 + 0.5 + shift[0], side / 2 + 0.5 + shift[1]]
        y, x = np.mgrid[0:side, 0:side]
        px, py = grid.world_to_pixel(w.pixel_to_world(x, y))
        data = ndimage.map_coordinates(picture[..., channel], [py, px], order=3, mode="nearest")
        header = w.to_header()
        header["PHOTPLAM"] = plam
        paths.append(str(tmp_path / f"p{channel}.fits"))
        fits.PrimaryHDU(data.astype(np.float32), header).writeto(paths[-1])
    res = compose(ComposeConfig(filters=tuple(paths), output=str(tmp_path / "o"), upscale=False,
                                formats=("fits",)), log=lambda s: None)
    cube = fits.getdata(res.written[0])
    truth = picture[32:32 + side, 32:32 + side]
    ok = np.isfinite(cube).all(axis=0)
    corr = [_corr(cube[c][ok], truth[..., c][ok]) for c in range(3)]
    assert min(corr) >= 0.99, corr


def test_reference_picks_the_grid_and_header(tmp_path, frames):
    res = compose(ComposeConfig(filters=tuple(frames), output=str(tmp_path / "o"), reference="r.fits",
                                composite=LINEAR, upscale=False, formats=("fits",)), log=lambda s: None)
    assert os.path.basename(res.written[0]) == "r_composite.fits"
    head, ref = fits.getheader(res.written[0]), fits.getheader(frames[2])
    assert [head[k] for k in ("CRPIX1", "CRPIX2", "PC1_2")] == [ref[k] for k in ("CRPIX1", "CRPIX2", "PC1_2")]
    assert np.isfinite(fits.getdata(res.written[0])[0]).all()  # R is the reference: it covers its own grid
    with pytest.raises(ValueError, match="--reference x.fits is not one of --filters"):
        compose(ComposeConfig(filters=tuple(frames), output=str(tmp_path / "o"), reference="x.fits"),
                log=lambda s: None)


# --------------------------------------------------------------------------- how SR sees the composite


@pytest.fixture(scope="module")
def bicubic_sr(tmp_path_factory):
    """The residual SR design untrained, exported: it is exactly bicubic (its residual layer starts at zero)."""
    import keras

    from pipeline.models import load_model
    from srgan.model import build_generator
    from srgan.saved_model import export_saved_model

    keras.utils.set_random_seed(0)
    path = export_saved_model(build_generator(num_blocks=1, filters=4, scale=4, arch="residual"),
                              str(tmp_path_factory.mktemp("exports") / "bicubic"),
                              {"arch": "residual", "num_blocks": 1, "filters": 4, "scale": 4, "trained": False})
    return load_model(path, "srgan")


def _gathered(rgb, upscaler, sr_on, consistency):
    from pipeline.full import upscaled_bands

    return np.concatenate(list(upscaled_bands(rgb, SROnUpscaler(upscaler, sr_on), 4,
                                              FullOptions(tile=32, tile_overlap=8), consistency=consistency)))


def test_sr_on_modes_agree_when_the_model_is_bicubic(bicubic_sr):
    """A bicubic "model" is linear and works on each channel alone, so rgb, channels and luminance must give
    the same picture: channels feeds it grey copies of each channel (luma of a grey output = that channel);
    luminance upsamples Y by the model and U, V by bicubic, and YUV is linear, so the sum is bicubic RGB.
    That holds while nothing is clipped, hence a smooth colour composite well inside [0, 1] (a grey
    composite would also agree, but could not tell the channels apart, e.g. a channel-order bug)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    rgb = np.stack([ndimage.gaussian_filter(rng.normal(size=(40, 56)), 2.0) for _ in range(3)], axis=-1)
    rgb = (0.5 + 0.3 * rgb / np.abs(rgb).max()).astype(np.float32)  # in [0.2, 0.8]
    out = {m: _gathered(rgb, bicubic_sr, m, "none") for m in SR_ON}
    assert all(o.shape == (160, 224, 3) for o in out.values())
    # Bicubic of a smooth field in [0.2, 0.8] overshoots by far less than 0.2: no clipping anywhere.
    assert 0.0 < out["rgb"].min() and out["rgb"].max() < 1.0
    # Float32 rounding only: each value is a few products and sums of numbers <= ~2 (YUV's 1/0.492), a
    # handful of ulps (1.2e-7 at 1) times the bicubic taps' absolute sum (~1.15 in 2-D): 1e-5 bounds it.
    for m in ("channels", "luminance"):
        assert np.abs(out[m] - out["rgb"]).max() < 1e-5, m
    # The bicubic model with the consistency step is still a pure function of the input: same shape, in [0, 1].
    for m in SR_ON:
        sr = _gathered(rgb, bicubic_sr, m, "auto")
        assert sr.shape == (160, 224, 3) and 0.0 <= sr.min() and sr.max() <= 1.0


def test_each_sr_on_mode_composes_at_4x_and_they_differ_for_a_real_network(tmp_path, frames, tiny_exports):
    cubes = {}
    for mode in SR_ON:
        res = compose(ComposeConfig(filters=tuple(frames), output=str(tmp_path / mode), sr_on=mode,
                                    srgan_model=tiny_exports["srgan"], formats=("fits",),
                                    full=FullOptions(tile=64, tile_overlap=16)), log=lambda s: None)
        cubes[mode] = fits.getdata(res.written[0])
        assert cubes[mode].shape == (3, 4 * N, 4 * N)
        history = [str(h) for h in fits.getheader(res.written[0])["HISTORY"]]
        assert sum(f"x4 SR --sr_on {mode}," in h for h in history) == 1
    ok = np.isfinite(cubes["rgb"])
    assert (np.isfinite(cubes["channels"]) == ok).all() and (np.isfinite(cubes["luminance"]) == ok).all()
    # A network that mixes channels (the SRResNet fixture) sees different inputs in each mode.
    assert np.abs(cubes["channels"][ok] - cubes["rgb"][ok]).max() > 1e-3
    assert np.abs(cubes["luminance"][ok] - cubes["rgb"][ok]).max() > 1e-3
    with pytest.raises(ValueError, match="unknown --sr_on 'yuv'; choose from rgb, channels, luminance"):
        compose(ComposeConfig(filters=tuple(frames), output=str(tmp_path / "x"), sr_on="yuv"), log=lambda s: None)


def test_default_models_are_found_as_pipeline_run_finds_them(tmp_path, frames):
    logs = []
    res = compose(ComposeConfig(filters=(frames[2], frames[1]), output=str(tmp_path), formats=("png",)),
                  log=logs.append)
    assert _read_png(res.written[0]).shape == (4 * N, 4 * N, 4)
    assert any(line.startswith("super-resolution:") and "UNTRAINED" not in line for line in logs)


# --------------------------------------------------------------------------- two filters: green


class _ConstantColouriser:
    """A colouriser stub that predicts one colour everywhere, whatever the luminance."""

    path = "stub"

    def __init__(self, rgb):
        self.rgb = np.asarray(rgb, np.float32)
        self.seen = None

    def run(self, batch):
        self.seen = batch.shape
        return np.broadcast_to(self.rgb, batch.shape[:3] + (3,)).copy()


def test_colouriser_green_is_its_ratio_times_the_measured_mean():
    rgb = np.zeros((20, 30, 3), np.float32)
    rgb[..., 0] = np.linspace(0.1, 0.5, 30)
    rgb[..., 2] = 0.2
    stub = _ConstantColouriser([0.2, 0.5, 0.4])
    green = colouriser_green(rgb, stub, 32)
    assert stub.seen == (1, 32, 32, 1)  # the luminance at the working size
    # k = (0.5 + 0.02) / ((0.2 + 0.4) / 2 + 0.02) = 0.52 / 0.32 = 1.625, constant, so bilinear upsampling
    # keeps it; float32 rounding of k and of the product: 1e-6.
    np.testing.assert_allclose(green, 1.625 * 0.5 * (rgb[..., 0] + rgb[..., 2]), atol=1e-6)
    # Where the colouriser's picture is black the floor makes k = 1: the usual mean.
    np.testing.assert_allclose(colouriser_green(rgb, _ConstantColouriser([0, 0, 0]), 32),
                               0.5 * (rgb[..., 0] + rgb[..., 2]), atol=1e-6)


def test_two_filter_colouriser_green_keeps_r_and_b_exactly(tmp_path, frames, tiny_exports):
    runs = {}
    for green in ("mean", "colouriser"):
        logs = []
        res = compose(ComposeConfig(filters=(frames[2], frames[1]), output=str(tmp_path / green), upscale=False,
                                    two_filter_green=green, colorize_model=tiny_exports["colorize"],
                                    full=FullOptions(size=64), formats=("fits",)), log=logs.append)
        runs[green] = (fits.getdata(res.written[0]), [str(h) for h in fits.getheader(res.written[0])["HISTORY"]])
        assert any(green in line and "two filters" in line for line in logs)
    (mean, _), (ours, history) = runs["mean"], runs["colouriser"]
    np.testing.assert_array_equal(ours[0], mean[0])  # the measured bands, bit for bit (NaN where uncovered)
    np.testing.assert_array_equal(ours[2], mean[2])
    assert (np.isfinite(ours[1]) == np.isfinite(mean[1])).all()
    ok = np.isfinite(ours[1])
    assert 0.0 <= ours[1][ok].min() and ours[1][ok].max() <= 1.0
    assert np.abs(ours[1][ok] - mean[1][ok]).max() > 1e-3  # the (untrained) colouriser's ratio is not 1
    assert sum("compose G: colouriser" in h for h in history) == 1 and not any("mean of R" in h for h in history)


# --------------------------------------------------------------------------- the Python API


def test_api_compose_writes_the_commands_files_byte_for_byte(tmp_path, frames, tiny_exports):
    from pipeline import Pipeline

    pipe = Pipeline.load(colorize_model=tiny_exports["colorize"], srgan_model=tiny_exports["srgan"])
    res = pipe.compose(frames, tmp_path / "api", formats=("png", "fits"), tile=64, tile_overlap=16)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-m", "pipeline.compose", f"--filters={','.join(frames)}",
                        f"--output={tmp_path / 'cli'}", f"--srgan_model={tiny_exports['srgan']}",
                        f"--colorize_model={tiny_exports['colorize']}", "--output_format=png,fits",
                        "--tile=64", "--tile_overlap=16"], cwd=root, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert len(res.written) == 2
    for path in res.written:
        with open(path, "rb") as a, open(tmp_path / "cli" / os.path.basename(path), "rb") as b:
            assert a.read() == b.read(), path
    with pytest.raises(ValueError, match="unknown compose option 'colour'"):
        pipe.compose(frames, tmp_path / "x", colour=True)
