"""Loading the exported colouriser and SR models, on the GPU when there is one.

A SavedModel is a program, not just weights: TensorFlow runs the graph it
contains. Load only models you made or got from a source you trust.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional

import numpy as np
import tensorflow as tf


class ModelLoadError(RuntimeError):
    """A model folder that is missing, incomplete, or of the wrong kind."""


def describe_device() -> str:
    """Which device inference runs on, in words."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = ", ".join(g.name for g in gpus)
        return f"GPU ({names})"
    return "CPU (TensorFlow sees no GPU)"


def device_name(device: Optional[str] = None) -> str:
    """The TF device string to run models under.

    Args:
        device: None (first GPU if any, else CPU), "cpu", "gpu" (the first GPU),
            or a TF device string such as "/GPU:1".

    Raises:
        ModelLoadError: "gpu" (or a GPU string) when TensorFlow sees no GPU.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if device is None:
        return "/GPU:0" if gpus else "/CPU:0"
    name = {"cpu": "/CPU:0", "gpu": "/GPU:0"}.get(device.lower(), device)
    if "GPU" in name.upper() and not gpus:
        raise ModelLoadError(f"device {device!r} asked for, but TensorFlow sees no GPU")
    return name


@dataclasses.dataclass
class LoadedModel:
    """An exported model ready to call.

    Attributes:
        path: the SavedModel folder.
        config: its `config.json` (empty dict when absent).
        fn: the serving function; call `run()` rather than this.
        output_key: the key of the output in the serving function's result.
    """

    path: str
    config: dict
    fn: Callable
    output_key: str
    input_key: str
    _module: object = None
    device: Optional[str] = None  # TF device string; None: `device_name()` at each call
    engine: str = "savedmodel"  # savedmodel | litert (then `fn` maps a numpy batch to the output array)

    @property
    def trained(self) -> bool:
        """False for models exported without training (config says so)."""
        return bool(self.config.get("trained", True))

    @property
    def description(self) -> str:
        name = self.config.get("model", os.path.basename(os.path.normpath(self.path)))
        steps = self.config.get("steps_trained")
        extra = f", {steps} steps" if steps is not None else ""
        if self.engine == "litert":
            extra += f", LiteRT XNNPACK, {self.fn.num_threads} threads"
        else:
            extra += ", TensorFlow SavedModel"
        return f"{name} from {self.path}{extra}" + ("" if self.trained else " [UNTRAINED: random weights]")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Calls the model on a float32 batch `[B, H, W, C]` in [0, 1]; returns numpy."""
        if self.engine == "litert":
            # The SavedModel's signature clips its input to [0, 1]; the flatbuffer holds that clip too.
            return self.fn.run(batch)
        with tf.device(self.device or device_name()):
            out = self.fn(**{self.input_key: tf.convert_to_tensor(batch, tf.float32)})
        return np.asarray(out[self.output_key])


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
#: Inference engines: `auto` (LiteRT on a CPU where XNNPACK is the faster engine,
#: `common.litert.xnnpack_preferred`, when a valid flatbuffer is there; else the
#: SavedModel), `savedmodel` (TensorFlow runs the SavedModel), `litert` (the flatbuffer).
ENGINES = ("auto", "savedmodel", "litert")
#: The engine `pipeline.run --engine`, `RunConfig` and `Pipeline.load` use by default.
DEFAULT_ENGINE = "auto"
_OUTPUT_KEYS = {"colorize": "rgb", "srgan": "sr"}


def load_model(path: str, kind: str, precision: str = "float32", jit_compile: bool = False,
               device: Optional[str] = None, colour_temperature: Optional[float] = None,
               engine: str = "savedmodel") -> LoadedModel:
    """Loads a SavedModel written by `colorize.export` or `srgan.export`.

    Args:
        path: the export folder (holds `saved_model.pb` and `config.json`).
        kind: `colorize` (input `grey`, output `rgb`) or `srgan` (input `lr`, output `sr`).
        precision: for an SR generator of this project: `float32` runs the
            SavedModel's own graph; `mixed_float16` / `mixed_bfloat16` rebuild
            the generator from `config.json` under that Keras policy and load
            the SavedModel's weights into it (GPUs; bfloat16 also on CPUs
            with AVX512-BF16/AMX). The output is float32 either way.
        jit_compile: compile the (rebuilt) SR generator with XLA.
        device: where to load and run it: None (a GPU when TensorFlow sees
            one, else the CPU), "cpu", "gpu" or a TF device string.
        colour_temperature: for a classification colouriser (`colorize.chroma`),
            the annealed-mean temperature > 0 instead of the export's default
            (its `config.json` `temperature`): lower is more saturated.
        engine: one of `ENGINES`. `auto` takes the export's LiteRT flatbuffer
            (`common.litert`, XNNPACK on the available cores) when it is valid,
            the model runs on the CPU with default options and the CPU is one
            where XNNPACK was measured faster (`common.litert.xnnpack_preferred`:
            no AVX-512), else the SavedModel; `litert` insists on the flatbuffer.

    Raises:
        ModelLoadError: the folder is missing, is not a SavedModel, or lacks
            the signature; a precision/XLA request it cannot honour; or
            `engine="litert"` without a valid flatbuffer (or with an option
            only the SavedModel has).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
    if engine != "savedmodel":
        lite = _litert_or_none(path, kind, engine, device, precision, jit_compile, colour_temperature)
        if lite is not None:
            _probe(lite, kind)
            return lite
    loaded = _load(path, kind, device)
    if colour_temperature is not None:
        loaded = _with_temperature(loaded, kind, float(colour_temperature))
    if precision != "float32" or jit_compile:
        if kind != "srgan" or not {"num_blocks", "filters"} <= set(loaded.config):
            raise ModelLoadError(f"{path}: --precision/--jit_compile need an SR generator exported by srgan.export "
                                 "(its config.json names the architecture)")
        loaded = _rebuild_generator(loaded, precision, jit_compile)
    _probe(loaded, kind)
    return loaded


def _litert_or_none(path: str, kind: str, engine: str, device: Optional[str], precision: str, jit_compile: bool,
                    colour_temperature: Optional[float]) -> Optional[LoadedModel]:
    """The flatbuffer engine for `engine` auto/litert, or None when auto settles on the SavedModel.

    Raises:
        ModelLoadError: `litert` asked for but not possible (the reason named).
    """
    from common.litert import FLATBUFFER, LiteRTError, LiteRTRunner, flatbuffer_problem, xnnpack_preferred

    if kind not in _OUTPUT_KEYS:
        raise ValueError(f"unknown model kind {kind!r}")
    blocker = None
    if "GPU" in device_name(device).upper():
        blocker = "the model runs on a GPU (LiteRT's XNNPACK is a CPU engine)"
    elif precision != "float32" or jit_compile:
        blocker = "--precision/--jit_compile rebuild the SavedModel's generator"
    elif colour_temperature is not None:
        blocker = "a colour temperature needs the SavedModel's with_temperature signature"
    elif not os.path.isdir(path):
        return None  # `_load` reports the missing folder
    elif engine == "auto" and not xnnpack_preferred():
        return None  # this CPU runs the SavedModel faster (`common.litert.xnnpack_preferred`)
    else:
        config = _read_config(path)
        blocker = flatbuffer_problem(path, config)
        if blocker is None and config.get("litert", {}).get("output") != _OUTPUT_KEYS[kind]:
            blocker = f"its {FLATBUFFER} is not a {kind} model's"
    if blocker is None:
        try:
            runner = LiteRTRunner(os.path.join(path, FLATBUFFER))
        except LiteRTError as e:
            blocker = str(e)
        else:
            return LoadedModel(path=path, config=config, fn=runner, output_key=_OUTPUT_KEYS[kind],
                               input_key="", device="/CPU:0", engine="litert")
    if engine == "litert":
        raise ModelLoadError(f"{path}: --engine litert not possible: {blocker} (use --engine savedmodel or auto; "
                             f"exports write {FLATBUFFER} beside the SavedModel)")
    return None


def _read_config(path: str) -> dict:
    """The folder's `config.json` as a dict ({} when absent).

    Raises:
        ModelLoadError: unreadable or not a JSON object.
    """
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        return {}
    try:
        with open(cfg_path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelLoadError(f"{cfg_path}: cannot read the model's config.json ({_one_line(e)})") from e
    if not isinstance(config, dict):
        raise ModelLoadError(f"{cfg_path}: config.json must hold a JSON object, found {type(config).__name__}")
    return config


def _one_line(e: BaseException, limit: int = 200) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:limit]}" + ("..." if len(text) > limit else "")


def _probe(model: LoadedModel, kind: str) -> None:
    """Runs the model once on a tiny input and checks the output's shape.

    A model of the wrong kind (an identity or a 2x model given as the 4x SR
    generator, a colouriser that does not give RGB) is refused here in one line
    instead of writing misnamed or wrong-sized outputs.

    Raises:
        ModelLoadError: the model fails on the probe, or gives the wrong shape.
    """
    side = 16 if kind == "srgan" else 64  # colouriser encoders downsample by up to 32
    channels = 3 if kind == "srgan" else 1
    scale = model_scale(model) if kind == "srgan" else 1
    try:
        out = model.run(np.zeros((1, side, side, channels), np.float32))
    except Exception as e:
        raise ModelLoadError(f"{model.path}: the {kind} model fails on a {side}x{side}x{channels} probe "
                             f"({_one_line(e)})") from e
    want = (1, side * scale, side * scale, 3)
    if tuple(out.shape) != want:
        what = f"does not upscale {scale}x" if kind == "srgan" else "does not give an RGB image of its input's size"
        raise ModelLoadError(f"{model.path}: the {kind} model {what}: a {side}x{side}x{channels} probe gave "
                             f"{'x'.join(map(str, out.shape[1:]))}, expected {'x'.join(map(str, want[1:]))}")


def _with_temperature(loaded: LoadedModel, kind: str, temperature: float) -> LoadedModel:
    """The colouriser's `with_temperature` signature (see `colorize.saved_model`) at `temperature`."""
    fn = getattr(loaded._module, "signatures", {}).get("with_temperature") if kind == "colorize" else None
    if fn is None:
        raise ModelLoadError(f"{loaded.path}: a colour temperature needs a classification colouriser "
                             "(colorize.train --loss classification); this model has no with_temperature signature")
    if not temperature > 0:
        raise ValueError(f"colour temperature must be > 0, got {temperature}")
    t = tf.constant(temperature, tf.float32)
    config = dict(loaded.config, temperature=temperature)
    return dataclasses.replace(loaded, config=config, fn=lambda grey: fn(grey=grey, temperature=t))


def _rebuild_generator(loaded: LoadedModel, precision: str, jit_compile: bool) -> LoadedModel:
    """The exported generator rebuilt as Keras layers under `precision`, weights from the SavedModel."""
    import keras

    from srgan.model import build_generator
    from srgan.restore import load_generator_weights
    from srgan.saved_model import sr_output

    cfg = loaded.config
    policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        with tf.device(loaded.device or device_name()):
            model = build_generator(cfg["num_blocks"], cfg["filters"], cfg.get("scale", 4), cfg.get("arch", "srresnet"))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    try:
        load_generator_weights(model, loaded.path)
    except (ValueError, FileNotFoundError) as e:
        raise ModelLoadError(str(e)) from e

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def fn(lr):
        sr = model(tf.clip_by_value(lr, 0.0, 1.0), training=False)
        return {"sr": sr_output(sr)}

    config = dict(cfg, precision=precision, jit_compile=jit_compile)
    return LoadedModel(path=loaded.path, config=config, fn=fn, output_key="sr", input_key="lr", _module=model,
                       device=loaded.device)


def _load(path: str, kind: str, device: Optional[str] = None) -> LoadedModel:
    keys = {"colorize": ("grey", "rgb"), "srgan": ("lr", "sr")}
    if kind not in keys:
        raise ValueError(f"unknown model kind {kind!r}")
    input_key, output_key = keys[kind]
    device = None if device is None else device_name(device)
    if not os.path.isdir(path):
        raise ModelLoadError(
            f"{path}: no such model folder. Train and export one (python -m {kind}.export) "
            f"or point --{kind}_model at an exported SavedModel."
        )
    config = _read_config(path)
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        keras_files = sorted(f for f in os.listdir(path) if f.endswith(".keras"))
        if kind == "srgan" and keras_files:
            return dataclasses.replace(_load_keras_generator(path, os.path.join(path, keras_files[0]), config),
                                       device=device)
        raise ModelLoadError(f"{path}: not a TensorFlow SavedModel (no saved_model.pb)")
    try:
        with tf.device(device or device_name()):
            module = tf.saved_model.load(path)
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot load SavedModel ({type(e).__name__}: {e})") from e
    fn = module.signatures.get("serving_default")
    if fn is None:
        raise ModelLoadError(f"{path}: SavedModel has no serving_default signature")
    outputs = fn.structured_outputs
    if output_key not in outputs:
        raise ModelLoadError(f"{path}: expected a {kind} model with output {output_key!r}, found {sorted(outputs)}")
    inputs = sorted(fn.structured_input_signature[1])
    if inputs != [input_key]:
        raise ModelLoadError(f"{path}: expected a {kind} model with the one input {input_key!r}, found {inputs}")
    return LoadedModel(path=path, config=config, fn=fn, output_key=output_key, input_key=input_key, _module=module,
                       device=device)


def _load_keras_generator(path: str, keras_file: str, config: dict) -> LoadedModel:
    """A `.keras` SR generator (e.g. from `srgan.import_tl --format keras`), loaded with `safe_mode=True`.

    Safe mode refuses Python lambdas stored in the file, so loading runs only
    the layers this project registers.
    """
    import keras

    import srgan.model_tl  # noqa: F401  (registers the custom layers the file names)
    from srgan.saved_model import sr_output

    try:
        model = keras.saving.load_model(keras_file, safe_mode=True, compile=False)
    except Exception as e:
        raise ModelLoadError(f"{keras_file}: cannot load Keras model ({type(e).__name__}: {e})") from e

    def fn(lr):
        return {"sr": sr_output(model(lr, training=False))}

    return LoadedModel(path=path, config=config, fn=fn, output_key="sr", input_key="lr", _module=model)


def model_scale(model: LoadedModel, default: int = 4) -> int:
    """The SR factor from the model's config (4 unless the config says otherwise)."""
    return int(model.config.get("scale", default))


def load_found(path: Optional[str], kind: str, engine: Optional[str] = None, **kwargs) -> LoadedModel:
    """`load_model` of a model named as the command names it: a folder, or None for the bundled
    default (found as `pipeline.bundled.resolve_model` finds it), on `DEFAULT_ENGINE` unless
    `engine` says otherwise; what `pipeline.run`, `Pipeline.load` and `pipeline.compose` load.

    Raises:
        ModelLoadError: not found (the message lists every place looked), or unloadable.
    """
    from pipeline.bundled import ModelNotFoundError, resolve_model

    try:
        found = resolve_model(path, kind)
    except ModelNotFoundError as e:
        raise ModelLoadError(str(e)) from e
    return load_model(found, kind, engine=engine or DEFAULT_ENGINE, **kwargs)


def maybe_load(path: Optional[str], kind: str) -> Optional[LoadedModel]:
    """`load_model` unless `path` is empty/None."""
    return load_model(path, kind) if path else None
