"""TensorLayer interop: TL's own generator and our converted copy agree.

The parity tests build tensorlayer/srgan's generator with TensorLayer 2.2.5
itself, give every variable (BN moving statistics included) random values,
save them the ways TensorLayer does, convert, and compare outputs on the same
input in inference mode. They need the `tl` extra; `importorskip` only spares
users who installed without it: CI (`scripts/test.sh`) installs
`.[cpu,test,tl]`, so there they run. The file-format and error tests need no
TensorLayer.

The CLI is run as a subprocess: entry modules define absl flags and are not
imported into the test process (see tests/test_colorize_cli.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from srgan.model_tl import build_tl_generator
from srgan.tl_weights import TLCheckpointError, convert_tl_checkpoint, convert_tl_npz

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4


def _tl_generator(tl, tf, num_blocks):
    """tensorlayer/srgan's TL2 `get_G`, with the residual block count as an argument.

    Written with TensorLayer's layer API after tensorlayer/srgan model.py (TL2):
    ReLU input conv with bias; blocks conv(no bias)-BN+ReLU-conv(no bias)-BN +
    skip; conv-BN + long skip; twice conv 256 + SubpixelConv2d x2 + ReLU; 1x1
    conv + tanh. Layers use TL's defaults (BN epsilon 1e-5, SAME padding).
    """
    from tensorlayer.layers import BatchNorm2d, Conv2d, Elementwise, Input, SubpixelConv2d
    from tensorlayer.models import Model

    x_in = Input([1, None, None, 3])
    trunk = Conv2d(64, (3, 3), (1, 1), act=tf.nn.relu, padding="SAME")(x_in)
    x = trunk
    for _ in range(num_blocks):
        y = Conv2d(64, (3, 3), (1, 1), padding="SAME", b_init=None)(x)
        y = BatchNorm2d(act=tf.nn.relu)(y)
        y = Conv2d(64, (3, 3), (1, 1), padding="SAME", b_init=None)(y)
        y = BatchNorm2d()(y)
        x = Elementwise(tf.add)([x, y])
    y = Conv2d(64, (3, 3), (1, 1), padding="SAME", b_init=None)(x)
    y = BatchNorm2d()(y)
    x = Elementwise(tf.add)([y, trunk])
    for _ in range(2):
        x = Conv2d(256, (3, 3), (1, 1), padding="SAME")(x)
        x = SubpixelConv2d(scale=2, n_out_channels=None, act=tf.nn.relu)(x)
    out = Conv2d(3, (1, 1), (1, 1), act=tf.nn.tanh, padding="SAME")(x)
    return Model(inputs=x_in, outputs=out)


def _randomise(model, seed):
    """Random values for every variable, scaled so the output is not saturated.

    TL initialises moving variances to 0 and gamma near 1: with those, any
    converter that dropped the moving statistics would still pass, so every
    variable is drawn here.
    """
    rng = np.random.default_rng(seed)
    for w in model.all_weights:
        name, shape = w.name, tuple(w.shape)
        if "filters" in name:
            value = rng.normal(0.0, 0.5 / np.sqrt(np.prod(shape[:3])), shape)
        elif "gamma" in name:
            value = rng.normal(1.0, 0.2, shape)
        elif "moving_var" in name:
            value = rng.uniform(1.0, 3.0, shape)
        else:  # biases, beta, moving_mean
            value = rng.normal(0.0, 0.2, shape)
        w.assign(value.astype(np.float32))


def _save_tl1_list(arrays, path):
    """What TL1's `tl.files.save_npz(net.all_params, path)` wrote.

    It called `np.savez(path, params=[arrays...])`; numpy < 1.24 turned the
    ragged list into an object array (numpy 2 refuses, which is why TL 2.2.5's
    `save_npz` fails here), so the object array is made explicitly. TL1's
    `SRGAN_g` lists its arrays in the same order as TL2's `all_weights`
    (conv W, b; BN beta, gamma, moving mean, moving variance).
    """
    params = np.empty(len(arrays), dtype=object)
    params[:] = list(arrays)
    np.savez(path, params=params)


@pytest.fixture(scope="module")
def tl_run(tmp_path_factory):
    """TL's 16-block generator, its outputs on a fixed input and its weight files."""
    tl = pytest.importorskip("tensorlayer", reason="needs the tl extra: pip install -e '.[tl]'")
    import tensorflow as tf

    tmp = tmp_path_factory.mktemp("tl")
    model = _tl_generator(tl, tf, num_blocks=16)
    _randomise(model, seed=0)
    model.eval()
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.0, 1.0, (2, 7, 9, 3)).astype(np.float32)
    y = model(x).numpy()
    files = {"npz_dict": str(tmp / "g_dict.npz"), "tl2_hdf5": str(tmp / "g.h5"), "tl1_npz_list": str(tmp / "g_srgan.npz")}
    tl.files.save_npz_dict(model.all_weights, files["npz_dict"])
    model.save_weights(files["tl2_hdf5"])
    _save_tl1_list([w.numpy() for w in model.all_weights], files["tl1_npz_list"])
    return {"tl": tl, "tf": tf, "x": x, "y": y, "files": files, "tmp": tmp}


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "srgan.import_tl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_tl_output_is_informative(tl_run):
    # A saturated or constant output would make the comparisons below weak.
    y = tl_run["y"]
    assert y.shape == (2, 28, 36, 3)
    assert y.std() > 0.05 and np.mean(np.abs(y) > 0.99) < 0.01


@pytest.mark.parametrize("fmt", ["npz_dict", "tl2_hdf5", "tl1_npz_list"])
def test_converted_generator_matches_tensorlayer(tl_run, fmt):
    model, info = convert_tl_checkpoint(tl_run["files"][fmt], io_range="tl")
    assert (info["source_format"], info["num_blocks"], info["filters"]) == (fmt, 16, 64)
    out = model(tl_run["x"], training=False).numpy()
    assert out.shape == tl_run["y"].shape
    assert np.max(np.abs(out - tl_run["y"])) < TOL
    # Batch statistics instead of the moving ones would be caught.
    assert np.max(np.abs(model(tl_run["x"], training=True).numpy() - tl_run["y"])) > 1e-2


def test_default_io_range_is_01(tl_run):
    model = convert_tl_npz(tl_run["files"]["npz_dict"])
    out = model((tl_run["x"] + 1.0) / 2.0, training=False).numpy()
    assert np.max(np.abs(out - (tl_run["y"] + 1.0) / 2.0)) < TOL
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_block_count_is_inferred(tl_run, tmp_path):
    tl, tf = tl_run["tl"], tl_run["tf"]
    small = _tl_generator(tl, tf, num_blocks=2)
    _randomise(small, seed=2)
    small.eval()
    path = str(tmp_path / "g2.npz")
    tl.files.save_npz_dict(small.all_weights, path)
    model = convert_tl_npz(path, num_blocks=2, filters=64, io_range="tl")
    x = tl_run["x"][:1, :5, :6]
    assert np.max(np.abs(model(x, training=False).numpy() - small(x).numpy())) < TOL
    with pytest.raises(TLCheckpointError, match="num_blocks=2, not 16"):
        convert_tl_npz(path, num_blocks=16)


def test_cli_savedmodel_follows_export_contract(tl_run):
    import tensorflow as tf

    out_dir = str(tl_run["tmp"] / "export_sm")
    proc = _run_cli("--npz", tl_run["files"]["tl2_hdf5"], "--output", out_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    assert (config["model"], config["arch"], config["scale"], config["num_blocks"]) == ("srgan", "tl", 4, 16)
    loaded = tf.saved_model.load(out_dir)
    lr = (tl_run["x"] + 1.0) / 2.0
    sr = loaded.signatures["serving_default"](lr=tf.constant(lr))["sr"].numpy()
    assert np.max(np.abs(sr - (tl_run["y"] + 1.0) / 2.0)) < TOL
    # Refuses to replace it without --overwrite.
    again = _run_cli("--npz", tl_run["files"]["tl2_hdf5"], "--output", out_dir)
    assert again.returncode != 0 and "--overwrite" in again.stderr + again.stdout


def test_cli_keras_format(tl_run):
    import keras

    out_dir = str(tl_run["tmp"] / "export_keras")
    proc = _run_cli("--npz", tl_run["files"]["tl1_npz_list"], "--output", out_dir, "--format", "keras")
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = keras.saving.load_model(os.path.join(out_dir, "generator.keras"))
    out = model((tl_run["x"] + 1.0) / 2.0, training=False)
    assert np.max(np.abs(keras.ops.convert_to_numpy(out) - (tl_run["y"] + 1.0) / 2.0)) < TOL
    # The pipeline takes the folder as --srgan_model, loading the .keras file in safe mode.
    from pipeline.models import load_model, model_scale

    loaded = load_model(out_dir, "srgan")
    assert model_scale(loaded) == 4
    sr = loaded.run((tl_run["x"] + 1.0) / 2.0)
    assert np.max(np.abs(sr - np.clip((tl_run["y"] + 1.0) / 2.0, 0, 1))) < TOL


# ---- files that are not TL generators (no TensorLayer needed) ----


def _keras_weights_as_tl_list(model):
    """Our model's arrays in TensorLayer's order (BN: beta, gamma, mean, var)."""
    import keras

    arrays = []
    for layer in model.layers:
        w = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = w
            w = [beta, gamma, mean, var]
        arrays += w
    return arrays


def test_tl1_list_without_tensorlayer_roundtrip(tmp_path):
    model = build_tl_generator(num_blocks=1, filters=8, io_range="tl")
    arrays = _keras_weights_as_tl_list(model)
    path = str(tmp_path / "g_srgan.npz")
    _save_tl1_list(arrays, path)
    converted, info = convert_tl_checkpoint(path, io_range="tl")
    assert (info["num_blocks"], info["filters"]) == (1, 8)
    for a, b in zip(model.weights, converted.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        convert_tl_npz(str(tmp_path / "nope.npz"))


@pytest.mark.parametrize("payload", [b"not a checkpoint at all", b"PK\x03\x04 truncated zip", b"\x89HDF\r\n\x1a\n junk"])
def test_unreadable_file_names_the_file(tmp_path, payload):
    path = tmp_path / "g_srgan.npz"
    path.write_bytes(payload)
    with pytest.raises(TLCheckpointError, match="g_srgan.npz.*expected TensorLayer generator weights"):
        convert_tl_npz(str(path))


def test_truncated_real_npz(tmp_path):
    model = build_tl_generator(num_blocks=1, filters=8, io_range="tl")
    path = tmp_path / "g.npz"
    np.savez(path, **{f"w{i}": a for i, a in enumerate(_keras_weights_as_tl_list(model))})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TLCheckpointError, match="g.npz"):
        convert_tl_npz(str(path))


def test_discriminator_or_wrong_count_is_refused(tmp_path):
    path = str(tmp_path / "d_srgan.npz")
    np.savez(path, **{f"w{i}": np.zeros((4, 4, 3, 64), np.float32) for i in range(20)})
    with pytest.raises(TLCheckpointError, match="d_srgan.npz: 20 arrays.*discriminator"):
        convert_tl_npz(path)


def test_wrong_shape_and_wrong_order_are_refused(tmp_path):
    model = build_tl_generator(num_blocks=1, filters=8, io_range="tl")
    arrays = _keras_weights_as_tl_list(model)
    bad = list(arrays)
    bad[-4] = np.zeros((3, 3, 8, 31), np.float32)  # up2_conv kernel
    path = str(tmp_path / "bad_shape.npz")
    _save_tl1_list(bad, path)
    with pytest.raises(TLCheckpointError, match="bad_shape.npz: array #19 .*up2_conv.*expected"):
        convert_tl_npz(path)
    # Names that contradict the layer order (beta and gamma swapped).
    names = ["c/filters:0", "c/biases:0", "r/filters:0", "bn/gamma:0", "bn/beta:0"]
    named = {n: a for n, a in zip(names, arrays[:5])}
    named.update({f"rest{i}/x:0": a for i, a in enumerate(arrays[5:])})
    path = str(tmp_path / "bad_order.npz")
    np.savez(path, **named)
    with pytest.raises(TLCheckpointError, match="bn/gamma:0 is a gamma.*beta of res0_bn1"):
        convert_tl_npz(path)


def test_pickled_code_is_not_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    params = np.empty(1, dtype=object)
    params[0] = Evil()
    path = tmp_path / "g_srgan.npz"
    np.savez(path, params=params)
    with pytest.raises(TLCheckpointError, match="refusing to load"):
        convert_tl_npz(str(path))
    assert not (tmp_path / "pwned").exists()
