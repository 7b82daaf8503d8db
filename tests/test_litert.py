"""The LiteRT flatbuffer beside each export, and the engine that runs it (`common.litert`, `--engine`)."""
import json
import os
import shutil

import numpy as np
import pytest

from common.litert import FLATBUFFER, PARITY_BOUND, LiteRTRunner, add_flatbuffer


@pytest.fixture(scope="module")
def residual_export(tmp_path_factory) -> str:
    """A tiny residual SR generator (1 block x 4 filters, trained-looking weights) exported by srgan's own code."""
    import keras

    from srgan.residual import build_residual_generator
    from srgan.saved_model import export_saved_model

    keras.utils.set_random_seed(1)
    gen = build_residual_generator(num_blocks=1, filters=4, scale=4)
    # The last convolution starts at zero (then the model is plain bicubic); give it weights so
    # that the parity check below compares a real network, not a fixed filter.
    for w in gen.get_layer("to_phases").weights:
        w.assign(np.random.default_rng(2).normal(0, 0.05, w.shape).astype("float32"))
    root = tmp_path_factory.mktemp("litert")
    return export_saved_model(gen, str(root / "srgan"), {"arch": "residual", "num_blocks": 1, "filters": 4,
                                                         "scale": 4, "trained": False})


def _savedmodel_sr(folder: str, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return tf.saved_model.load(folder).signatures["serving_default"](lr=tf.constant(x))["sr"].numpy()


def test_export_writes_a_parity_checked_flatbuffer(residual_export):
    path = os.path.join(residual_export, FLATBUFFER)
    assert os.path.isfile(path)
    record = json.load(open(os.path.join(residual_export, "config.json")))["litert"]
    assert record["file"] == FLATBUFFER and record["max_abs_diff"] <= PARITY_BOUND
    # Parity again on an input the export never saw (another shape, values over the whole range).
    x = np.random.default_rng(5).random((2, 20, 28, 3), dtype=np.float32)
    got = LiteRTRunner(path).run(x)
    assert got.shape == (2, 80, 112, 3)
    assert np.max(np.abs(got - _savedmodel_sr(residual_export, x))) <= PARITY_BOUND


def test_failed_parity_writes_no_flatbuffer(residual_export, tmp_path, monkeypatch):
    import common.litert as litert

    folder = str(tmp_path / "copy")
    shutil.copytree(residual_export, folder)
    monkeypatch.setattr(litert, "PARITY_BOUND", -1.0)  # no difference can pass: the failure path
    line = add_flatbuffer(folder, "sr")
    assert line.startswith(f"no {FLATBUFFER} written: parity failed")
    assert not os.path.exists(os.path.join(folder, FLATBUFFER))
    assert "parity failed" in json.load(open(os.path.join(folder, "config.json")))["litert"]["reason"]


def test_one_cached_interpreter_per_shape(residual_export):
    runner = LiteRTRunner(os.path.join(residual_export, FLATBUFFER), num_threads=1)
    rng = np.random.default_rng(3)
    tile, edge = rng.random((2, 32, 32, 3), dtype=np.float32), rng.random((2, 32, 20, 3), dtype=np.float32)
    first = runner.run(tile)
    assert runner.run(edge).shape == (2, 128, 80, 3)
    again = runner.run(tile)
    assert runner.builds == 2  # the repeated shape reused its interpreter
    assert np.array_equal(first, again)
    for x in (tile, edge):
        assert np.max(np.abs(runner.run(x) - _savedmodel_sr(residual_export, x))) <= PARITY_BOUND
    assert runner.builds == 2


def test_xnnpack_is_preferred_only_without_avx512():
    from common.litert import xnnpack_preferred

    assert xnnpack_preferred(frozenset({"sse2", "avx", "avx2", "fma"})) is True
    assert xnnpack_preferred(frozenset({"avx2", "fma", "avx512f", "avx512bw"})) is False
    assert xnnpack_preferred(frozenset()) is True  # flags unknown: the flatbuffer


def test_auto_picks_litert_where_xnnpack_is_faster_and_savedmodel_otherwise(residual_export, tmp_path,
                                                                             monkeypatch):
    import common.litert
    from pipeline.models import load_model

    monkeypatch.setattr(common.litert, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert load_model(residual_export, "srgan", engine="auto", device="cpu").engine == "litert"
    monkeypatch.setattr(common.litert, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512f"}))
    assert load_model(residual_export, "srgan", engine="auto", device="cpu").engine == "savedmodel"
    assert load_model(residual_export, "srgan", engine="litert", device="cpu").engine == "litert"  # asked for
    # The rest on a CPU where auto would take the flatbuffer: what else makes it take the SavedModel.
    monkeypatch.setattr(common.litert, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert load_model(residual_export, "srgan", engine="savedmodel").engine == "savedmodel"
    bare = str(tmp_path / "bare")
    shutil.copytree(residual_export, bare)
    os.unlink(os.path.join(bare, FLATBUFFER))
    assert load_model(bare, "srgan", engine="auto", device="cpu").engine == "savedmodel"
    # Options only the SavedModel has: auto takes it.
    assert load_model(residual_export, "srgan", precision="mixed_bfloat16", engine="auto").engine == "savedmodel"


def test_litert_without_a_valid_flatbuffer_is_a_clear_error(residual_export, tmp_path):
    from pipeline.models import ModelLoadError, load_model

    bare = str(tmp_path / "bare")
    shutil.copytree(residual_export, bare)
    os.unlink(os.path.join(bare, FLATBUFFER))
    with pytest.raises(ModelLoadError, match=rf"--engine litert not possible: no {FLATBUFFER} beside"):
        load_model(bare, "srgan", engine="litert")
    # A flatbuffer from another export (its SavedModel digest differs) is not taken for this one.
    stale = str(tmp_path / "stale")
    shutil.copytree(residual_export, stale)
    with open(os.path.join(stale, "variables", "variables.index"), "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelLoadError, match="made from another SavedModel"):
        load_model(stale, "srgan", engine="litert")


def test_pipeline_outputs_agree_across_engines(tiny_exports):
    from data.normalize import to_uint8
    from pipeline.api import Pipeline

    assert all(os.path.isfile(os.path.join(d, FLATBUFFER)) for d in tiny_exports.values())
    lite = Pipeline.load(tiny_exports["colorize"], tiny_exports["srgan"], device="cpu", engine="litert")
    saved = Pipeline.load(tiny_exports["colorize"], tiny_exports["srgan"], device="cpu", engine="savedmodel")
    assert lite.upscaler.engine == lite.colorizer.engine == "litert"
    grey = np.random.default_rng(4).random((40, 56), dtype=np.float32)
    for mode, extra in (("faithful", {"size": 64}), ("full", {"size": 64, "tile": 32, "tile_overlap": 8})):
        a, b = lite.process(grey, mode=mode, **extra), saved.process(grey, mode=mode, **extra)
        # Each model differs by at most PARITY_BOUND; the colour difference then passes through the SR
        # and the back-projection, whose gains are about 1 (resampling kernels summing to 1, overshoot
        # < 1.3 per axis), so 4x the bound covers the chain. The 8-bit outputs the command writes can
        # then differ only where a value sits within that of a rounding boundary: by one level.
        assert np.max(np.abs(a - b)) <= 4 * PARITY_BOUND, mode
        assert np.max(np.abs(to_uint8(a).astype(int) - to_uint8(b))) <= 1, mode


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_reflect_pad_by_slices_equals_numpy(mode):
    import keras

    from srgan.residual import ReflectPad2D

    x = np.random.default_rng(6).random((2, 7, 9, 3), dtype=np.float32)
    inp = keras.Input((None, None, 3))
    for pad in (1, 2):
        padded = keras.Model(inp, ReflectPad2D(pad, mode)(inp))(x)
        assert np.array_equal(np.asarray(padded), np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)], mode=mode))


def test_residual_flatbuffer_has_no_mirror_pad(residual_export):
    from common.litert import interpreter_class

    # MIRROR_PAD has no XNNPACK kernel: each one would run outside the delegate (the padding is slices instead).
    ops = {op["op_name"] for op in interpreter_class()[0](model_path=os.path.join(residual_export, FLATBUFFER))
           ._get_ops_details()}
    assert "CONV_2D" in ops and "MIRROR_PAD" not in ops
