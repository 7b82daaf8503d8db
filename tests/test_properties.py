"""Property-based tests (hypothesis): readers, stretch, tiling and output names.

Random shapes, dtypes, NaN patterns and byte damage must give either a valid
image or our own `ImageReadError`, never another exception; tiles must cover
every frame exactly; output names must stay inside the output folder.
"""
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from data.io import ImageReadError, Stretch, fit_stretch, read_image
from data.tiles import tile_boxes, tile_starts
from pipeline.inference import plan_jobs
from pipeline.tiling import iter_upscaled_bands, plan_tiles

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_image(img: np.ndarray) -> None:
    assert img.dtype == np.float32 and img.ndim == 3 and img.shape[-1] in (1, 3)
    assert np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1


def _read_or_clear_error(path: str):
    try:
        img = read_image(path)
    except ImageReadError as e:
        message = str(e)
        assert message.startswith(path) and "\n" not in message and len(message) < 2000
        return None
    _check_image(img)
    return img


def _write_png(path: str, pixels: np.ndarray) -> None:
    """Any 8/16-bit grey, RGB or RGBA array as PNG (pypng: PIL cannot write 16-bit colour)."""
    import png

    planes = 1 if pixels.ndim == 2 else pixels.shape[2]
    writer = png.Writer(pixels.shape[1], pixels.shape[0], greyscale=planes == 1, alpha=planes == 4,
                        bitdepth=pixels.dtype.itemsize * 8)
    with open(path, "wb") as f:
        writer.write(f, pixels.reshape(pixels.shape[0], -1).tolist())


def _write_tiff(path: str, pixels: np.ndarray, grey: bool) -> None:
    """A grey or RGB(A) array as TIFF, its layout said outright.

    Left to guess, tifffile takes a leading axis of 3 or 4 for planar colour, so a
    3-row, 1-column grey raster `[3, 1, 1]` would be written as one RGB pixel.
    """
    import tifffile

    if grey:
        tifffile.imwrite(path, pixels, photometric="minisblack")
    else:
        tifffile.imwrite(path, pixels, photometric="rgb", planarconfig="contig")


shapes = st.tuples(st.integers(1, 24), st.integers(1, 24), st.sampled_from([None, 1, 3, 4]))


@SETTINGS
@given(shape=shapes, dtype=st.sampled_from([np.uint8, np.uint16]), ext=st.sampled_from([".png", ".tif"]),
       data=st.data())
def test_integer_rasters_read_back_in_range(shape, dtype, ext, data):
    h, w, c = shape
    full = (h, w) if c is None else (h, w, c)
    if ext == ".png" and c == 1:
        full = (h, w)  # PNG has no explicit single-channel 3-D layout
    pixels = data.draw(arrays(dtype, full))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x" + ext)
        if ext == ".png":
            _write_png(path, pixels)
        else:
            _write_tiff(path, pixels, grey=c in (None, 1))
        img = _read_or_clear_error(path)
    if img is not None:
        assert img.shape[:2] == (h, w)
        if c in (None, 1):
            # Grey in, grey out, scaled by the dtype's range.
            expected = pixels.reshape(h, w).astype(np.float64) / np.iinfo(dtype).max
            np.testing.assert_allclose(img[..., 0], expected, atol=1e-6)


def test_three_row_grey_tiff_stays_grey():
    # The case that once fooled the writer above: 3 rows, 1 column, 1 channel.
    pixels = np.array([[[0]], [[128]], [[255]]], np.uint8)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.tif")
        _write_tiff(path, pixels, grey=True)
        img = read_image(path)
    assert img.shape[:2] == (3, 1)
    np.testing.assert_allclose(img[:, 0, 0], [0, 128 / 255, 1], atol=1e-6)


finite_or_not = st.one_of(st.floats(-1e6, 1e6, width=32), st.just(np.nan), st.just(np.inf), st.just(-np.inf))


@SETTINGS
@given(pixels=arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 20)), elements=finite_or_not),
       fmt=st.sampled_from(["fits", "tif"]))
def test_float_rasters_with_nan_patterns(pixels, fmt):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x." + fmt)
        if fmt == "fits":
            from astropy.io import fits

            fits.PrimaryHDU(pixels).writeto(path)
        else:
            import imageio.v3 as iio

            iio.imwrite(path, pixels)
        img = _read_or_clear_error(path)
    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0 or finite.min() == finite.max():
        # Nothing to show: the FITS reader must say so (a TIFF may be read as a flat image).
        if fmt == "fits":
            assert img is None
    if img is not None:
        assert img.shape[:2] == pixels.shape


@SETTINGS
@given(cut=st.floats(0.0, 0.99), flip=st.integers(0, 10_000), fmt=st.sampled_from(["png", "jpg", "fits", "tif"]))
def test_damaged_files_give_our_error_or_an_image(tmp_path_factory, cut, flip, fmt):
    import imageio.v3 as iio

    rng = np.random.default_rng(flip)
    pixels = (rng.random((16, 20)) * 60000).astype(np.uint16)
    if fmt == "fits":
        from astropy.io import fits

        path = str(tmp_path_factory.mktemp("f") / "x.fits")
        fits.PrimaryHDU(pixels).writeto(path)
        payload = open(path, "rb").read()
    else:
        arr = (pixels // 256).astype(np.uint8) if fmt == "jpg" else pixels
        payload = iio.imwrite("<bytes>", arr, extension="." + fmt)
    payload = bytearray(payload[: max(1, int(len(payload) * (1 - cut)))])
    payload[flip % len(payload)] ^= 0xFF  # one flipped byte anywhere
    path = str(tmp_path_factory.mktemp("d") / ("x." + fmt))
    with open(path, "wb") as f:
        f.write(bytes(payload))
    _read_or_clear_error(path)


@SETTINGS
@given(pixels=arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(2, 30)),
                     elements=st.one_of(st.floats(-1e6, 1e6), st.just(np.nan))),
       name=st.sampled_from(["asinh", "linear", "sqrt", "log"]),
       interval=st.sampled_from(["percentile", "zscale", "minmax"]))
def test_stretch_maps_into_unit_range_and_inverts(pixels, name, interval):
    try:
        stretch = fit_stretch("x.fits", pixels, stretch=name, interval=interval)
    except ImageReadError as e:
        finite = pixels[np.isfinite(pixels)]
        assert finite.size == 0 or finite.min() == finite.max(), str(e)
        return
    assert isinstance(stretch, Stretch) and stretch.vmax > stretch.vmin
    out = stretch.apply(pixels, rows_per_chunk=7)
    assert out.dtype == np.float32 and out.shape == pixels.shape
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert (out[~np.isfinite(pixels)] == 0).all()
    # Inside the interval the stretch is undone to float32 precision of the range.
    inside = np.isfinite(pixels) & (pixels > stretch.vmin) & (pixels < stretch.vmax)
    assume(inside.any())
    back = stretch.invert(out)
    span = stretch.vmax - stretch.vmin
    tol = 1e-3 * span if name == "log" else 1e-4 * span
    np.testing.assert_allclose(back[inside], pixels[inside], atol=tol)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 5000), tile=st.integers(1, 600), data=st.data())
def test_tile_starts_cover_exactly(length, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts == sorted(set(starts))
    if tile >= length:
        assert starts == [0]
        return
    assert starts[-1] + tile == length
    gaps = np.diff(starts)
    assert (tile - gaps >= overlap).all()  # neighbours share at least `overlap`
    assert (gaps > 0).all()


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), tile=st.integers(8, 96), data=st.data())
def test_tile_boxes_cover_every_pixel(h, w, tile, data):
    overlap = data.draw(st.integers(0, (tile - 1) // 2))
    count = np.zeros((h, w), np.int32)
    for b in plan_tiles(h, w, tile, overlap):
        assert b.top >= 0 and b.left >= 0 and b.top + b.height <= h and b.left + b.width <= w
        count[b.top : b.top + b.height, b.left : b.left + b.width] += 1
    assert count.min() >= 1
    assert len(tile_boxes(h, w, tile, tile, overlap)) == len(plan_tiles(h, w, tile, overlap))


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), tile=st.integers(6, 40), scale=st.sampled_from([1, 2, 4]),
       seed=st.integers(0, 2**16), data=st.data())
def test_blended_tiles_equal_the_untiled_result(h, w, tile, scale, seed, data):
    """A per-pixel upscaler (nearest neighbour) has no seams: tiling must give its untiled output exactly."""
    overlap = data.draw(st.integers(0, (tile - 1) // 2))
    image = np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)

    def nearest(x):  # a stack of tiles [N, h, w, C], or one image [h, w, C]
        return np.repeat(np.repeat(x, scale, axis=-3), scale, axis=-2)

    out = np.full((h * scale, w * scale, 3), -1.0, np.float32)
    covered = np.zeros(h, np.int32)
    for top, end, rows in iter_upscaled_bands(image, nearest, scale, tile, overlap):
        out[top * scale : end * scale] = rows
        covered[top:end] += 1
    assert (covered == 1).all()  # bands cover every input row exactly once
    np.testing.assert_allclose(out, nearest(image), atol=1e-5)


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                min_size=1, max_size=30)


@SETTINGS
@given(stems=st.lists(names, min_size=1, max_size=6, unique=True), ext=st.sampled_from([".png", ".fits", ".tif"]),
       same_folder=st.booleans())
def test_output_names_stay_inside_and_never_hit_inputs(stems, ext, same_folder):
    with tempfile.TemporaryDirectory() as root:
        sources = [os.path.join(root, s + ext) for s in stems if s + ext not in (".", "..")]
        assume(sources)
        out_dir = root if same_folder else os.path.join(root, "out")
        jobs = plan_jobs(sources, root, out_dir, suffix="_colour_x4", save_intermediate=True)
    outputs = [j.output for j in jobs] + [j.intermediate for j in jobs]
    assert len(set(outputs)) == len(outputs)  # no two inputs share an output
    assert not set(outputs) & {os.path.abspath(s) for s in sources}
    for path in outputs:
        assert os.path.dirname(path) == out_dir  # no separator or '..' smuggled in
        name = os.path.basename(path)
        assert name.isascii() and name.isprintable() and not name.startswith(".")


@pytest.mark.parametrize("stem", ["..", "...", "../../etc/passwd", "a\nb", "-rf", "  .hidden", "ümlaut ☄"])
def test_odd_input_names_get_safe_outputs(tmp_path, stem):
    src = os.path.join(tmp_path, stem.replace("/", "_") + ".png")
    (job,) = plan_jobs([src], str(tmp_path), "/out", suffix="_colour_x4", save_intermediate=False)
    assert os.path.dirname(job.output) == "/out" and job.output.endswith("_colour_x4.png")
    assert os.path.basename(job.output).isascii() and "\n" not in job.output


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 120), tile=st.integers(8, 40), batch=st.integers(2, 5),
       seed=st.integers(0, 2**16), data=st.data())
def test_batched_tiles_equal_one_by_one(h, w, tile, batch, seed, data):
    """Batching the tiles of a band changes how many model calls there are, not the result."""
    overlap = data.draw(st.integers(0, (tile - 1) // 2))
    image = np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)
    calls: dict = {1: [], batch: []}

    def upscaler(most):
        def many(xs):
            calls[most].append(len(xs))
            assert 1 <= len(xs) <= most
            return np.stack([np.repeat(np.repeat(x, 2, axis=0), 2, axis=1) ** 2 for x in xs])

        return many

    single = [rows for _, _, rows in iter_upscaled_bands(image, upscaler(1), 2, tile, overlap)]
    batched = [rows for _, _, rows in iter_upscaled_bands(image, upscaler(batch), 2, tile, overlap,
                                                          batch_size=batch)]
    assert len(single) == len(batched)
    for a, b in zip(single, batched):
        np.testing.assert_allclose(a, b, atol=1e-6)
    tiles = len(plan_tiles(h, w, tile, overlap))
    assert sum(calls[1]) == sum(calls[batch]) == tiles
    assert len(calls[1]) == tiles  # one tile a call by default
