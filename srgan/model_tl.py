"""The tensorlayer/srgan generator as a Keras 3 model, and its weight-file reader.

The paper's SR model follows github tensorlayer/srgan, whose generator is not
Ledig's SRResNet (ReLU, no PReLU; tanh output in [-1, 1]). This module copies
it layer for layer, read from tensorlayer/srgan `model.py` (`SRGAN_g` in TL1,
`get_G` in TL2: the same network) and TensorLayer 2.2.5's layers:

* conv 64 3x3, bias, ReLU                                       (`conv_in`)
* 16 residual blocks: conv 64 3x3 no bias -> BN + ReLU ->
  conv 64 3x3 no bias -> BN -> add the block input              (`res{i}_*`)
* conv 64 3x3 no bias -> BN -> add the output of `conv_in`      (`mid_*`)
* twice: conv 256 3x3, bias -> sub-pixel x2 -> ReLU             (`up{1,2}_*`)
* conv 3 1x1, bias, tanh                                        (`conv_out`)

All convolutions stride 1, SAME. BN is TL's: epsilon 1e-5, decay 0.9, beta and
gamma. Initialisers are TL's, so training from scratch starts where TL's does.
TL feeds images in [-1, 1]; by default the model maps this project's [0, 1] in
and out inside itself (`io_range="01"`), `io_range="tl"` is TL's raw interface.

The second half reads TensorLayer weight files (TL2 `g.h5`, `save_npz_dict`
npz, TL1 `g_srgan.npz`) into that model; `python -m srgan.import_tl` is its
command line. It lives here, not in the entry module, because entry modules
define absl flags and so are never imported by tests or other code.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from typing import Optional, Sequence

import keras
import numpy as np
from keras import layers, ops

#: TensorLayer 2.2.5 `BatchNorm` / TL1 `BatchNormLayer` defaults.
TL_BN_EPSILON = 1e-5
TL_BN_DECAY = 0.9
#: tensorlayer/srgan's initialisers (`tf.random_normal_initializer(stddev=0.02)`
#: for kernels, `(1., 0.02)` for BN gamma); TL's bias init is zeros.
TL_KERNEL_STDDEV = 0.02

IO_RANGES = ("01", "tl")


@keras.saving.register_keras_serializable(package="srgan_tl")
class DepthToSpace(layers.Layer):
    """Sub-pixel shuffle with `tf.nn.depth_to_space` ("DCR") channel order.

    TensorLayer's `SubpixelConv2d` (TL >= 1.6.7 and TL2) calls
    `tf.nn.depth_to_space`: output pixel `(h*r + i, w*r + j)` channel `c` is
    input channel `(i*r + j) * C_out + c`. `keras.ops.depth_to_space` uses the
    same order (checked against TensorLayer in tests/test_import_tl.py).

    Input `[B, H, W, C*r*r]` -> output `[B, H*r, W*r, C]`, any value range.
    """

    def __init__(self, block_size: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        return ops.depth_to_space(x, self.block_size, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.block_size
        return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self) -> dict:
        return {**super().get_config(), "block_size": self.block_size}


def _conv(filters: int, kernel: int, name: str, use_bias: bool, activation=None) -> layers.Conv2D:
    return layers.Conv2D(
        filters,
        kernel,
        padding="same",
        use_bias=use_bias,
        activation=activation,
        kernel_initializer=keras.initializers.RandomNormal(stddev=TL_KERNEL_STDDEV),
        bias_initializer="zeros",
        name=name,
    )


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(
        momentum=TL_BN_DECAY,
        epsilon=TL_BN_EPSILON,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=TL_KERNEL_STDDEV),
        name=name,
    )


def build_tl_generator(num_blocks: int = 16, filters: int = 64, io_range: str = "01") -> keras.Model:
    """Builds tensorlayer/srgan's 4x generator.

    Args:
        num_blocks: residual blocks (TL: 16).
        filters: feature channels of the trunk (TL: 64). The two up-sampling
            convolutions have `4 * filters` outputs (TL: 256) so each sub-pixel
            shuffle gives back `filters` channels.
        io_range: "01": input RGB `[B, H, W, 3]` in [0, 1], output
            `[B, 4H, 4W, 3]` in [0, 1] (the project's convention; the model maps
            to TL's [-1, 1] and back inside itself). "tl": input and output in
            TL's [-1, 1], exactly TL's interface.

    Returns:
        An uncompiled `keras.Model` named "tl_generator" taking any H, W. Call it
        with `training=False` for inference (BN on its moving statistics, as
        TL's `G.eval()`).

    Raises:
        ValueError: bad `num_blocks`, `filters` or `io_range`.
    """
    if io_range not in IO_RANGES:
        raise ValueError(f"io_range must be one of {IO_RANGES}, got {io_range!r}")
    if int(num_blocks) < 0 or int(filters) < 1:
        raise ValueError(f"need num_blocks >= 0 and filters >= 1, got {num_blocks}, {filters}")
    num_blocks, filters = int(num_blocks), int(filters)

    inputs = keras.Input((None, None, 3), name="lr")
    x = inputs
    if io_range == "01":
        x = layers.Rescaling(2.0, offset=-1.0, name="to_tl_range")(x)

    x = _conv(filters, 3, "conv_in", use_bias=True, activation="relu")(x)
    trunk = x
    for i in range(num_blocks):
        y = _conv(filters, 3, f"res{i}_conv1", use_bias=False)(x)
        y = _bn(f"res{i}_bn1")(y)
        y = layers.ReLU(name=f"res{i}_relu")(y)
        y = _conv(filters, 3, f"res{i}_conv2", use_bias=False)(y)
        y = _bn(f"res{i}_bn2")(y)
        x = layers.Add(name=f"res{i}_add")([x, y])
    x = _conv(filters, 3, "mid_conv", use_bias=False)(x)
    x = _bn("mid_bn")(x)
    x = layers.Add(name="mid_add")([x, trunk])

    for k in (1, 2):
        x = _conv(4 * filters, 3, f"up{k}_conv", use_bias=True)(x)
        x = DepthToSpace(2, name=f"up{k}_shuffle")(x)
        x = layers.ReLU(name=f"up{k}_relu")(x)
    x = _conv(3, 1, "conv_out", use_bias=True, activation="tanh")(x)

    if io_range == "01":
        x = layers.Rescaling(0.5, offset=0.5, name="from_tl_range")(x)
    return keras.Model(inputs, x, name="tl_generator")



# --------------------------------------------------------------------------
# Reading TensorLayer weight files.
# --------------------------------------------------------------------------


class TLCheckpointError(ValueError):
    """A file is not a readable tensorlayer/srgan generator checkpoint."""


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"

# Per layer of `build_tl_generator`, the arrays TensorLayer stores for it, in
# its order: Conv2d -> W [, b]; BatchNorm -> beta, gamma, moving mean, moving
# variance (TL1 `BatchNormLayer` and TL2 `BatchNorm` agree).
_CONV_BIAS = ("kernel", "bias")
_CONV = ("kernel",)
_BN = ("beta", "gamma", "mean", "var")
#: arrays in a generator file = _FIXED_ARRAYS + _ARRAYS_PER_BLOCK * num_blocks
_FIXED_ARRAYS = 2 + 5 + 3 * 2
_ARRAYS_PER_BLOCK = 2 * (1 + 4)


def _layer_plan(num_blocks: int) -> list[tuple[str, tuple[str, ...]]]:
    plan = [("conv_in", _CONV_BIAS)]
    for i in range(num_blocks):
        plan += [(f"res{i}_conv1", _CONV), (f"res{i}_bn1", _BN), (f"res{i}_conv2", _CONV), (f"res{i}_bn2", _BN)]
    plan += [("mid_conv", _CONV), ("mid_bn", _BN), ("up1_conv", _CONV_BIAS), ("up2_conv", _CONV_BIAS)]
    plan += [("conv_out", _CONV_BIAS)]
    return plan


def _role_from_name(name: Optional[str]) -> Optional[str]:
    """What a stored variable is, from its name, when the name says so.

    TL2 names are like `conv2d_3/filters:0`, `batchnorm2d_1/moving_var:0`;
    TL1 ones like `SRGAN_g/n64s1/c/W_conv2d:0`, `.../b1/0/moving_variance:0`.
    """
    if not name:
        return None
    base = name.rsplit("/", 1)[-1].split(":", 1)[0].lower()
    if base in ("filters", "w_conv2d", "kernel", "w"):
        return "kernel"
    if base in ("biases", "b_conv2d", "bias", "b"):
        return "bias"
    if base in ("beta", "gamma"):
        return base
    if base.startswith("moving_mean"):
        return "mean"
    if base.startswith("moving_var"):
        return "var"
    return None


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles object arrays of plain ndarrays and nothing else.

    TL1's `save_npz` wrote `np.savez(name, params=[arrays...])`, which old numpy
    stored as an object array, i.e. a pickle. A pickle can run any code, so
    instead of `np.load(allow_pickle=True)` only the three globals an ndarray
    needs are let through.
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")
        if name == "_reconstruct":
            # numpy 2 moved numpy.core to numpy._core; files from either load.
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def _read_tl1_params(path: str, zf: zipfile.ZipFile) -> list[np.ndarray]:
    with zf.open("params.npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if dtype != np.dtype(object):
            raise TLCheckpointError(
                f"{path}: 'params' is one {dtype} array of shape {shape}, not TL1's list of weight arrays")
        # latin1: arrays pickled by Python 2 (2017-era TL1 runs) hold raw bytes as str.
        params = _ArraysOnlyUnpickler(f, encoding="latin1").load()
    params = list(np.asarray(params, dtype=object).ravel())
    if not all(isinstance(p, np.ndarray) for p in params):
        raise TLCheckpointError(f"{path}: 'params' holds something other than arrays")
    return params


def read_tl_weights(path: str) -> tuple[list[tuple[Optional[str], np.ndarray]], str]:
    """Reads the arrays of a TensorLayer weights file, in stored order.

    Three formats (told apart by content, not by file name):

    * TL2 HDF5, `Model.save_weights("g.h5")` (what tensorlayer/srgan's TL2
      `train.py` writes): layers in `layer_names` order, each layer's arrays in
      its `weight_names` order.
    * npz dict, `tl.files.save_npz_dict` (TL2, also TL1): one array per
      variable name, in the order they were saved.
    * TL1 npz list, `tl.files.save_npz(net_g.all_params, "g_srgan.npz")`: one
      object array `params` of the arrays in layer order (names lost).

    Args:
        path: the file.

    Returns:
        (list of (variable name or None, float32 array), format) with format
        one of "tl2_hdf5", "npz_dict", "tl1_npz_list".

    Raises:
        FileNotFoundError: no such file.
        TLCheckpointError: the file is none of the above, or is damaged.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (expected a TensorLayer generator checkpoint)")
    with open(path, "rb") as f:
        magic = f.read(8)
    expected = ("expected TensorLayer generator weights: g.h5 (TL2 save_weights), an npz from "
                "tl.files.save_npz_dict, or TL1's g_srgan.npz")
    try:
        if magic.startswith(_HDF5_MAGIC):
            return _read_tl2_hdf5(path), "tl2_hdf5"
        if magic.startswith(_ZIP_MAGIC):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if names == ["params.npy"]:
                    entries = [(None, a) for a in _read_tl1_params(path, zf)]
                    return [(n, np.asarray(a, np.float32)) for n, a in entries], "tl1_npz_list"
            with np.load(path, allow_pickle=False) as npz:
                entries = [(key, np.asarray(npz[key], np.float32)) for key in npz.files]
            if not entries:
                raise TLCheckpointError(f"{path}: the npz holds no arrays; {expected}")
            return entries, "npz_dict"
    except TLCheckpointError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise TLCheckpointError(f"{path}: cannot be read ({type(e).__name__}: {e}); {expected}") from e
    raise TLCheckpointError(f"{path}: neither an npz (zip) nor an HDF5 file; {expected}")


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _read_tl2_hdf5(path: str) -> list[tuple[Optional[str], np.ndarray]]:
    # h5py comes with TensorFlow; imported here so the model code needs none of it.
    import h5py

    entries = []
    with h5py.File(path, "r") as f:
        if "layer_names" not in f.attrs:
            raise TLCheckpointError(
                f"{path}: HDF5 without TensorLayer's 'layer_names' attribute; not a TL2 Model.save_weights file")
        for layer in f.attrs["layer_names"]:
            group = f[_text(layer)]
            for w_name in group.attrs.get("weight_names", []):
                w_name = _text(w_name)
                entries.append((w_name, np.asarray(group[w_name], np.float32)))
    return entries


def infer_tl_size(entries: Sequence[tuple[Optional[str], np.ndarray]], source: str = "weights") -> tuple[int, int]:
    """(num_blocks, filters) of the generator whose arrays these are.

    Raises:
        TLCheckpointError: the count or the first kernel fit no TL generator.
    """
    n = len(entries)
    blocks, rest = divmod(n - _FIXED_ARRAYS, _ARRAYS_PER_BLOCK)
    if n < _FIXED_ARRAYS or rest:
        raise TLCheckpointError(
            f"{source}: {n} arrays, but a tensorlayer/srgan generator has {_FIXED_ARRAYS} + "
            f"{_ARRAYS_PER_BLOCK} per residual block ({_FIXED_ARRAYS + 16 * _ARRAYS_PER_BLOCK} for 16 blocks); "
            "is this the generator (g.h5, g_srgan.npz) and not the discriminator (d*.npz)?")
    first = entries[0][1]
    if first.ndim != 4 or first.shape[:3] != (3, 3, 3):
        raise TLCheckpointError(
            f"{source}: first array {entries[0][0] or '#0'} has shape {first.shape}; a TL generator starts with "
            "its 3x3 RGB input convolution, shape (3, 3, 3, filters)")
    return blocks, int(first.shape[-1])


def load_tl_weights(model: keras.Model, entries: Sequence[tuple[Optional[str], np.ndarray]],
                    source: str = "weights") -> None:
    """Puts TensorLayer's arrays into a `build_tl_generator` model.

    Args:
        model: from `build_tl_generator`, of the size the arrays are for.
        entries: (name or None, array) in TensorLayer's order, as returned by
            `read_tl_weights`.
        source: what to call the arrays in error messages (the file name).

    Raises:
        TLCheckpointError: wrong number of arrays, a shape that does not fit,
            or a name saying the array is something else than expected.
    """
    num_blocks = sum(1 for layer in model.layers if layer.name.endswith("_conv1"))
    plan = _layer_plan(num_blocks)
    expected = sum(len(roles) for _, roles in plan)
    if len(entries) != expected:
        raise TLCheckpointError(
            f"{source}: {len(entries)} arrays, but a generator with {num_blocks} residual blocks has {expected}")
    i = 0
    for layer_name, roles in plan:
        layer = model.get_layer(layer_name)
        got = {}
        for role in roles:
            name, value = entries[i]
            label = name or f"#{i}"
            named = _role_from_name(name)
            if named is not None and named != role:
                raise TLCheckpointError(
                    f"{source}: array {label} is a {named}, but TensorLayer's layer order puts the {role} "
                    f"of {layer_name} there; the file's arrays are not in generator order")
            got[role] = (label, value)
            i += 1
        if roles == _BN:
            keras_order = ("gamma", "beta", "mean", "var")  # Keras BatchNormalization.weights order
        else:
            keras_order = roles
        values = []
        for role, var in zip(keras_order, layer.weights):
            label, value = got[role]
            if tuple(value.shape) != tuple(var.shape):
                raise TLCheckpointError(
                    f"{source}: array {label} ({role} of {layer_name}) has shape {value.shape}, "
                    f"expected {tuple(var.shape)}")
            values.append(value)
        layer.set_weights(values)


def convert_tl_checkpoint(path: str, num_blocks: Optional[int] = None, filters: Optional[int] = None,
                          io_range: str = "01") -> tuple[keras.Model, dict]:
    """Reads a TensorLayer generator checkpoint into `build_tl_generator`.

    Args:
        path: g.h5 (TL2), an npz_dict npz, or TL1's g_srgan.npz.
        num_blocks, filters: the generator's size; inferred from the arrays
            when None, checked against them otherwise.
        io_range: see `build_tl_generator` ("01" for this project's pipeline).

    Returns:
        (model, info) with info {"source", "source_format", "num_blocks", "filters"}.

    Raises:
        FileNotFoundError: no such file.
        TLCheckpointError: the file is not a TL generator of that size.
    """
    entries, fmt = read_tl_weights(path)
    blocks, width = infer_tl_size(entries, source=path)
    for given, found, what in ((num_blocks, blocks, "num_blocks"), (filters, width, "filters")):
        if given is not None and int(given) != found:
            raise TLCheckpointError(f"{path}: holds a generator with {what}={found}, not {given}")
    model = build_tl_generator(blocks, width, io_range=io_range)
    load_tl_weights(model, entries, source=path)
    info = {"source": os.path.abspath(path), "source_format": fmt, "num_blocks": blocks, "filters": width}
    return model, info


def convert_tl_npz(npz_path: str, num_blocks: Optional[int] = None, filters: Optional[int] = None,
                   io_range: str = "01") -> keras.Model:
    """`convert_tl_checkpoint` without the info: the Keras generator only.

    Input/output `[B, H, W, 3]` -> `[B, 4H, 4W, 3]`, in [0, 1] by default.
    """
    return convert_tl_checkpoint(npz_path, num_blocks, filters, io_range)[0]


__all__ = [
    "build_tl_generator", "DepthToSpace", "TLCheckpointError", "read_tl_weights", "infer_tl_size",
    "load_tl_weights", "convert_tl_checkpoint", "convert_tl_npz", "TL_BN_EPSILON", "TL_BN_DECAY", "IO_RANGES",
]
