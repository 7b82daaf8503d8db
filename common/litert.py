"""A LiteRT (TFLite) flatbuffer beside a SavedModel: conversion, the parity check, and the engine that runs it.

The exports write `model.tflite` next to `saved_model.pb`: the serving
signature's main output, converted with dynamic batch, height and width, so one
flatbuffer serves the faithful 224-px batch, full mode's tiles and their ragged
edge tiles. It is written only when it agrees with the SavedModel on a probe
input to `PARITY_BOUND`; `config.json` records the measured difference and a
digest of the SavedModel it was made from (`litert` key), so a flatbuffer left
beside another export is never taken for this one.

`LiteRTRunner` runs it with the XNNPACK delegate (the interpreter's default on
CPU), one interpreter per input shape kept ready: a new shape allocates once,
a repeated one only copies its input in.

`ai-edge-litert` (the maintained successor of `tf.lite`) is used when it is
installed, else TensorFlow's own `tf.lite.Interpreter`.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import threading
from typing import Optional

import numpy as np

#: The flatbuffer's file name inside a SavedModel folder.
FLATBUFFER = "model.tflite"
#: Largest |LiteRT - SavedModel| allowed at export, on outputs in [0, 1]. Both
#: engines run the same float32 graph; only the order of the sums differs
#: (XNNPACK's kernels vs oneDNN/Eigen), which moves a 0.17 M-parameter network's
#: outputs by about 1e-6 here; 1e-4 leaves room for other CPUs' vector widths.
PARITY_BOUND = 1e-4
#: Interpreters kept per runner (shapes: faithful batches, full tiles, edge tiles).
MAX_CACHED_SHAPES = 8


class LiteRTError(RuntimeError):
    """A flatbuffer that cannot be made, is missing, or fails to load or run."""


def interpreter_class():
    """(Interpreter class, engine name): `ai_edge_litert`'s when installed, else `tf.lite`'s."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, "tf.lite"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_flags() -> frozenset:
    """The instruction-set flags of this machine's CPU (`/proc/cpuinfo`; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            line = next((l for l in f if l.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.split(":", 1)[1].split()) if ":" in line else frozenset()


def xnnpack_preferred(flags: Optional[frozenset] = None) -> bool:
    """Whether `--engine auto` should run a flatbuffer (XNNPACK) rather than the SavedModel on this CPU.

    Measured side by side, the same weights on both engines: on a 2-core AMD CPU with
    AVX2 only, XNNPACK ran the default SR generator 2.2x faster than TensorFlow;
    on a 2-core Intel Xeon with AVX-512, TensorFlow (oneDNN's AVX-512 kernels) was
    the faster for every SR model (1.15-1.36x idle, more under load) and for the
    whole faithful pipeline (1.42x), see bench/results.md. So: the SavedModel where
    the CPU has AVX-512, XNNPACK elsewhere (and where the flags are unknown).
    `--engine` overrides it.

    Args:
        flags: CPU flags (default: `cpu_flags()`).
    """
    return "avx512f" not in (cpu_flags() if flags is None else flags)


def saved_model_digest(folder: str) -> str:
    """SHA-256 over `saved_model.pb` and the variables files: which SavedModel a flatbuffer belongs to."""
    h = hashlib.sha256()
    names = ["saved_model.pb"]
    var_dir = os.path.join(folder, "variables")
    if os.path.isdir(var_dir):
        names += [os.path.join("variables", n) for n in sorted(os.listdir(var_dir))]
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            h.update(name.encode())
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def _serving(loaded, output_key: str):
    """The SavedModel's serving function as one input -> `output_key`, with its input's name and channels."""
    fn = loaded.signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    if len(specs) != 1:
        raise LiteRTError(f"the serving signature has {len(specs)} inputs; one is needed")
    (name, spec), = specs.items()
    return (lambda x: fn(**{name: x})[output_key]), name, int(spec.shape[-1])


def convert(folder: str, output_key: str) -> tuple[bytes, object, int]:
    """The SavedModel in `folder` as a flatbuffer with dynamic `[B, H, W]` (the channels fixed).

    The serving function is traced over `[None, None, None, C]` from the loaded
    SavedModel, so its variables are frozen into constants (converting the
    Keras model directly keeps resource variables, which XNNPACK cannot take).

    Returns:
        (flatbuffer bytes, the SavedModel's serving function `x -> output`, C).
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(folder)
    fn, _, channels = _serving(loaded, output_key)
    concrete = tf.function(fn).get_concrete_function(tf.TensorSpec([None, None, None, channels], tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
    return converter.convert(), fn, channels


def probe_input(channels: int, height: int = 64, width: int = 96) -> np.ndarray:
    """A fixed random probe `[1, height, width, channels]` in [0, 1] (not square: catches H/W mix-ups)."""
    return np.random.default_rng(0).random((1, height, width, channels), dtype=np.float32)


def write_flatbuffer(folder: str, output_key: str, meta: Optional[dict] = None) -> tuple[Optional[str], str]:
    """Converts the SavedModel in `folder`, checks parity, and writes `folder/model.tflite`.

    Args:
        folder: a SavedModel folder (its `serving_default` has one input).
        output_key: the output to convert (`sr`, `rgb`).
        meta: when given, receives the `litert` record for `config.json`.

    Returns:
        (the flatbuffer's path or None, one line saying what was done or why not).
        On a failed conversion or parity check no flatbuffer is left in `folder`.
    """
    from common.files import atomic_write_bytes

    path = os.path.join(folder, FLATBUFFER)
    record: dict = {"file": None, "output": output_key, "parity_bound": PARITY_BOUND}
    try:
        flatbuffer, reference, channels = convert(folder, output_key)
        probe = probe_input(channels)
        want = np.asarray(reference(probe))
        got = LiteRTRunner(flatbuffer).run(probe)
        diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
    except Exception as e:  # the converter raises many types; the export goes on without a flatbuffer
        diff, why = None, f"conversion failed ({type(e).__name__}: {' '.join(str(e).split())[:160]})"
    else:
        why = None if diff <= PARITY_BOUND else (
            f"parity failed: max |LiteRT - SavedModel| = {diff:.3g} > {PARITY_BOUND:g} on a probe")
    if why is not None:
        if os.path.exists(path):
            os.unlink(path)
        record["reason"] = why
        if meta is not None:
            meta["litert"] = record
        return None, f"no {FLATBUFFER} written: {why}"
    atomic_write_bytes(path, flatbuffer)
    record.update(file=FLATBUFFER, max_abs_diff=diff, saved_model_sha256=saved_model_digest(folder),
                  probe_shape=list(probe.shape))
    if meta is not None:
        meta["litert"] = record
    return path, f"wrote {FLATBUFFER} (max |LiteRT - SavedModel| = {diff:.2g} on a probe)"


def add_flatbuffer(folder: str, output_key: str) -> str:
    """`write_flatbuffer` for an existing export folder, its `config.json` updated; returns the one line."""
    from common.export import write_config_json

    cfg_path = os.path.join(folder, "config.json")
    meta = {}
    if os.path.isfile(cfg_path):
        with open(cfg_path, encoding="utf-8") as f:
            meta = json.load(f)
    _, line = write_flatbuffer(folder, output_key, meta)
    write_config_json(folder, meta)
    return line


def summary(folder: str) -> str:
    """One line on an export folder's flatbuffer, from its `config.json` (for the export commands)."""
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            record = json.load(f).get("litert") or {}
    except (OSError, ValueError, AttributeError):
        record = {}
    if record.get("file"):
        return f"LiteRT: {FLATBUFFER} written (max |LiteRT - SavedModel| = {record['max_abs_diff']:.2g} on a probe)"
    return f"LiteRT: no {FLATBUFFER} written: {record.get('reason', 'not attempted')}"


def flatbuffer_problem(folder: str, config: dict) -> Optional[str]:
    """Why `folder`'s flatbuffer cannot stand for its SavedModel (None: it can).

    Valid means: `model.tflite` is there, `config.json` records that it passed
    the parity check, and the SavedModel beside it is the one it was made from.
    """
    path = os.path.join(folder, FLATBUFFER)
    if not os.path.isfile(path):
        return f"no {FLATBUFFER} beside the SavedModel"
    record = config.get("litert") or {}
    if record.get("file") != FLATBUFFER:
        return f"config.json does not record a parity-checked {FLATBUFFER}"
    if os.path.isfile(os.path.join(folder, "saved_model.pb")) and \
            record.get("saved_model_sha256") != saved_model_digest(folder):
        return f"{FLATBUFFER} was made from another SavedModel (digest differs); re-export"
    return None


class LiteRTRunner:
    """Runs a flatbuffer on float32 batches, one ready interpreter per input shape.

    Args:
        model: the flatbuffer's path or bytes.
        num_threads: XNNPACK threads (default: the cores this process may use).

    Thread-safe: calls are serialised (an interpreter is not re-entrant).
    """

    def __init__(self, model, num_threads: Optional[int] = None) -> None:
        self._content = model if isinstance(model, (bytes, bytearray)) else None
        self._path = None if self._content is not None else os.fspath(model)
        self.num_threads = num_threads or available_cores()
        self._cls, self.engine = interpreter_class()
        self._cache: "collections.OrderedDict[tuple, object]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0  # interpreters made so far (one per new shape, unless evicted)
        # Loaded once here so that a bad file fails now, not at the first call.
        self.channels = int(self._new().get_input_details()[0]["shape_signature"][-1])

    def _new(self):
        kw = {"model_content": bytes(self._content)} if self._content is not None else {"model_path": self._path}
        try:
            return self._cls(num_threads=self.num_threads, **kw)
        except Exception as e:
            raise LiteRTError(f"{self._path or 'flatbuffer'}: cannot load ({type(e).__name__}: {e})") from e

    def _interpreter(self, shape: tuple):
        interp = self._cache.get(shape)
        if interp is not None:
            self._cache.move_to_end(shape)
            return interp
        interp = self._new()
        index = interp.get_input_details()[0]["index"]
        interp.resize_tensor_input(index, list(shape), strict=False)
        interp.allocate_tensors()
        self.builds += 1
        self._cache[shape] = interp
        if len(self._cache) > MAX_CACHED_SHAPES:
            self._cache.popitem(last=False)
        return interp

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model on `batch` (float32 `[B, H, W, C]`); returns a new numpy array."""
        x = np.ascontiguousarray(batch, np.float32)
        with self._lock:
            interp = self._interpreter(tuple(x.shape))
            interp.set_tensor(interp.get_input_details()[0]["index"], x)
            interp.invoke()
            return np.array(interp.get_tensor(interp.get_output_details()[0]["index"]))
