"""pipeline.run end to end with small freshly initialised exported models."""
import hashlib
import os
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from data.io import read_image
from data.writers import write_png
from pipeline.runner import RunConfig, run


def _hashes(folder):
    return {
        p: hashlib.sha256(open(os.path.join(folder, p), "rb").read()).hexdigest()
        for p in sorted(os.listdir(folder))
        if os.path.isfile(os.path.join(folder, p))
    }


@pytest.fixture()
def inputs(tmp_path, real_images, m51_fits):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(m51_fits, d / "m51.fits.gz")
    grey = read_image(real_images[0]).mean(axis=-1, keepdims=True)
    write_png(str(d / "grey.png"), grey[:200, :150])  # not square, not 224
    shutil.copy(real_images[1], d / "colour.png")  # colour input: luminance used
    return d


def _config(inputs, out, models, **kw):
    return RunConfig(input=str(inputs), output=str(out), colorize_model=models["colorize"],
                     srgan_model=models["srgan"], batch_size=2, progress=False, **kw)


def test_faithful_outputs_are_896_rgb_and_inputs_unchanged(tmp_path, inputs, tiny_exports):
    before = _hashes(inputs)
    messages = []
    result = run(_config(inputs, tmp_path / "out", tiny_exports, save_intermediate=True), log=messages.append)
    assert not result.failed and len(result.written) == 3
    for path in result.written:
        img = read_image(path)
        assert img.shape == (896, 896, 3)
    assert sorted(n for n in os.listdir(tmp_path / "out") if not n.startswith(".")) == sorted(
        f"{n}_colour{s}.png" for n in ("colour", "grey", "m51") for s in ("_x4", "224")
    )
    assert read_image(str(tmp_path / "out" / "grey_colour224.png")).shape == (224, 224, 3)
    assert _hashes(inputs) == before
    assert any("UNTRAINED" in m for m in messages) and any("luminance" in m for m in messages)


def test_bad_files_reported_and_others_done(tmp_path, inputs, tiny_exports):
    (inputs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    fits.PrimaryHDU(np.full((16, 16), np.nan, np.float32)).writeto(inputs / "nan.fits")
    messages = []
    result = run(_config(inputs, tmp_path / "out", tiny_exports), log=messages.append)
    failed = dict(result.failed)
    assert set(map(os.path.basename, failed)) == {"corrupt.png", "nan.fits"}
    assert "no finite pixel" in failed[str(inputs / "nan.fits")]
    assert len(result.written) == 3
    assert sum(m.startswith("error:") for m in messages) == 2


def test_skip_existing_and_never_overwrite_inputs(tmp_path, inputs, tiny_exports):
    first = run(_config(inputs, tmp_path / "out", tiny_exports))
    stamp = {p: os.stat(p).st_mtime_ns for p in first.written}
    again = run(_config(inputs, tmp_path / "out", tiny_exports, skip_existing=True))
    assert not again.written and len(again.skipped) == 3
    assert {p: os.stat(p).st_mtime_ns for p in first.written} == stamp
    # Output folder == input folder: outputs get new names, inputs stay as they were.
    before = _hashes(inputs)
    same = run(_config(inputs, inputs, tiny_exports))
    assert len(same.written) == 3 and all(os.path.dirname(p) == str(inputs) for p in same.written)
    assert {k: v for k, v in _hashes(inputs).items() if k in before} == before


def test_cli_exit_status(tmp_path, inputs, tiny_exports):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    models = [f"--colorize_model={tiny_exports['colorize']}", f"--srgan_model={tiny_exports['srgan']}"]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pipeline.run", *args], cwd=root, capture_output=True, text=True)

    (inputs / "bad.jpg").write_text("not a jpeg")
    res = cli(f"--input={inputs}", f"--output={tmp_path / 'o'}", *models)
    assert res.returncode == 1 and "bad.jpg" in res.stderr
    assert len([n for n in os.listdir(tmp_path / "o") if not n.startswith(".")]) == 3  # + the manifest
    assert cli(f"--input={tmp_path / 'missing'}", *models).returncode == 2
    res = cli(f"--input={inputs}", f"--colorize_model={tmp_path / 'none'}", f"--output={tmp_path / 'o2'}")
    assert res.returncode == 2 and "no such model folder" in res.stderr
    # Full-mode options in faithful mode are refused, not silently ignored; nothing is written.
    res = cli(f"--input={inputs}", f"--output={tmp_path / 'o3'}", "--stretch=sqrt", "--tile=128", *models)
    assert res.returncode != 0 and "--tile, --stretch: full-mode options; add --mode full" in res.stderr
    assert not (tmp_path / "o3").exists()


def test_full_mode_fits_keeps_wcs_and_luminance(tmp_path, m51_fits, tiny_exports):
    from pipeline.full import FullOptions

    out = tmp_path / "full"
    options = FullOptions(size=64, tile=96, tile_overlap=8, output_format="fits", report=True, residual_map=True)
    result = run(RunConfig(input=m51_fits, output=str(out), colorize_model=tiny_exports["colorize"],
                           srgan_model=tiny_exports["srgan"], mode="full", full=options, progress=False))
    assert len(result.written) == 1 and result.written[0].endswith("_colour_x4.fits")
    with fits.open(result.written[0]) as hdul:
        head, data = hdul[0].header, hdul[0].data
    assert data.shape == (3, 384 * 4, 384 * 4)
    w_in, w_out = WCS(fits.getheader(m51_fits)), WCS(head, naxis=2)
    pix = np.array([[5.0, 7.0], [200.0, 100.0]])
    np.testing.assert_allclose(w_out.wcs_pix2world((pix + 0.5) * 4 - 0.5, 0), w_in.wcs_pix2world(pix, 0))
    report = (out / "fidelity.csv").read_text().splitlines()
    assert report[0] == "input,output,luminance_mae,flux_psnr_db" and len(report) == 2
    assert float(report[1].split(",")[2]) < 1e-5  # colourisation keeps the luminance
    assert (out / "m51_colour_x4_residual.png").is_file()


def test_full_mode_raster_formats_agree(tmp_path, real_images, tiny_exports):
    from pipeline.full import FullOptions

    src = tmp_path / "grey.png"
    write_png(str(src), read_image(real_images[3]).mean(axis=-1, keepdims=True)[:100, :72])
    images = {}
    for fmt, ext in (("png", ".png"), ("png16", ".png"), ("tiff16", ".tif")):
        options = FullOptions(size=64, tile=64, tile_overlap=16, output_format=fmt)
        result = run(RunConfig(input=str(src), output=str(tmp_path / fmt), colorize_model=tiny_exports["colorize"],
                               srgan_model=tiny_exports["srgan"], mode="full", full=options, progress=False))
        assert result.written == [str(tmp_path / fmt / f"grey_colour_x4{ext}")], result.failed
        images[fmt] = read_image(result.written[0])
        assert images[fmt].shape == (400, 288, 3)
    # The 16-bit outputs hold the same picture; the 8-bit one is it rounded to 8 bits.
    np.testing.assert_allclose(images["png16"], images["tiff16"], atol=1e-6)
    # Both are roundings of one float picture x: |round8(x) - x| <= 0.5/255 and
    # |round16(x) - x| <= 0.5/65535, so they differ by at most the sum (reached when x sits
    # near a half-level of 8 bits; which pixels do depends on the CPU's float order, so the
    # bound must hold for any x), plus float32 error of reading levels back (1e-6).
    assert np.abs(images["png"] - images["png16"]).max() <= 0.5 / 255 + 0.5 / 65535 + 1e-6


def test_tiled_equals_untiled_on_512(tmp_path, real_images, tiny_exports):
    """Feathered tiles of the real SR model agree with one whole-image pass (< 2/255)."""
    from pipeline.models import load_model
    from pipeline.tiling import upscale_tiled

    sr = load_model(tiny_exports["srgan"], "srgan")
    img = np.tile(read_image(real_images[2]), (2, 2, 1))  # 512 x 512
    whole = np.clip(sr.run(img[None])[0], 0, 1)
    tiled = upscale_tiled(img, sr.run, 4, tile=160, overlap=48)
    assert np.abs(tiled - whole).max() < 2 / 255


def test_precision_and_xla_rebuild_the_same_generator(tmp_path, inputs, tiny_exports):
    from pipeline.models import ModelLoadError, load_model

    lr = np.random.default_rng(1).random((2, 12, 10, 3), dtype=np.float32)
    graph = load_model(tiny_exports["srgan"], "srgan").run(lr)
    rebuilt = load_model(tiny_exports["srgan"], "srgan", "float32", jit_compile=True)
    assert rebuilt.config["jit_compile"] is True
    np.testing.assert_allclose(rebuilt.run(lr), graph, atol=1e-5)
    bf16 = load_model(tiny_exports["srgan"], "srgan", "mixed_bfloat16").run(lr)
    assert bf16.dtype == np.float32 and bf16.shape == graph.shape
    assert 0 < np.abs(bf16 - graph).max() < 0.05  # bfloat16 has 8 bits of mantissa
    with pytest.raises(ModelLoadError, match="need an SR generator"):
        load_model(tiny_exports["colorize"], "colorize", "mixed_bfloat16")
    with pytest.raises(ValueError, match="unknown precision"):
        load_model(tiny_exports["srgan"], "srgan", "float64")
    result = run(_config(inputs, tmp_path / "o", tiny_exports, precision="mixed_bfloat16"))
    assert len(result.written) == 3 and not result.failed
