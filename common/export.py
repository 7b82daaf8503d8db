"""Writing a SavedModel folder atomically, with its config.json beside it.

Shared by `colorize` and `srgan`: the model is saved into a temporary folder
next to the target and renamed into place, so a crash never leaves a
half-written model where the pipeline looks for one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Mapping, Optional

from common.files import atomic_write_bytes


class ExportError(RuntimeError):
    """The export folder cannot be written (e.g. exists and is not empty)."""


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    """Refuses a non-empty existing folder (unless `overwrite`) or a file in the way.

    Raises:
        ExportError: with a message saying what to do.
    """
    if os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise ExportError(f"{output_dir} exists and is not a folder")
        if os.listdir(output_dir) and not overwrite:
            raise ExportError(f"{output_dir} exists and is not empty; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_folder(output_dir: str, overwrite: bool = False):
    """Yields a temporary folder beside `output_dir` that replaces it on success.

    A crash never leaves a half-written folder where a reader looks for one: the
    contents are written into the temporary folder, which is renamed into place
    (an old `output_dir`, allowed by `overwrite`, is moved aside first and
    deleted afterwards). On any error the temporary folder is removed.

    Raises:
        ExportError: `output_dir` is a file, or not empty and `overwrite` is False.
    """
    output_dir = os.path.abspath(output_dir)
    check_output_dir(output_dir, overwrite)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    # mkdtemp makes a 0700 folder; give it the permissions of a plain mkdir.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        yield tmp
        old = None
        if os.path.exists(output_dir):
            old = tempfile.mkdtemp(prefix=".old-export-", dir=parent)
            os.rmdir(old)
            os.replace(output_dir, old)
        os.replace(tmp, output_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_config_json(folder: str, meta: Mapping[str, Any]) -> None:
    """Writes `meta` as `folder/config.json` (sorted, indented)."""
    text = json.dumps(dict(meta), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(os.path.join(folder, "config.json"), text.encode("utf-8"))


def write_saved_model(module, signature, output_dir: str, meta: Mapping[str, Any], overwrite: bool = False,
                      flatbuffer_output: Optional[str] = None) -> str:
    """Saves `module` with `signature` as `serving_default` into `output_dir`, atomically.

    With `flatbuffer_output` the LiteRT flatbuffer of that output is written
    beside it when it passes the parity check (`common.litert.write_flatbuffer`;
    `config.json`'s `litert` says what was done, or why not).

    Args:
        module: a `tf.Module` holding the model.
        signature: its `tf.function` with an input signature.
        output_dir: the SavedModel folder to create.
        meta: written as `config.json` beside `saved_model.pb`.
        overwrite: replace an existing non-empty folder.
        flatbuffer_output: the serving output to convert (e.g. `sr`); None: no flatbuffer.

    Returns:
        `output_dir` as an absolute path.
    """
    import tensorflow as tf

    meta = dict(meta)
    with atomic_folder(output_dir, overwrite) as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": signature})
        if flatbuffer_output:
            from common.litert import write_flatbuffer

            write_flatbuffer(tmp, flatbuffer_output, meta)
        write_config_json(tmp, meta)
    return os.path.abspath(output_dir)
