"""Reading tensorlayer/srgan generator weight files into `srgan.model_tl.build_tl_generator`.

TL2 `g.h5`, `save_npz_dict` npz and TL1 `g_srgan.npz` hold the same arrays in
TensorLayer's layer order; `convert_tl_checkpoint` reads one, infers the
generator's size, and fills a Keras model. `python -m srgan.import_tl` is its
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

from srgan.model_tl import build_tl_generator


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


__all__ = ["TLCheckpointError", "read_tl_weights", "infer_tl_size", "load_tl_weights", "convert_tl_checkpoint",
           "convert_tl_npz"]
