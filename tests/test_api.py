"""The Python API (`pipeline.Pipeline`): same pixels as the command, dtypes and shapes, FITS, model finding."""
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from data.io import read_image
from data.writers import encode_png, write_png
from data.normalize import to_uint8
from pipeline import Pipeline, PipelineInputError
from pipeline.runner import RunConfig, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 64  # the colouriser's working size in these tests (faithful output: 4 * 64 = 256 px)


@pytest.fixture(scope="module")
def pipe(tiny_exports):
    return Pipeline.load(tiny_exports["colorize"], tiny_exports["srgan"], device="cpu")


@pytest.fixture(scope="module")
def grey8(real_images):
    """A real grey frame, uint8 [40, 56] (not square, so resizing is exercised)."""
    return to_uint8(read_image(real_images[4]).mean(axis=-1))[60:100, 30:86]


def _cli(tmp_path, src, **kw):
    models = {k: v for k, v in kw.pop("models").items()}
    return run(RunConfig(input=str(src), output=str(tmp_path / "out"), colorize_model=models["colorize"],
                         srgan_model=models["srgan"], size=SIZE, batch_size=1, progress=False, **kw),
               log=lambda _: None)


def test_import_pipeline_does_not_import_tensorflow():
    code = ("import sys, pipeline; pipeline.Pipeline; pipeline.PipelineInputError; pipeline.default_model_dir; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_faithful_equals_the_command_byte_for_byte(tmp_path, pipe, tiny_exports, real_images, data_dir):
    """RGB 8-bit, grey 16-bit and RGBA PNGs: the command's PNG bytes are encode_png of the API's result."""
    src = tmp_path / "in"
    src.mkdir()
    arrays = {
        "rgb": iio.imread(real_images[0]),
        "grey16": (read_image(real_images[1]).mean(axis=-1) * 65535).round().astype(np.uint16)[:90, :70],
        "rgba": iio.imread(os.path.join(data_dir, "formats", "rgba_u1810.png")),
    }
    assert arrays["rgba"].shape[-1] == 4 and arrays["rgb"].dtype == np.uint8
    for name, a in arrays.items():
        iio.imwrite(src / f"{name}.png", a)
    result = _cli(tmp_path, src, models=tiny_exports, save_intermediate=True)
    assert len(result.written) == 3 and not result.failed
    for name, a in arrays.items():
        out = pipe.process(a, size=SIZE)
        assert out.dtype == np.float32 and out.shape == (4 * SIZE, 4 * SIZE, 3)
        assert encode_png(out) == (tmp_path / "out" / f"{name}_colour_x4.png").read_bytes(), name
        colour = pipe.colourise(a, size=SIZE)
        assert encode_png(colour) == (tmp_path / "out" / f"{name}_colour224.png").read_bytes(), name
        # upscale() on an image within one tile is the faithful x4 step itself.
        np.testing.assert_array_equal(pipe.upscale(colour), out)


def test_full_mode_equals_the_command_float_for_float(tmp_path, pipe, tiny_exports, grey8):
    """The command's float32 FITS cube holds exactly the API's full-mode array (several tiles)."""
    from pipeline.full import FullOptions

    iio.imwrite(tmp_path / "g.png", grey8)  # 8-bit grey PNG: read back as exactly grey8 / 255
    tiles = dict(tile=32, tile_overlap=8)
    result = _cli(tmp_path, tmp_path / "g.png", models=tiny_exports, mode="full",
                  full=FullOptions(size=SIZE, output_format="fits", tile_batch=1, **tiles))
    assert result.written, result.failed
    cube = fits.getdata(result.written[0])
    out = pipe.process(grey8, mode="full", size=SIZE, batch_size=1, **tiles)
    assert out.shape == (160, 224, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(np.moveaxis(cube, 0, -1)[::-1], out)  # FITS rows are bottom first
    # colourise(mode="full") keeps the frame's luminance (compose_rgb: float rounding only, ~1e-7).
    colour = pipe.colourise(grey8, mode="full", size=SIZE)
    assert colour.shape == (40, 56, 3)
    luma = colour @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(luma, grey8 / 255.0, atol=1e-5)


@pytest.fixture()
def wcs_fits(tmp_path):
    """A generated 36x44 int16 frame (two stars on a sky) with a rotated CD-matrix TAN WCS."""
    yy, xx = np.mgrid[:36, :44]
    rng = np.random.default_rng(3)
    data = 100 + rng.normal(0, 3, (36, 44)) + 2000 * np.exp(-((xx - 12) ** 2 + (yy - 20) ** 2) / 6.0)
    data += 800 * np.exp(-((xx - 30) ** 2 + (yy - 9) ** 2) / 3.0)
    head = fits.Header()
    head.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=202.47, CRVAL2=47.19, CRPIX1=20.5, CRPIX2=15.0,
                CD1_1=-2.0e-5, CD1_2=1.0e-5, CD2_1=1.0e-5, CD2_2=2.0e-5, OBJECT="test field")
    path = tmp_path / "field.fits"
    fits.PrimaryHDU(data.astype(np.int16), head).writeto(path)
    return path


def test_process_fits_equals_the_command_and_maps_the_same_sky(tmp_path, pipe, tiny_exports, wcs_fits):
    from pipeline.full import FullOptions

    opts = dict(tile=32, tile_overlap=8, linear_output=True, stretch="sqrt")
    result = _cli(tmp_path, wcs_fits, models=tiny_exports, mode="full",
                  full=FullOptions(size=SIZE, output_format="fits", **opts))
    assert result.written, result.failed
    with fits.open(result.written[0]) as hdul:
        cli_head, cli_data = hdul[0].header, hdul[0].data.astype(np.float32)
    with fits.open(wcs_fits) as hdul:  # a file path, an HDUList and an HDU give the same cube
        hdus = [pipe.process_fits(wcs_fits, size=SIZE, **opts), pipe.process_fits(hdul, size=SIZE, **opts),
                pipe.process_fits(hdul[0], size=SIZE, **opts)]
    w_in, w_cli = WCS(fits.getheader(wcs_fits)), WCS(cli_head, naxis=2)
    pix = np.array([[0.0, 0.0], [12.0, 20.0], [43.0, 35.0]])  # input pixel centres (x, y), 0-based
    for hdu in hdus:
        assert isinstance(hdu, fits.PrimaryHDU) and hdu.data.shape == (3, 144, 176)
        np.testing.assert_array_equal(hdu.data, cli_data)
        assert hdu.header["OBJECT"] == "test field" and hdu.header["DATAUNIT"] == "linear"
        w_api = WCS(hdu.header, naxis=2)
        out_pix = (pix + 0.5) * 4 - 0.5  # the same points on the 4x grid
        np.testing.assert_array_equal(w_api.wcs_pix2world(out_pix, 0), w_cli.wcs_pix2world(out_pix, 0))
        # Same sky as the input, up to float64 rounding of the TAN projection (~1e-12 deg).
        np.testing.assert_allclose(w_api.wcs_pix2world(out_pix, 0), w_in.wcs_pix2world(pix, 0), atol=1e-10, rtol=0)


def test_dtypes_and_layouts_give_the_same_result(pipe, grey8):
    """uint8 g, uint16 257*g and float g/255 are the same values (65535 = 255 * 257); so are [H, W] and
    [H, W, 1]; RGB and opaque RGBA too, and RGB with equal channels is grey up to float rounding."""
    ref = pipe.process(grey8, size=SIZE)
    rgb = np.repeat(grey8[..., None], 3, axis=-1)
    variants = {
        "uint16": grey8.astype(np.uint16) * 257,
        "float64": grey8 / 255.0,
        "float32": (grey8 / 255.0).astype(np.float32),
        "HxWx1": grey8[..., None],
    }
    for name, a in variants.items():
        np.testing.assert_array_equal(pipe.process(a, size=SIZE), ref, err_msg=name)
    from_rgb = pipe.process(rgb, size=SIZE)
    opaque = np.concatenate([rgb, np.full_like(grey8[..., None], 255)], axis=-1)
    np.testing.assert_array_equal(pipe.process(opaque, size=SIZE), from_rgb)
    # Equal channels are reduced by 0.299 g + 0.587 g + 0.114 g, which is g up to float32 rounding
    # (a few ulp, < 3e-7); the networks pass that on scaled by their small gain. A channel mix-up
    # would differ by whole levels (> 1e-2), so 1e-4 still tells them apart.
    assert np.abs(from_rgb - ref).max() < 1e-4
    # NaN pixels count as 0, as masked FITS pixels do; transparent pixels as black.
    f = grey8 / 255.0
    f[:5, :5] = np.nan
    zeroed = grey8.copy()
    zeroed[:5, :5] = 0
    np.testing.assert_array_equal(pipe.process(f, size=SIZE), pipe.process(zeroed, size=SIZE))
    rgba, zeroed_rgb = opaque.copy(), rgb.copy()
    rgba[:5, :5, 3] = 0
    zeroed_rgb[:5, :5] = 0
    np.testing.assert_array_equal(pipe.process(rgba, size=SIZE), pipe.process(zeroed_rgb, size=SIZE))


@pytest.mark.parametrize("image, options, reason", [
    (np.zeros((8, 8), np.int32), {}, "dtype int32 not supported"),
    (np.zeros((8, 8), object), {}, "dtype object not supported"),
    (np.zeros((8, 8, 5), np.uint8), {}, r"shape \(8, 8, 5\) not supported"),
    (np.zeros((2, 8, 8, 3), np.uint8), {}, "shape .* not supported"),
    (np.zeros(8, np.uint8), {}, "shape .* not supported"),
    (np.zeros((1, 5), np.uint8), {}, "5x1 px; at least 2x2"),
    (np.full((4, 4), 1.5), {}, r"must be in \[0, 1\].*got \[1.5, 1.5\]"),
    (np.array([[0.0, -0.1], [0.2, 0.3]]), {}, r"must be in \[0, 1\]"),
    (np.array([[0.0, np.inf], [0.2, 0.3]]), {}, r"got \[0, inf\]"),
    (np.full((4, 4), np.nan), {}, "all NaN"),
    (np.zeros((8, 8), np.uint8), {"mode": "fast"}, "unknown mode 'fast'"),
    (np.zeros((8, 8), np.uint8), {"sise": 64}, "'sise' is not an option"),
    (np.zeros((8, 8), np.uint8), {"size": 60}, "multiple of 16"),
    (np.zeros((8, 8), np.uint8), {"tile": 64}, "'tile' applies to mode='full' only"),
    (np.zeros((8, 8), np.uint8), {"output_format": "png"}, "'output_format' applies to the command"),
    (np.zeros((8, 8), np.uint8), {"mode": "full", "stretch": "log"}, "'stretch' applies to FITS input"),
    (np.zeros((8, 8), np.uint8), {"mode": "full", "tile": 64, "tile_overlap": 32}, "more than twice"),
])
def test_bad_input_raises_the_one_documented_error(pipe, image, options, reason):
    with pytest.raises(PipelineInputError, match=reason) as info:
        pipe.process(image, **options)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_bad_fits_input_raises_the_documented_error(tmp_path, pipe):
    bad = tmp_path / "nan.fits"
    fits.PrimaryHDU(np.full((8, 8), np.nan, np.float32)).writeto(bad)
    with pytest.raises(PipelineInputError, match="nan.fits: no finite pixel values"):
        pipe.process_fits(bad)
    with pytest.raises(PipelineInputError, match="<HDU>: no image HDU"):
        pipe.process_fits(fits.HDUList([fits.PrimaryHDU()]))
    with pytest.raises(PipelineInputError, match="no such file"):
        pipe.process_fits(tmp_path / "missing.fits")


def test_models_found_from_another_folder(tmp_path, monkeypatch, tiny_exports, real_images):
    """The bundled defaults and `checkpoints/<name>` paths resolve from any working directory."""
    from pipeline.bundled import ENV_VAR, default_model_dir, resolve_model

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    for kind in ("colorize", "srgan"):
        found = default_model_dir(kind)
        assert os.path.isfile(os.path.join(found, "saved_model.pb")) and os.path.basename(found) == kind
    gan = resolve_model("checkpoints/srgan_gan", "srgan")
    assert os.path.isfile(os.path.join(gan, "saved_model.pb"))
    # The command with its default models, run from here (the failing case), writes its output.
    write_png(str(tmp_path / "f.png"), read_image(real_images[5])[:64, :64])
    result = run(RunConfig(input="f.png", output="out", progress=False), log=lambda _: None)
    assert result.written == [str(tmp_path / "out" / "f_colour_x4.png")] and not result.failed


def test_env_var_points_at_another_models_folder(tmp_path, monkeypatch, tiny_exports):
    from pipeline.bundled import ENV_VAR

    models = tmp_path / "models"
    models.mkdir()
    for kind in ("colorize", "srgan"):
        os.symlink(tiny_exports[kind], models / kind)
    monkeypatch.setenv(ENV_VAR, str(models))
    monkeypatch.chdir(tmp_path)
    pipe = Pipeline.load()
    assert pipe.colorizer.path == str(models / "colorize") and pipe.upscaler.path == str(models / "srgan")
    assert not pipe.trained  # the tiny exports say trained=false, the bundled ones are trained
    # A model name given as a flag is also looked for there first.
    assert Pipeline.load(srgan_model="srgan").upscaler.path == str(models / "srgan")


def test_missing_model_lists_every_place_looked(tmp_path, monkeypatch):
    from pipeline.bundled import ENV_VAR, ModelNotFoundError, resolve_model, search_dirs
    from pipeline.models import ModelLoadError

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("checkpoints/srgan_nope", "srgan")
    message = str(info.value)
    places = [str(tmp_path / "checkpoints" / "srgan_nope")] + [os.path.join(d, "srgan_nope") for _, d in search_dirs()]
    assert len(places) >= 3 and str(tmp_path / "elsewhere" / "srgan_nope") in places
    for place in places:
        assert place in message
    with pytest.raises(ModelLoadError, match="srgan_nope: no such model folder; looked in"):
        Pipeline.load(srgan_model="checkpoints/srgan_nope")


def test_device_names(tiny_exports):
    import tensorflow as tf

    from pipeline.models import ModelLoadError

    pipe = Pipeline.load(tiny_exports["colorize"], tiny_exports["srgan"], device="cpu")
    assert pipe.upscaler.device == pipe.colorizer.device == "/CPU:0" and "UNTRAINED" in repr(pipe)
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(ModelLoadError, match="sees no GPU"):
            Pipeline.load(tiny_exports["colorize"], tiny_exports["srgan"], device="gpu")
