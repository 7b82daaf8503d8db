"""Tiled upscaling blends seamlessly; FITS output keeps the sky coordinates."""
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from data.io import read_fits, read_image
from pipeline.fits_out import scale_header, write_fits
from pipeline.tiling import feather_window, plan_tiles, upscale_tiled
from data.tiles import Box


def _bicubic(x):
    """x4 bicubic of a stack of tiles `[N, h, w, C]`, or of one image `[h, w, C]`."""
    import tensorflow as tf

    return np.clip(tf.image.resize(x, (x.shape[-3] * 4, x.shape[-2] * 4), "bicubic").numpy(), 0, 1)


def _nearest(x):
    """x4 nearest neighbour of a stack of tiles `[N, h, w, C]`, or of one image `[h, w, C]`."""
    return np.repeat(np.repeat(x, 4, -3), 4, -2)


def test_tiles_blend_to_the_untiled_result(real_images):
    img = np.tile(read_image(real_images[5]), (2, 2, 1))[:300, :270]
    # A pointwise upscaler must come out exactly the same.
    np.testing.assert_allclose(upscale_tiled(img, _nearest, 4, tile=96, overlap=8), _nearest(img), atol=1e-6)
    # Bicubic looks past tile edges; the feathered overlap hides that to well under 2/255.
    diff = np.abs(upscale_tiled(img, _bicubic, 4, tile=96, overlap=16) - _bicubic(img))
    assert diff.max() < 2 / 255


def test_tiled_output_can_be_a_memmap(tmp_path, real_images):
    img = read_image(real_images[0])[:100, :90]
    out = np.lib.format.open_memmap(str(tmp_path / "o.npy"), mode="w+", dtype=np.float32, shape=(400, 360, 3))
    upscale_tiled(img, _nearest, 4, tile=40, overlap=6, out=out)
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), _nearest(img), atol=1e-6)


def test_feather_window_ramps_only_inside():
    # A tile in the top-left corner of a 100x100 frame ramps only on its right and bottom.
    win = feather_window(Box(0, 0, 40, 40), 100, 100, overlap=8, scale=1)[..., 0]
    assert win[0, 0] == 1.0 and win[0, -1] == 0.0 and win[-1, 0] == 0.0  # outer quarter of the overlap dropped
    assert win[0, -3] == 0.125 and win[0, -7] == 1.0  # then a linear ramp over half the overlap
    # Every pixel of a frame gets some weight from some tile.
    cover = np.zeros((100, 100))
    for b in plan_tiles(100, 100, tile=40, overlap=8):
        cover[b.top : b.top + b.height, b.left : b.left + b.width] += feather_window(b, 100, 100, 8, 1)[..., 0]
    assert cover.min() > 0
    with pytest.raises(ValueError, match="twice"):
        plan_tiles(100, 100, tile=16, overlap=8)


def test_wcs_rescaled_keeps_sky_positions(m51_fits):
    head = fits.getheader(m51_fits)
    w_in = WCS(head)
    w_out = WCS(scale_header(head, 4, history=["x4 test"]))
    pix = np.array([[0.0, 0.0], [10.0, 20.0], [183.7, 91.2], [383.0, 383.0]])
    sky_in = w_in.wcs_pix2world(pix, 0)
    # 0-based pixel centre p of the input is at (p + 0.5) * 4 - 0.5 in the output.
    sky_out = w_out.wcs_pix2world((pix + 0.5) * 4 - 0.5, 0)
    np.testing.assert_allclose(sky_out, sky_in, atol=1e-9)


def test_celestial_cd_matrix_wcs_round_trip():
    head = fits.Header()
    for k, v in dict(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=202.47, CRVAL2=47.2, CRPIX1=100.3, CRPIX2=80.9,
                     CD1_1=-2.7e-5, CD1_2=3e-6, CD2_1=2.5e-6, CD2_2=2.7e-5).items():
        head[k] = v
    w_in, w_out = WCS(head), WCS(scale_header(head, 4))
    pix = np.array([[0.0, 0.0], [55.5, 12.25], [199.0, 150.0]])
    np.testing.assert_allclose(w_out.wcs_pix2world((pix + 0.5) * 4 - 0.5, 0), w_in.wcs_pix2world(pix, 0), atol=1e-10)


def test_write_fits_cube_header_and_linear_units(tmp_path, m51_fits):
    f = read_fits(m51_fits)
    rgb = np.repeat(f.image, 3, axis=-1)
    up = np.repeat(np.repeat(rgb, 4, 0), 4, 1)
    path = tmp_path / "out.fits"
    write_fits(str(path), up, f.header, scale=4, stretch=f.stretch, linear=True, flipped=f.flipped,
               history=["colourised and super-resolved x4"])
    with fits.open(path) as hdul:
        data, head = hdul[0].data, hdul[0].header
    assert data.shape == (3, 384 * 4, 384 * 4) and data.dtype.kind == "f" and data.dtype.itemsize == 4
    assert head["TELESCOP"].startswith("Hubble") and "super-resolved" in str(head["HISTORY"])
    assert head["CRPIX1"] == (182.5 - 0.5) * 4 + 0.5 and head["CDELT1"] == 0.01 / 4
    raw = fits.getdata(m51_fits).astype(np.float64)
    inside = (raw > f.stretch.vmin) & (raw < f.stretch.vmax)
    # Back in the input's units, FITS row order: every 4x4 block equals the input pixel.
    np.testing.assert_allclose(data[0, ::4, ::4][inside], raw[inside], rtol=1e-3)


def test_fidelity_report_by_hand(real_images):
    """Nearest-neighbour 'SR' averages back to its input exactly; a known error gives a known PSNR."""
    from pipeline.full import ColourFrame, _FidelityMeter, stream_bands

    rgb = read_image(real_images[4])[:64, :48]
    grey = (0.9 * (0.299 * rgb[..., :1] + 0.587 * rgb[..., 1:2] + 0.114 * rgb[..., 2:3])).astype(np.float32)
    frame = ColourFrame(grey, np.full((4, 4, 2), 0.5, np.float32))  # neutral chroma: RGB = Y
    meter = _FidelityMeter(4, residual_shape=(64, 48, 1))
    out = np.concatenate(list(stream_bands(frame, _nearest, 4, tile=32, overlap=8, meter=meter)))
    assert out.shape == (256, 192, 3)
    result = meter.result()
    assert result.flux_psnr > 100 and result.luminance_mae < 1e-6  # exact up to float rounding
    assert np.abs(meter.residual).max() < 1e-6
    # Adding 0.01 everywhere (values stay below 1): every 4x4 average is off by 0.01 -> MSE 1e-4 -> 40 dB.
    meter2 = _FidelityMeter(4)
    list(stream_bands(frame, lambda t: np.clip(_nearest(t) + 0.01, 0, 2), 4, tile=32, overlap=8, meter=meter2))
    assert abs(meter2.result().flux_psnr - 40.0) < 0.05
