"""Debian's `stellarium-data` as a training source: find its `nebulae/default` folder, read its credits.

The folder may be given, be an installed package, or come from a `.deb`
unpacked with `dpkg-deb -x` (downloaded with `apt-get download` when needed).
The per-image credits are in its `textures.json`, which is not strict JSON.
Used by `data.fetching`; nothing here reads flags.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from typing import Optional

from data.sources import FetchError

STELLARIUM_SUBDIR = os.path.join("usr", "share", "stellarium", "nebulae", "default")
_NUMBER = re.compile(r"[-+]?(\d*)(\.?)(\d*)([eE][-+]?\d+)?")


# --------------------------------------------------------------------------- textures.json


def _relax_json(text: str) -> str:
    """Makes Stellarium's almost-JSON strict, changing nothing inside strings.

    Handles what `textures.json` files contain: trailing commas before `}`/`]`,
    numbers without a leading digit (`-.9794`, `.5`) or trailing digits (`5.`),
    and `//` or `/* */` comments.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1  # trailing comma: drop it
            else:
                out.append(c)
                i += 1
        elif c in "-+.0123456789":
            m = _NUMBER.match(text, i)
            sign = "-" if text[i] == "-" else ""
            whole, dot, frac, exp = m.group(1), m.group(2), m.group(3), m.group(4) or ""
            if not (whole or frac):
                out.append(c)  # not a number; let json.loads report it
                i += 1
                continue
            out.append(f"{sign}{whole or '0'}{'.' + (frac or '0') if dot else ''}{exp}")
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_textures_json(text: str, name: str = "textures.json") -> dict[str, dict]:
    """Credits per image file from a Stellarium `textures.json`.

    Args:
        text: the file's content (Stellarium's relaxed JSON).
        name: used in error messages.

    Returns:
        `{image file name: {"credit": str, "info_url": str}}` for every
        `subTiles` entry (searched recursively) with an `imageUrl`. Credit keys
        are matched case-insensitively (`short` and `Short` both occur).

    Raises:
        ValueError: the text cannot be parsed even after relaxing it.
    """
    try:
        data = json.loads(_relax_json(text))
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: not parseable even as relaxed JSON: {e.msg} at line {e.lineno} col {e.colno}") from e
    credits: dict[str, dict] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            url = node.get("imageUrl")
            if isinstance(url, str) and url:
                raw = node.get("imageCredits") or {}
                keys = {str(k).lower(): v for k, v in raw.items()} if isinstance(raw, dict) else {}
                credit = keys.get("short") or keys.get("full") or ""
                credits[url] = {"credit": str(credit).strip(), "info_url": str(keys.get("infourl") or "").strip()}
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    return credits


# --------------------------------------------------------------------------- finding Stellarium


def _nebulae_dir(root: str) -> Optional[str]:
    """The folder holding textures.json under `root` (itself, an unpacked .deb, or a Stellarium share dir)."""
    for sub in ("", STELLARIUM_SUBDIR, os.path.join("nebulae", "default")):
        candidate = os.path.join(root, sub) if sub else root
        if os.path.isfile(os.path.join(candidate, "textures.json")):
            return candidate
    return None


def _run(cmd: list[str], cwd: str, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError as e:
        raise FetchError(
            f"{cmd[0]} not found: {what} needs a Debian/Ubuntu system; elsewhere download the "
            f"stellarium-data .deb (or install Stellarium) and pass --stellarium_dir"
        ) from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        hint = " (try `sudo apt-get update` first)" if cmd[0] == "apt-get" else ""
        raise FetchError(f"{' '.join(cmd)} failed with exit code {proc.returncode}{hint}: " + " | ".join(tail))


def extract_deb(deb: str, cache_dir: str) -> str:
    """Unpacks a stellarium-data .deb with `dpkg-deb -x` (once) and returns its nebulae folder.

    Raises:
        FetchError: dpkg-deb is missing or fails, or the package has no nebulae/default/textures.json.
    """
    target = os.path.join(cache_dir, os.path.basename(deb)[: -len(".deb")])
    found = _nebulae_dir(target)
    if found:
        return found
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        _run(["dpkg-deb", "-x", os.path.abspath(deb), tmp], cwd=cache_dir, what="unpacking the .deb")
    except FetchError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not _nebulae_dir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(f"{deb}: has no {STELLARIUM_SUBDIR}/textures.json; is it stellarium-data?")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # only a complete extraction is ever found by the check above
    return _nebulae_dir(target)


def locate_stellarium(stellarium_dir: str = "", cache_dir: str = "",
                      installed: str = "/usr/share/stellarium/nebulae/default") -> str:
    """The Stellarium nebula-image folder to read from.

    Order: `stellarium_dir` (a folder or a `.deb`) when given; the installed
    package; a stellarium-data .deb already unpacked in, or downloaded to,
    `cache_dir`; else
    `apt-get download stellarium-data` into `cache_dir`, unpacked there.

    Raises:
        FetchError: with a message saying what failed and what to do.
    """
    if stellarium_dir:
        if stellarium_dir.endswith(".deb") and os.path.isfile(stellarium_dir):
            return extract_deb(stellarium_dir, cache_dir or os.path.dirname(os.path.abspath(stellarium_dir)))
        found = _nebulae_dir(stellarium_dir)
        if not found:
            raise FetchError(f"--stellarium_dir {stellarium_dir}: no textures.json there, nor under "
                             f"{STELLARIUM_SUBDIR} or nebulae/default")
        return found
    if installed and _nebulae_dir(installed):
        return installed
    if not cache_dir:
        raise FetchError("Stellarium is not installed and no cache folder was given to download it into")
    os.makedirs(cache_dir, exist_ok=True)
    unpacked = [d for d in sorted(glob.glob(os.path.join(cache_dir, "stellarium-data_*")))
                if not d.endswith((".deb", ".tmp")) and _nebulae_dir(d)]
    if unpacked:
        return _nebulae_dir(unpacked[-1])
    debs = sorted(glob.glob(os.path.join(cache_dir, "stellarium-data_*.deb")), key=os.path.getmtime)
    if not debs:
        _run(["apt-get", "download", "stellarium-data"], cwd=cache_dir, what="downloading stellarium-data")
        debs = sorted(glob.glob(os.path.join(cache_dir, "stellarium-data_*.deb")), key=os.path.getmtime)
        if not debs:
            raise FetchError(f"apt-get download stellarium-data left no stellarium-data_*.deb in {cache_dir}")
    return extract_deb(debs[-1], cache_dir)
