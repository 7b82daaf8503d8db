"""Where the models are: the bundled defaults, found wherever the tool runs.

The exported models live in `checkpoints/` at the top of the repository. A
non-editable `pip install .` ships that folder as the package data of
`astro_checkpoints` (see `setup.py`), so an installed tool has its models
without a checkout. A model named on the command line (or in the API) wins;
otherwise the folders below are searched in order and the first that holds the
model is used:

1. `$ASTRO_MODELS_DIR` (a folder holding `colorize/`, `srgan/`, ...), when set;
2. the installed package data (`<site-packages>/astro_checkpoints/`);
3. the repository checkout this code runs from (`<repo>/checkpoints/`).

A relative model path that does not exist from the working directory (e.g.
`--srgan_model checkpoints/srgan_gan` typed in another folder) is looked up the
same way, by its name inside those folders. Nothing here imports TensorFlow.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Optional

#: Environment variable naming a folder of models that overrides the bundled ones.
ENV_VAR = "ASTRO_MODELS_DIR"
#: The installed package that holds `checkpoints/` after `pip install .`.
PACKAGE = "astro_checkpoints"
#: The default model of each kind, a sub-folder of the models folder.
DEFAULT_NAMES = {"colorize": "colorize", "srgan": "srgan"}

_CHECKOUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "checkpoints")


class ModelNotFoundError(FileNotFoundError):
    """No folder holds the model asked for; the message lists every place looked."""


def installed_dir() -> Optional[str]:
    """The installed `astro_checkpoints` folder, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    return locations[0] if locations else None


def search_dirs() -> list[tuple[str, str]]:
    """(label, folder) for each place models are looked for, in order (the env var only when set)."""
    places = []
    env = os.environ.get(ENV_VAR)
    if env:
        places.append((f"${ENV_VAR}", os.path.abspath(os.path.expanduser(env))))
    inst = installed_dir()
    if inst:
        places.append(("installed package data", inst))
    places.append(("repository checkout", _CHECKOUT))
    return places


def _looked(tried: list[tuple[str, str]]) -> str:
    lines = [f"  {path} ({label})" for label, path in tried]
    if not os.environ.get(ENV_VAR):
        lines.append(f"  (${ENV_VAR} is not set)")
    return "\n".join(lines)


def default_model_dir(kind: str) -> str:
    """The folder of the default model of `kind` (`colorize` or `srgan`).

    Raises:
        ValueError: an unknown kind.
        ModelNotFoundError: no search folder holds it; the message lists them all.
    """
    if kind not in DEFAULT_NAMES:
        raise ValueError(f"unknown model kind {kind!r}; choose from {sorted(DEFAULT_NAMES)}")
    return find_model(DEFAULT_NAMES[kind], kind)


def find_model(name: str, kind: str) -> str:
    """The first folder `<search dir>/<name>` that exists (see the module docstring for the order).

    Raises:
        ModelNotFoundError: none exists; the message lists every place looked.
    """
    tried = [(label, os.path.join(folder, name)) for label, folder in search_dirs()]
    for _, path in tried:
        if os.path.isdir(path):
            return path
    raise ModelNotFoundError(
        f"no {kind} model {name!r} found; looked in:\n{_looked(tried)}\n"
        f"Set ${ENV_VAR} to a folder holding {name}/, point --{kind}_model at an exported SavedModel, "
        f"or export one (python -m {kind}.export)."
    )


def resolve_model(path: Optional[str], kind: str) -> str:
    """The model folder to load for a `--colorize_model` / `--srgan_model` value.

    Args:
        path: None or "" for the bundled default; otherwise a folder. A path that
            exists is used as given. A relative one that does not (e.g.
            `checkpoints/srgan_gan` from another folder) is looked up by its
            last part(s) in the search folders, so README commands work anywhere.
        kind: `colorize` or `srgan`.

    Raises:
        ModelNotFoundError: nothing found; the message lists every place looked.
    """
    if not path:
        return default_model_dir(kind)
    if os.path.isdir(path) or os.path.isabs(path):
        # An existing folder, or an absolute path the user meant exactly:
        # `pipeline.models` reports a missing one with the path itself.
        return path
    rel = os.path.normpath(path)
    parts = rel.split(os.sep)
    name = os.path.join(*parts[1:]) if parts[0] == "checkpoints" and len(parts) > 1 else rel
    tried = [("as given, from the working directory", os.path.abspath(path))]
    tried += [(label, os.path.join(folder, name)) for label, folder in search_dirs()]
    for _, candidate in tried[1:]:
        if os.path.isdir(candidate):
            return candidate
    raise ModelNotFoundError(
        f"{path}: no such model folder; looked in:\n{_looked(tried)}\n"
        f"Point --{kind}_model at an exported SavedModel or export one (python -m {kind}.export)."
    )
