"""Tiles and a deterministic train/dev/test split by source (library of `data.prepare`).

See `data.prepare` for the command line and the paper's section 3 it follows.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
from typing import Sequence

import numpy as np
from absl import logging

from common.files import atomic_write_bytes
from data.domains import is_held_out_credit
from data.formats import split_extension
from data.io import ImageReadError, list_images, read_image
from data.writers import encode_png
from data.splits import SPLITS
from data.tiles import tile_boxes


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
    """Resolved settings of one `data.prepare` run (written into the manifest)."""

    src: str
    out: str
    tile_width: int = 2040
    tile_height: int = 1356
    min_policy: str = "drop"
    split: tuple = (0.8, 0.1, 0.1)
    salt: str = ""
    skip_grey: bool = False
    bits: int = 8
    hold_out: bool = True


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """How many sources go to train/dev/test.

    dev and test get round(n * fraction) each, at least one each when n >= 3
    and their fraction is positive; train gets the rest.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not abs(sum(fractions) - 1.0) < 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    n_dev, n_test = (int(round(n * f)) for f in fractions[1:])
    if n >= 3:
        n_dev = max(n_dev, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_dev = min(n_dev, n)
    n_test = min(n_test, n - n_dev)
    return n - n_dev - n_test, n_dev, n_test


def assign_splits(source_ids: Sequence[str], fractions: Sequence[float], salt: str = "") -> dict[str, str]:
    """Deterministic split by source: order ids by sha1(salt + id), cut at the fractions."""
    ordered = sorted(source_ids, key=lambda s: hashlib.sha1((salt + s).encode("utf-8")).hexdigest())
    n_train, n_dev, _ = split_counts(len(ordered), fractions)
    out = {}
    for i, sid in enumerate(ordered):
        out[sid] = "train" if i < n_train else ("dev" if i < n_train + n_dev else "test")
    return out


def _safe_stem(relpath: str) -> str:
    stem = split_extension(relpath)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem.replace(os.sep, "__")).strip("._") or "image"


def _is_grey(image: np.ndarray) -> bool:
    if image.shape[-1] == 1:
        return True
    return bool(np.allclose(image[..., 0], image[..., 1], atol=1e-6) and np.allclose(image[..., 1], image[..., 2], atol=1e-6))


def _tiles_for(image: np.ndarray, config: PrepareConfig):
    """Yields (box, tile array, padded) for one source image, or nothing if dropped."""
    h, w = image.shape[:2]
    th, tw = config.tile_height, config.tile_width
    if h < th or w < tw:
        if config.min_policy == "drop":
            return
        if config.min_policy == "keep":
            # Tile as usual along a side that is long enough, keep the short side whole.
            for box in tile_boxes(h, w, min(th, h), min(tw, w)):
                yield box, image[box.top : box.top + box.height, box.left : box.left + box.width], False
            return
        padded = np.zeros((max(h, th), max(w, tw), image.shape[-1]), dtype=image.dtype)
        padded[:h, :w] = image
        image, h, w = padded, padded.shape[0], padded.shape[1]
        for box in tile_boxes(h, w, th, tw):
            yield box, image[box.top : box.top + th, box.left : box.left + tw], True
        return
    for box in tile_boxes(h, w, th, tw):
        yield box, image[box.top : box.top + th, box.left : box.left + tw], False


def _write_if_changed(path: str, payload: bytes) -> bool:
    if os.path.isfile(path):
        with open(path, "rb") as f:
            if f.read() == payload:
                return False
    atomic_write_bytes(path, payload)
    return True


def _previous_tiles(out: str) -> set[str]:
    path = os.path.join(out, "manifest.json")
    if not os.path.isfile(path):
        return set()
    try:
        with open(path, encoding="utf-8") as f:
            return {t["file"] for t in json.load(f).get("tiles", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def held_out_files(src: str) -> set[str]:
    """Paths (relative to `src`, '/'-separated) that `src/sources.json` marks as held out of every split.

    A record is held out when `data.fetch` flagged it (`held_out: true`) or its
    credit is a held-out domain's (`data.domains.is_held_out_credit`). No
    sources.json: nothing is known to be held out.

    Raises:
        ValueError: sources.json exists but is not a list of records.
    """
    path = os.path.join(src, "sources.json")
    if not os.path.isfile(path):
        return set()
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
        return {r["file"] for r in records if r.get("held_out") or is_held_out_credit(r.get("credit", ""))}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a data.fetch manifest ({e}); --nohold_out ignores it") from e


def prepare(config: PrepareConfig, progress: bool = True) -> dict:
    """Cuts tiles from every image under `config.src` into `config.out`.

    Sources that `src/sources.json` marks as held out (`held_out_files`) are in
    no split when `config.hold_out`.

    Returns:
        The manifest dict (also written as `manifest.json` and `manifest.csv`):
        `config`, `sources` (one record per source: id, split, size, status,
        reason, tiles) and `tiles` (file, source, split, box [top, left, h, w], padded).

    Raises:
        ValueError: `src` is not a folder, holds no image files, or `out` is inside `src`.
    """
    src, out = os.path.abspath(config.src), os.path.abspath(config.out)
    if not os.path.isdir(src):
        raise ValueError(f"{config.src}: source folder does not exist")
    if out == src or out.startswith(src + os.sep):
        raise ValueError(f"--out {config.out} is inside --src {config.src}; the tiles would be read back as sources")
    files = list_images(src, recursive=True)
    if not files:
        raise ValueError(f"{config.src}: no image files (PNG/JPEG/TIFF/FITS) found")
    ids = [os.path.relpath(p, src).replace(os.sep, "/") for p in files]
    held_out = held_out_files(src) if config.hold_out else set()
    splits = assign_splits([i for i in ids if i not in held_out], config.split, config.salt)
    previous = _previous_tiles(out)

    from tqdm import tqdm

    sources, tiles, stems = [], [], set()
    written = 0
    for path, sid in tqdm(list(zip(files, ids)), desc="prepare", unit="img", disable=not progress):
        if sid in held_out:
            sources.append({"source": sid, "split": "", "status": "held_out", "tiles": 0,
                            "reason": "held out for the cross-domain evaluation (sources.json)"})
            continue
        record = {"source": sid, "split": splits[sid], "status": "ok", "reason": "", "tiles": 0}
        try:
            image = read_image(path)
        except ImageReadError as e:
            record.update(status="error", reason=e.reason)
            logging.warning("skipped %s", e)
            sources.append(record)
            continue
        record.update(height=int(image.shape[0]), width=int(image.shape[1]), grey=_is_grey(image))
        if config.skip_grey and record["grey"]:
            record.update(status="skipped", reason="greyscale source (--skip_grey)")
            sources.append(record)
            continue
        stem = _safe_stem(sid)
        if stem in stems:
            stem = f"{stem}-{hashlib.sha1(sid.encode()).hexdigest()[:8]}"
        stems.add(stem)
        for box, tile, padded in _tiles_for(image, config):
            rel = f"{splits[sid]}/{stem}_y{box.top:05d}_x{box.left:05d}.png"
            written += _write_if_changed(os.path.join(out, rel), encode_png(tile, bits=config.bits))
            tiles.append({"file": rel, "source": sid, "split": splits[sid], "box": list(box), "padded": padded})
            record["tiles"] += 1
        if record["tiles"] == 0:
            record.update(status="dropped", reason=f"smaller than a {config.tile_width}x{config.tile_height} tile")
        sources.append(record)

    for stale in sorted(previous - {t["file"] for t in tiles}):
        target = os.path.join(out, stale)
        if os.path.isfile(target) and os.path.abspath(target).startswith(out + os.sep):
            os.unlink(target)

    manifest = {"config": dataclasses.asdict(config), "sources": sources, "tiles": tiles}
    manifest["config"]["split"] = list(config.split)
    atomic_write_bytes(os.path.join(out, "manifest.json"), (json.dumps(manifest, indent=1) + "\n").encode())
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["file", "source", "split", "top", "left", "height", "width", "padded"])
    for t in tiles:
        writer.writerow([t["file"], t["source"], t["split"], *t["box"], int(t["padded"])])
    atomic_write_bytes(os.path.join(out, "manifest.csv"), buf.getvalue().encode())
    manifest["written"] = written
    return manifest


def summary(manifest: dict) -> str:
    """One paragraph: sources by status, tiles by split."""
    by_status: dict[str, int] = {}
    for s in manifest["sources"]:
        by_status[s["status"]] = by_status.get(s["status"], 0) + 1
    by_split = {k: sum(t["split"] == k for t in manifest["tiles"]) for k in SPLITS}
    return (
        f"{len(manifest['sources'])} sources ("
        + ", ".join(f"{v} {k}" for k, v in sorted(by_status.items()))
        + f"); {len(manifest['tiles'])} tiles: "
        + ", ".join(f"{by_split[k]} {k}" for k in SPLITS)
        + f"; {manifest.get('written', 0)} files written"
    )
