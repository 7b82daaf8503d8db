"""Reliability on hostile but realistic inputs (issue 20): outputs never over an input, names unique and
stable, --skip_existing that knows each output's input, camera formats, bombs, SIP, clear messages.

All data is generated here, tiny.
"""
import os

import numpy as np
import pytest

from data.io import read_image
from data.writers import write_png
from pipeline.inference import exclude_own_outputs, plan_jobs

BOMB = 45000  # 45000^2 = 2.0 Gpx declared: over both modes' limits


_LOADED = {}


@pytest.fixture(autouse=True)
def _models_loaded_once(monkeypatch):
    """These tests are about files and names: each exported model is loaded (and probed) once for the
    module, not once per `run()` (loading the colouriser's SavedModel costs seconds)."""
    import pipeline.models as models

    real = models.load_model

    def cached(path, kind, *args, **kwargs):
        key = (path, kind, args, tuple(sorted(kwargs.items())))
        if key not in _LOADED:
            _LOADED[key] = real(path, kind, *args, **kwargs)
        return _LOADED[key]

    monkeypatch.setattr(models, "load_model", cached)


def _grey(path, seed=0, size=(40, 48)):
    write_png(str(path), np.random.default_rng(seed).random(size + (1,), dtype=np.float32))
    return str(path)


def _config(inputs, out, models, **kw):
    from pipeline.runner import RunConfig

    # Working size 64 (not 224): these tests are about files and names; small frames keep them fast.
    return RunConfig(input=str(inputs), output=str(out), colorize_model=models["colorize"],
                     srgan_model=models["srgan"], batch_size=2, progress=False, size=64, **kw)


def _snapshot(folder):
    """{relative path: bytes} of every non-hidden file under `folder`."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            if not f.startswith("."):
                p = os.path.join(root, f)
                out[os.path.relpath(p, folder)] = open(p, "rb").read()
    return out


# 1. Output over input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ["symlink", "dotdot"])
def test_output_reaching_the_input_folder_by_another_path_never_names_an_input(tmp_path, route):
    inp = tmp_path / "in"
    inp.mkdir()
    # An input that happens to be named like the output of another input.
    sources = [_grey(inp / "x.png"), _grey(inp / "x_colour_x4.png", 1), _grey(inp / "x_colour224.png", 2)]
    if route == "symlink":
        (tmp_path / "link").symlink_to(inp, target_is_directory=True)
        out = str(tmp_path / "link")
    else:
        (inp / "sub").mkdir()
        out = str(inp / "sub" / "..")
    jobs = plan_jobs(sources, str(inp), out, suffix="_colour_x4", save_intermediate=True)
    real_inputs = {os.path.realpath(s) for s in sources}
    written = [j.output for j in jobs] + [j.intermediate for j in jobs]
    assert not {os.path.realpath(p) for p in written} & real_inputs
    assert len({os.path.realpath(p) for p in written}) == len(written)


def test_existing_symlink_to_an_input_is_not_an_output_name(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    src = _grey(inp / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(src, out / "a_colour_x4.png")  # same file as the input under the output's name
    (job,) = plan_jobs([src], str(inp), str(out), suffix="_colour_x4", save_intermediate=False)
    assert os.path.basename(job.output) == "a.png_colour_x4.png"


def test_output_tree_inside_the_input_is_not_an_input(tmp_path):
    inp = tmp_path / "in"
    (inp / "out").mkdir(parents=True)
    keep = _grey(inp / "a.png")
    mine = _grey(inp / "out" / "a_colour_x4.png")
    kept, dropped = exclude_own_outputs([keep, mine], str(inp), str(inp / "out" / "."))
    assert (kept, dropped) == ([keep], [mine])
    # Output == input: only files the tool recorded are dropped.
    kept, dropped = exclude_own_outputs([keep, mine], str(inp), str(inp), recorded={os.path.realpath(mine)})
    assert (kept, dropped) == ([keep], [mine])


@pytest.mark.parametrize("where", ["same", "inside"])
def test_reruns_into_the_input_folder_never_process_their_own_outputs(tmp_path, tiny_exports, where):
    from pipeline.runner import run

    inp = tmp_path / "in"
    inp.mkdir()
    _grey(inp / "a.png")
    _grey(inp / "b.png", 1)
    before = _snapshot(inp)
    out = inp if where == "same" else inp / "results"
    first = run(_config(inp, out, tiny_exports, recursive=True))
    assert len(first.written) == 2 and not first.failed
    again = run(_config(inp, out, tiny_exports, recursive=True, skip_existing=True))
    assert not again.written and len(again.skipped) == 2
    third = run(_config(inp, out, tiny_exports, recursive=True))  # no --skip_existing: redone, not doubled
    assert sorted(third.written) == sorted(first.written)
    after = _snapshot(inp)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [k for k in after if "_colour_x4_colour" in k or k.count("colour_x4") > 1]
    assert len(after) == len(before) + 2


# 2. Unique, stable output names; --skip_existing knows each output's input ----------------------------------

def _fits(path, data=None, **header):
    from astropy.io import fits

    data = np.random.default_rng(3).random((24, 20)).astype(np.float32) if data is None else data
    hdu = fits.PrimaryHDU(data)
    for k, v in header.items():
        hdu.header[k] = v
    hdu.writeto(path)
    return str(path)


def test_names_depend_only_on_the_input_itself(tmp_path):
    from pipeline.inference import name_candidates

    root = str(tmp_path)
    # Non-ASCII and lossy names always carry a hash of their relative path: never "_" for everyone.
    assert name_candidates(os.path.join(root, "日本.png"), root) != name_candidates(os.path.join(root, "中国.png"), root)
    plain = name_candidates(os.path.join(root, "a.png"), root)
    assert plain[:2] == ["a", "a.png"] and plain[2].startswith("a.png-") and len(plain[2]) == len("a.png-") + 8
    alone = plan_jobs([os.path.join(root, "日本.png")], root, "/o", "_colour_x4", False)[0].output
    both = plan_jobs([os.path.join(root, n) for n in ("中国.png", "日本.png")], root, "/o", "_colour_x4", False)
    assert both[1].output == alone and both[0].output != alone
    assert all(os.path.basename(j.output).isascii() for j in both)


@pytest.mark.parametrize("first,added", [("a.png", "a.fits"), ("日本.png", "中国.png")])
def test_a_new_input_whose_name_collides_is_processed_not_skipped(tmp_path, tiny_exports, first, added):
    from pipeline.runner import run

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    _grey(inp / first)
    one = run(_config(inp, out, tiny_exports, skip_existing=True))
    (done,) = one.written
    stamp = os.stat(done).st_mtime_ns
    if added.endswith(".fits"):
        _fits(inp / added)
    else:
        _grey(inp / added, 5)
    two = run(_config(inp, out, tiny_exports, skip_existing=True))
    assert two.skipped == [str(inp / first)]
    assert len(two.written) == 1 and two.written[0] != done
    assert os.stat(done).st_mtime_ns == stamp  # the first output kept its name and was not redone
    if first == "a.png":
        # a.fits sorts before a.png, yet a.png keeps the plain name it was given first.
        assert os.path.basename(done) == "a_colour_x4.png"
        assert os.path.basename(two.written[0]) == "a.fits_colour_x4.png"
    assert not run(_config(inp, out, tiny_exports, skip_existing=True)).written


def test_skip_existing_redoes_a_changed_input_and_an_unrecorded_output(tmp_path, tiny_exports):
    from pipeline.manifest import MANIFEST_NAME
    from pipeline.runner import run

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    _grey(inp / "a.png")
    _grey(inp / "b.png", 1)
    run(_config(inp, out, tiny_exports))
    _grey(inp / "a.png", 7)  # same name, new content
    os.utime(inp / "a.png", ns=(1, 1))  # a different mtime even on a coarse clock
    again = run(_config(inp, out, tiny_exports, skip_existing=True))
    assert [os.path.basename(p) for p in again.written] == ["a_colour_x4.png"]
    assert again.skipped == [str(inp / "b.png")]
    # An output file that no manifest line accounts for (e.g. another tool's) is not trusted.
    os.unlink(out / MANIFEST_NAME)
    third = run(_config(inp, out, tiny_exports, skip_existing=True))
    assert len(third.written) == 2 and not third.skipped


def test_manifest_lines_survive_a_cut_last_line(tmp_path):
    from pipeline import manifest

    src = _grey(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    target = str(out / "a_colour_x4.png")
    open(target, "wb").write(b"x")
    manifest.record(str(out), [(src, target, [])])
    with open(out / manifest.MANIFEST_NAME, "a") as f:
        f.write('{"output": "b_col')  # a run killed in the middle of its line
    entries = manifest.read_manifest(str(out))
    assert list(entries) == [os.path.realpath(target)]
    assert manifest.is_up_to_date(target, src, entries)
    assert not manifest.is_up_to_date(target, _grey(tmp_path / "other.png"), entries)


# 3. Readers: camera formats ----------------------------------------------------------------------------------

def _patches():
    """uint8 RGB 32x48 of six flat 16x16 colour patches (aligned to JPEG's 8x8 blocks)."""
    colours = np.array([[200, 30, 40], [20, 180, 60], [30, 50, 220], [240, 240, 20], [10, 10, 10], [128, 200, 250]],
                       np.uint8)
    return np.kron(colours.reshape(2, 3, 3), np.ones((16, 16, 1), np.uint8)).astype(np.uint8)


def test_cmyk_jpeg_reads_as_its_rgb(tmp_path):
    from PIL import Image

    rgb = _patches()
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95, subsampling=0)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    got = read_image(str(tmp_path / "cmyk.jpg"))
    assert got.shape == (32, 48, 3)
    # A flat 8x8 block is coded by its DC term alone: at quality 95 the DC step is 2 levels (error <= 1), plus
    # 0.5 from each of the encoder's and decoder's roundings and of the CMYK<->RGB conversions: 3 levels.
    np.testing.assert_allclose(got * 255, rgb, atol=3)


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    img = np.zeros((16, 32), np.uint8)
    img[:8, :8] = 255  # a white block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: shown rotated 90 degrees clockwise
    Image.fromarray(img).save(tmp_path / "portrait.jpg", quality=95, exif=exif)
    got = read_image(str(tmp_path / "portrait.jpg"))[..., 0]
    assert got.shape == (32, 16)  # upright: taller than wide
    # Rotated clockwise, the stored top-left corner is shown top-right (8x8 flat blocks: DC error <= 2 levels).
    np.testing.assert_allclose(got * 255, np.rot90(img, k=-1), atol=2)


@pytest.mark.parametrize("ext,kw", [(".gif", {}), (".bmp", {}), (".webp", {"lossless": True})])
def test_gif_bmp_webp_are_read_and_listed(tmp_path, ext, kw):
    from PIL import Image

    from data.io import list_images

    rgb = _patches()
    Image.fromarray(rgb).save(tmp_path / f"x{ext}", **kw)  # six colours: GIF's palette holds them exactly
    assert list_images(str(tmp_path)) == [str(tmp_path / f"x{ext}")]
    np.testing.assert_array_equal(np.round(read_image(str(tmp_path / f"x{ext}")) * 255), rgb)


def test_tiff_stack_gives_its_first_page_not_colour_channels(tmp_path):
    import tifffile

    from data.io import InputWarning

    stack = (np.random.default_rng(0).random((4, 12, 10)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")  # 4 grey pages
    with pytest.warns(InputWarning, match=r"stack.tif: TIFF with 4 pages: page 1 used"):
        got = read_image(str(tmp_path / "stack.tif"))
    np.testing.assert_array_equal(np.round(got[..., 0] * 255), stack[0])
    planar = (np.random.default_rng(1).random((3, 12, 10)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(np.round(read_image(str(tmp_path / "planar.tif")) * 255), np.moveaxis(planar, 0, -1))


def _minmax(path):
    from data.io import read_fits

    f = read_fits(path, stretch="linear", interval="minmax")
    return f, f.image[::-1, :, 0] * (f.stretch.vmax - f.stretch.vmin) + f.stretch.vmin


def test_uint16_and_scaled_fits_with_blank_are_read(tmp_path):
    from astropy.io import fits

    u16 = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 130 + 1000).astype(np.uint16)
    fits.PrimaryHDU(u16).writeto(tmp_path / "u16.fits")  # stored as int16 with BZERO = 32768
    assert fits.getheader(tmp_path / "u16.fits")["BZERO"] == 32768
    f, values = _minmax(str(tmp_path / "u16.fits"))
    assert (f.stretch.vmin, f.stretch.vmax) == (float(u16.min()), float(u16.max()))
    # Linear stretch over [min, max], inverted: float32 rounding of values < 65536, relative 2**-24.
    np.testing.assert_allclose(values, u16, rtol=0, atol=65536 * 2**-23)

    stored = (np.arange(20 * 24).reshape(20, 24) - 200).astype(np.int16)
    hdu = fits.PrimaryHDU(stored)
    hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 0.5, 10.0, -200
    hdu.writeto(tmp_path / "scaled.fits")
    f, values = _minmax(str(tmp_path / "scaled.fits"))
    physical = stored * 0.5 + 10.0
    blank = stored == -200
    assert f.stretch.vmin == physical[~blank].min()  # the BLANK pixel is not data
    assert f.image[::-1, :, 0][blank].tolist() == [0.0]
    np.testing.assert_allclose(values[~blank], physical[~blank], atol=300 * 2**-23)


def test_gzipped_fits_cube_says_which_plane(tmp_path):
    import gzip

    from astropy.io import fits

    from data.io import InputWarning, read_fits

    cube = np.random.default_rng(0).random((3, 16, 20)).astype(np.float32)
    cube[0, 0, 0] = 5.0  # plane 0 has the maximum
    buf = tmp_path / "cube.fits"
    fits.PrimaryHDU(cube).writeto(buf)
    (tmp_path / "cube.fits.gz").write_bytes(gzip.compress(buf.read_bytes()))
    for path in (buf, tmp_path / "cube.fits.gz"):
        with pytest.warns(InputWarning) as got:
            f = read_fits(str(path), stretch="linear", interval="minmax")
        assert [str(w.message) for w in got] == [f"{path}: data cube of shape (3, 16, 20): plane 1 of 3 used"]
        assert f.plane == 0 and f.stretch.vmax == 5.0


def test_astropy_warnings_are_said_once_naming_the_file(tmp_path):
    import warnings

    from astropy.io import fits

    from data.io import InputWarning, read_fits

    fits.PrimaryHDU(np.random.default_rng(0).random((8, 8)).astype(np.float32)).writeto(tmp_path / "w.fits")
    raw = bytearray((tmp_path / "w.fits").read_bytes())
    raw += b"\0" * 2880  # trailing bytes after the last HDU: astropy warns about them
    (tmp_path / "w.fits").write_bytes(bytes(raw))
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        read_fits(str(tmp_path / "w.fits"))
    assert got and all(w.category is InputWarning and str(w.message).startswith(f"{tmp_path / 'w.fits'}: ")
                       for w in got)
    assert len({str(w.message) for w in got}) == len(got)


def test_run_says_which_plane_and_which_files_it_cannot_read(tmp_path, tiny_exports):
    from astropy.io import fits

    from pipeline.runner import run

    inp = tmp_path / "in"
    inp.mkdir()
    fits.PrimaryHDU(np.random.default_rng(0).random((2, 16, 20)).astype(np.float32)).writeto(inp / "cube.fits")
    (inp / "photo.cr2").write_bytes(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(100))  # a camera raw file
    (inp / "new\nline.png").write_text("not a png")  # a newline in a file name (item 6)
    _png_declaring(inp / "bomb.png", BOMB, BOMB)  # item 4, through the runner
    messages = []
    result = run(_config(inp, tmp_path / "out", tiny_exports), log=messages.append)
    assert len(result.written) == 1
    assert [m for m in messages if m.startswith("warning:")] == [
        f"warning: {inp / 'cube.fits'}: data cube of shape (2, 16, 20): plane 1 of 2 used"]
    failed = dict(result.failed)
    assert set(failed) == {str(inp / n) for n in ("photo.cr2", "new\nline.png", "bomb.png")}
    assert "format not supported" in failed[str(inp / "photo.cr2")]
    assert "refused before decoding" in failed[str(inp / "bomb.png")]
    errors = [m for m in messages if m.startswith("error:")]
    assert len(errors) == 3 and all("\n" not in m for m in messages)
    assert f"error: {inp}/new\\nline.png: cannot decode image" in "".join(errors)


# 4. Decompression bombs: the declared size is refused before decoding ---------------------------------------


def _png_declaring(path, width, height, depth=8):
    """A PNG whose IHDR declares width x height (CRC fixed) but whose data is a tiny 8x8 frame's."""
    import struct
    import zlib

    from data.writers import encode_png

    real = bytearray(encode_png(np.zeros((8, 8, 1), np.float32), bits=16 if depth == 16 else 8))
    real[16:24] = struct.pack(">II", width, height)
    real[29:33] = struct.pack(">I", zlib.crc32(bytes(real[12:29])))
    path.write_bytes(bytes(real))
    return str(path)


def _tiff_declaring(path, width, height):
    """A classic little-endian TIFF whose ImageWidth/ImageLength tags declare width x height."""
    import struct

    import tifffile

    tifffile.imwrite(path, np.zeros((8, 8), np.uint8))
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", raw, 4)[0]
    for i in range(struct.unpack_from("<H", raw, ifd)[0]):
        at = ifd + 2 + 12 * i
        tag = struct.unpack_from("<H", raw, at)[0]
        if tag in (256, 257):
            struct.pack_into("<HHII", raw, at, tag, 4, 1, width if tag == 256 else height)  # type 4 = LONG
    path.write_bytes(bytes(raw))
    return str(path)


def _jpeg_declaring(path, width, height):
    """A JPEG whose SOF0 marker declares width x height."""
    import struct

    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, quality=90)
    raw = bytearray(path.read_bytes())
    sof = raw.index(b"\xff\xc0")
    struct.pack_into(">HH", raw, sof + 5, height, width)
    path.write_bytes(bytes(raw))
    return str(path)


def _fits_declaring(path, width, height, gz=False):
    """A FITS header declaring a width x height uint8 frame, followed by one block of data."""
    import gzip

    from astropy.io import fits

    header = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 2), ("NAXIS1", width), ("NAXIS2", height)])
    raw = header.tostring().encode("ascii") + bytes(2880)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return str(path)


@pytest.mark.parametrize("kind", ["png8", "png16", "tiff", "jpeg", "fits", "fits.gz"])
def test_bombs_are_refused_from_their_header(tmp_path, kind, monkeypatch):
    import data.io
    from data.io import ImageReadError

    make = {"png8": lambda: _png_declaring(tmp_path / "b.png", BOMB, BOMB),
            "png16": lambda: _png_declaring(tmp_path / "b.png", BOMB, BOMB, depth=16),
            "tiff": lambda: _tiff_declaring(tmp_path / "b.tif", BOMB, BOMB),
            "jpeg": lambda: _jpeg_declaring(tmp_path / "b.jpg", BOMB, BOMB),
            "fits": lambda: _fits_declaring(tmp_path / "b.fits", BOMB, BOMB),
            "fits.gz": lambda: _fits_declaring(tmp_path / "b.fits.gz", BOMB, BOMB, gz=True)}
    path = make[kind]()

    def no_decoding(*a, **k):
        raise AssertionError("decoded before the size was checked")

    monkeypatch.setattr(data.io, "_read_png16", no_decoding)
    monkeypatch.setattr(data.io, "_read_pillow", no_decoding)
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    assert str(e.value) == (f"{path}: image declares {BOMB}x{BOMB} px (2025.0 Mpx), over this mode's limit of "
                            "536.9 Mpx; refused before decoding")


def test_faithful_mode_has_the_smaller_limit(tmp_path, monkeypatch):
    import pipeline.inference as inference
    from data.io import ImageReadError

    path = _png_declaring(tmp_path / "big.png", 12000, 12000)  # 144 Mpx: over 2**27, under 2**29
    with pytest.raises(ImageReadError, match=r"12000x12000 px \(144.0 Mpx\), over this mode's limit of 134.2 Mpx"):
        inference.load_grey(path, 64)
    with pytest.raises(ImageReadError, match="truncated"):  # full mode's bound lets it through to decoding
        read_image(path)
    # A real small frame over a small limit: refused the same way, whatever the format.
    small = _fits(tmp_path / "s.fits")
    monkeypatch.setattr(inference, "MAX_PIXELS", 24 * 20 - 1)
    with pytest.raises(ImageReadError, match="20x24 px"):
        inference.load_grey(small, 64)


# 5. SIP distortion in a FITS WCS ------------------------------------------------------------------------------

def _sip_header():
    from astropy.io import fits

    h = fits.Header()
    h.update({"NAXIS": 2, "NAXIS1": 200, "NAXIS2": 160, "CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP",
              "CRVAL1": 202.47, "CRVAL2": 47.19, "CRPIX1": 90.5, "CRPIX2": 70.25,
              "CD1_1": -2.8e-4, "CD1_2": 1.1e-5, "CD2_1": 1.3e-5, "CD2_2": 2.8e-4,
              "A_ORDER": 2, "A_2_0": 2.1e-5, "A_1_1": -1.2e-5, "A_0_2": 3.0e-6,
              "B_ORDER": 2, "B_2_0": -4.0e-6, "B_1_1": 1.6e-5, "B_0_2": 2.4e-5,
              "AP_ORDER": 2, "AP_1_0": 1.0e-6, "AP_2_0": -2.1e-5, "AP_1_1": 1.2e-5, "AP_0_2": -3.0e-6,
              "BP_ORDER": 2, "BP_0_0": 2.0e-3, "BP_2_0": 4.0e-6, "BP_1_1": -1.6e-5, "BP_0_2": -2.4e-5})
    return h


def test_sip_distortion_is_rescaled_with_the_pixel_grid():
    import warnings

    from astropy.wcs import WCS

    from pipeline.fits_out import scale_header

    s = 4
    lr_header = _sip_header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy notes that the AP/BP given are not an exact inverse
        lr, hr = WCS(lr_header), WCS(scale_header(lr_header, s))
    assert lr.sip is not None and hr.sip is not None
    # LR pixel centres (0-based x) over the frame, corners included, where distortion is largest.
    x, y = np.meshgrid(np.linspace(0, 199, 9), np.linspace(0, 159, 7))
    x, y = x.ravel(), y.ravel()
    X, Y = (x + 0.5) * s - 0.5, (y + 0.5) * s - 0.5  # the same points on the HR grid (the CRPIX rule)
    ra, dec = lr.all_pix2world(x, y, 0)
    RA, DEC = hr.all_pix2world(X, Y, 0)
    sep = np.hypot((RA - ra) * np.cos(np.radians(dec)), DEC - dec) * 3600
    assert sep.max() < 0.01, sep.max()
    # Unscaled SIP would be off by far more on this frame (what was wrong before).
    raw = lr_header.copy()
    raw["CRPIX1"], raw["CRPIX2"] = (raw["CRPIX1"] - 0.5) * s + 0.5, (raw["CRPIX2"] - 0.5) * s + 0.5
    for k in ("CD1_1", "CD1_2", "CD2_1", "CD2_2"):
        raw[k] /= s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        RA0, DEC0 = WCS(raw).all_pix2world(X, Y, 0)
    assert np.hypot((RA0 - ra) * np.cos(np.radians(dec)), DEC0 - dec).max() * 3600 > 1.0
    # The forward polynomial (A/B; astropy's sip_pix2foc, origin 1: 1-based pixels in, offsets from CRPIX
    # out) gives s times the LR offsets; the inverse one (AP/BP; sip_foc2pix: 1-based pixels out) gives the
    # LR pixel under the CRPIX rule p' = (p - 0.5) s + 0.5 (float64 on values < 1e3 px: 1e-9).
    foc = lr.sip_pix2foc(np.c_[x + 1, y + 1], 1)
    FOC = hr.sip_pix2foc(np.c_[X + 1, Y + 1], 1)
    np.testing.assert_allclose(FOC, foc * s, rtol=0, atol=1e-9)
    np.testing.assert_allclose(hr.sip_foc2pix(FOC, 1), (lr.sip_foc2pix(foc, 1) - 0.5) * s + 0.5, rtol=0, atol=1e-9)


# 6. Clear messages; concurrent runs ----------------------------------------------------------------------------

def _saved_model(path, input_name, fn):
    import tensorflow as tf

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=input_name)])
        def serve(self, x):
            return {"sr": fn(x)}

    m = M()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return str(path)


def test_wrong_models_are_refused_in_one_line(tmp_path, tiny_exports):
    import shutil

    import tensorflow as tf

    from pipeline.models import ModelLoadError, load_model

    def x4(x):
        return tf.image.resize(x, tf.shape(x)[1:3] * 4, "nearest")

    cases = {
        _saved_model(tmp_path / "other_input", "image", x4): "with the one input 'lr', found ['image']",
        _saved_model(tmp_path / "identity", "lr", tf.identity): ("does not upscale 4x: a 16x16x3 probe gave "
                                                                 "16x16x3, expected 64x64x3"),
    }
    broken = tmp_path / "broken"
    shutil.copytree(tiny_exports["srgan"], broken)
    (broken / "config.json").write_text('{"scale": 4,')
    cases[str(broken)] = "config.json: cannot read the model's config.json (JSONDecodeError"
    for path, expected in cases.items():
        with pytest.raises(ModelLoadError) as e:
            load_model(path, "srgan")
        message = str(e.value)
        assert message.startswith(path) and expected in message and "\n" not in message, message
    assert load_model(_saved_model(tmp_path / "good", "lr", x4), "srgan").run(np.zeros((1, 4, 4, 3))).shape == (
        1, 16, 16, 3)


def test_newline_in_a_file_name_stays_on_one_line(tmp_path):
    from data.io import ImageReadError

    path = tmp_path / "a\nb.png"
    path.write_text("text")
    with pytest.raises(ImageReadError) as e:
        read_image(str(path))
    assert e.value.path == str(path)  # the real name is kept for the caller
    assert str(e.value) == f"{tmp_path}/a\\nb.png: cannot decode image: content is not PNG, JPEG, TIFF or FITS " \
        "(nor GIF, BMP, WebP)"


def test_stale_temporaries_of_live_runs_are_kept(tmp_path):
    import subprocess
    import sys

    from common.files import atomic_file
    from pipeline.inference import Job
    from pipeline.runner import _remove_stale_temporaries

    with atomic_file(str(tmp_path / "x.png")) as f:
        assert os.path.basename(f.name).startswith(f".tmp-{os.getpid()}-")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        out = "a_colour_x4.png"
        names = {"live": f".tmp-{live.pid}-abcdefgh{out}", "dead": f".tmp-{dead.pid}-abcdefgh{out}",
                 "old": f".tmp-abcdefgh{out}", "other": f".tmp-{dead.pid}-abcdefghxa_colour_x4.png"}
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        _remove_stale_temporaries([Job(source="a.png", output=str(tmp_path / out))])
        left = set(os.listdir(tmp_path))
        # The live run's file stays; the killed run's and the pid-less legacy one go; another output's stays.
        assert names["live"] in left and names["other"] in left
        assert names["dead"] not in left and names["old"] not in left
    finally:
        live.kill()
        live.wait()
