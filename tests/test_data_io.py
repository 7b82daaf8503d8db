"""Readers and writers on every supported format, and on bad files."""
import gzip
import os
import shutil

import imageio.v3 as iio
import numpy as np
import pytest
from astropy.io import fits

from data.io import ImageReadError, fit_stretch, list_images, read_fits, read_image
from data.writers import encode_png, write_png, write_tiff16


def test_rgb_png_matches_raw_pixels(real_images):
    raw = iio.imread(real_images[0])
    img = read_image(real_images[0])
    assert img.shape == (256, 256, 3) and img.dtype == np.float32
    np.testing.assert_allclose(img, raw / 255.0, atol=1e-7)


def test_palette_png_is_expanded_to_rgb(data_dir):
    img = read_image(os.path.join(data_dir, "formats", "palette_p33423.png"))
    assert img.shape == (256, 256, 3)
    assert 0.0 <= img.min() and img.max() <= 1.0
    # A palette image has few distinct colours (<= 256).
    assert len(np.unique(img.reshape(-1, 3), axis=0)) <= 256


def test_rgba_png_composited_on_black(data_dir):
    path = os.path.join(data_dir, "formats", "rgba_u1810.png")
    raw = iio.imread(path).astype(np.float64) / 255.0
    img = read_image(path)
    assert img.shape == (256, 256, 3)
    np.testing.assert_allclose(img, raw[..., :3] * raw[..., 3:], atol=1e-6)


def test_grey_8_and_16_bit_png(tmp_path):
    ramp16 = (np.arange(40 * 50).reshape(40, 50) * 30).astype(np.uint16)
    p16 = tmp_path / "g16.png"
    iio.imwrite(p16, ramp16)
    img = read_image(str(p16))
    assert img.shape == (40, 50, 1)
    np.testing.assert_allclose(img[..., 0], ramp16 / 65535.0, atol=1e-7)
    p8 = tmp_path / "g8.png"
    iio.imwrite(p8, (ramp16 >> 8).astype(np.uint8))
    assert read_image(str(p8)).shape == (40, 50, 1)


def test_16_bit_rgb_png_roundtrip_keeps_16_bits(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.random((17, 23, 3)).astype(np.float32)
    path = tmp_path / "rgb16.png"
    write_png(str(path), img, bits=16)
    back = read_image(str(path))
    # 16-bit quantisation error is at most half a level.
    assert np.abs(back - img).max() <= 0.5 / 65535 + 1e-7


def test_jpeg_and_tiff(tmp_path, real_images):
    rgb = iio.imread(real_images[1])
    iio.imwrite(tmp_path / "a.jpg", rgb, quality=95)
    jpg = read_image(str(tmp_path / "a.jpg"))
    assert jpg.shape == (256, 256, 3) and np.abs(jpg - rgb / 255.0).mean() < 0.02
    write_tiff16(str(tmp_path / "b.tif"), rgb / 255.0)
    tif = read_image(str(tmp_path / "b.tif"))
    np.testing.assert_allclose(tif, rgb / 255.0, atol=1 / 65535)


def test_float_tiff_outside_unit_range_is_stretched(tmp_path):
    data = np.linspace(-50, 5000, 64 * 64, dtype=np.float32).reshape(64, 64)
    iio.imwrite(tmp_path / "f.tif", data)
    img = read_image(str(tmp_path / "f.tif"))
    assert img.shape == (64, 64, 1) and img.min() == 0.0 and img.max() == 1.0
    # Monotone stretch keeps the order of the raw values.
    assert np.all(np.diff(img.reshape(-1)) >= 0)


def test_fits_m51_stretch_and_inverse(m51_fits):
    f = read_fits(m51_fits)
    raw = fits.getdata(m51_fits).astype(np.float64)
    assert f.image.shape == (384, 384, 1) and f.image.dtype == np.float32
    assert f.image.min() == 0.0 and f.image.max() == 1.0
    assert f.flipped and f.header["TELESCOP"].startswith("Hubble")
    # Display order: the first row shown is FITS's last row.
    back = f.stretch.invert(f.image[::-1, :, 0])
    inside = (raw > f.stretch.vmin) & (raw < f.stretch.vmax)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(back[inside], raw[inside], rtol=1e-4, atol=1e-3 * (f.stretch.vmax - f.stretch.vmin))
    assert read_image(m51_fits).shape == (384, 384, 1)


def test_fits_nan_masked_and_zscale(tmp_path):
    data = np.random.default_rng(1).normal(100, 10, (32, 48)).astype(np.float32)
    data[:4] = np.nan
    data[5, 5] = np.inf
    p = tmp_path / "nan.fits"
    fits.PrimaryHDU(data).writeto(p)
    f = read_fits(str(p), interval="zscale")
    assert f.image.shape == (32, 48, 1) and np.isfinite(f.image).all()
    assert (f.image[-4:] == 0).all()  # NaN rows (FITS rows 0-3 are the bottom) -> 0
    assert f.stretch.interval == "zscale"


def test_fits_image_in_extension_and_cube(tmp_path):
    p = tmp_path / "ext.fits"
    cube = np.arange(3 * 10 * 12, dtype=np.float32).reshape(3, 10, 12)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube)]).writeto(p)
    f = read_fits(str(p))
    assert f.hdu_index == 1 and f.plane == 0 and f.image.shape == (10, 12, 1)


@pytest.mark.parametrize(
    "name,maker,reason",
    [
        ("empty.png", lambda p: p.write_bytes(b""), "empty file"),
        ("text.png", lambda p: p.write_text("hello, not a picture"), "cannot decode"),
        ("missing.png", None, "no such file"),
    ],
)
def test_bad_files_raise_clear_error(tmp_path, name, maker, reason):
    path = tmp_path / name
    if maker:
        maker(path)
    with pytest.raises(ImageReadError) as e:
        read_image(str(path))
    assert str(path) in str(e.value) and reason in str(e.value)


def test_truncated_png(tmp_path, real_images):
    data = open(real_images[0], "rb").read()
    path = tmp_path / "trunc.png"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="trunc.png"):
        read_image(str(path))


def test_directory_named_like_image(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(str(tmp_path / "dir.png"))


def test_all_nan_and_constant_fits(tmp_path):
    p = tmp_path / "nan.fits"
    fits.PrimaryHDU(np.full((8, 8), np.nan, np.float32)).writeto(p)
    with pytest.raises(ImageReadError, match=r"nan\.fits: no finite pixel"):
        read_image(str(p))
    z = tmp_path / "zero.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(z)
    with pytest.raises(ImageReadError, match="constant"):
        read_image(str(z))


def test_fits_without_image_and_truncated_fits(tmp_path, m51_fits):
    p = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]).writeto(p)
    with pytest.raises(ImageReadError, match="no image HDU"):
        read_image(str(p))
    raw = gzip.open(m51_fits).read()
    t = tmp_path / "trunc.fits"
    t.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageReadError, match="trunc.fits"):
        read_image(str(t))


def test_fit_stretch_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown stretch"):
        fit_stretch("x", np.arange(4.0), stretch="gamma")


def test_write_png_is_atomic_and_lossless_at_8_bit(tmp_path, real_images):
    img = read_image(real_images[2])
    out = tmp_path / "sub" / "o.png"
    write_png(str(out), img)
    assert [p.name for p in out.parent.iterdir()] == ["o.png"]  # no temp files left
    np.testing.assert_array_equal(read_image(str(out)), img)
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 2)))


def test_list_images_filters_and_sorts(tmp_path, real_images):
    for name in ["b.png", "a.FITS", "c.txt", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    os.mkdir(tmp_path / "sub")
    shutil.copy(real_images[0], tmp_path / "sub" / "d.png")
    assert [os.path.basename(p) for p in list_images(str(tmp_path))] == ["a.FITS", "b.png"]
    assert [os.path.basename(p) for p in list_images(str(tmp_path), recursive=True)] == ["a.FITS", "b.png", "d.png"]
    with pytest.raises(ImageReadError, match="not a directory"):
        list_images(str(tmp_path / "nope"))
