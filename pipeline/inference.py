"""The paper's end-to-end job (sec. 5.2) as library code: grey -> 224 colour -> 4x.

`run.py` handles files and flags; this module works on arrays. All images are
float32 in [0, 1], channels last.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from data.colour import rgb_to_luma
from data.examples import resize_image
from data.io import ImageReadError, check_frame_size, list_images, read_image
from pipeline.models import LoadedModel

# Largest frame faithful mode decodes (declared size, checked before decoding):
# it reads the whole frame only to shrink it to 224 px, with about 40 bytes of
# working arrays per pixel of an 8-bit RGB input at the peak, so 2**27 pixels
# (e.g. 11585 x 11585) needs about 5 GB. Full mode allows `data.io.MAX_PIXELS`.
MAX_PIXELS = 2**27


def to_luminance(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Grey `[H, W, 1]` of any image; also says whether the input had colour.

    RGB whose three channels are equal counts as grey.
    """
    if image.shape[-1] == 1:
        return image, False
    colour = not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))
    return np.asarray(rgb_to_luma(image), np.float32), colour


def to_working_size(grey: np.ndarray, size: int) -> np.ndarray:
    """Resizes a grey frame `[H, W, 1]` to `[size, size, 1]` like training does (paper 5.2)."""
    return np.asarray(resize_image(grey[None], size, size)[0])


def sr_output(sr) -> np.ndarray:
    """Any upscaler's output as the pipeline uses it: float32, clipped to [0, 1] (numpy).

    The host-side twin of `srgan.saved_model.sr_output` (which the exported
    and rebuilt generators already apply in TensorFlow), for outputs of any
    SR callable: an exported model of another origin, bicubic, Lanczos.
    `[..., 3]` in, float32 of the same shape out.
    """
    return np.clip(np.asarray(sr, np.float32), 0.0, 1.0)


def colourise_and_upscale(
    grey: np.ndarray, colorizer: LoadedModel, upscaler: LoadedModel, consistency: str = "auto", clock=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The faithful pipeline on a batch already at the working size.

    Args:
        grey: `[B, S, S, 1]` in [0, 1], S a multiple of 16 (224 in the paper).
        consistency: `pipeline.consistency` mode; `auto` (and `bicubic`)
            correct each SR output so that its antialiased bicubic downscale is
            the colour image it came from; `none` leaves the network's output.
        clock: a `pipeline.overlap.StageClock` that receives the seconds of
            stages `colourise`, `sr` and `consistency` (None: not timed).

    Returns:
        (colour `[B, S, S, 3]`, upscaled `[B, scale*S, scale*S, 3]`), both in [0, 1].
    """
    from pipeline.consistency import consistent_display, operator_for
    from pipeline.overlap import timed

    with timed(clock, "colourise"):
        colour = np.clip(colorizer.run(grey), 0.0, 1.0)
    with timed(clock, "sr"):
        upscaled = sr_output(upscaler.run(colour))
    # The working-size colour image is a picture made by resizing: bicubic is its operator.
    operator = operator_for(consistency, is_raw_frame=False)
    if operator is not None:
        scale = upscaled.shape[1] // colour.shape[1]
        with timed(clock, "consistency"):
            upscaled = np.stack([consistent_display(u, c, scale, operator)[0] for u, c in zip(upscaled, colour)])
    return colour, upscaled


@dataclasses.dataclass
class Job:
    """One input file and where its outputs go."""

    source: str
    output: str
    intermediate: Optional[str] = None


_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def _split_name(path: str) -> tuple[str, str]:
    """(stem, extension) of a file name; `.gz`/`.fz` count as part of the extension (`m51`, `.fits.gz`)."""
    name = os.path.basename(path)
    tail = ""
    for ext in (".gz", ".fz"):
        if name.lower().endswith(ext) and len(name) > len(ext):
            name, tail = name[: -len(ext)], name[-len(ext):]
    stem, ext = os.path.splitext(name)
    return stem, ext + tail


def _safe(text: str) -> str:
    # Names come from the file system but end up in another folder: keep them
    # to safe characters so they cannot smuggle separators or control codes.
    return _UNSAFE.sub("_", text).strip(". ")


def _short_hash(rel: str) -> str:
    """8 hex digits of SHA-256 of a relative path (undecodable bytes kept as they are on disk)."""
    return hashlib.sha256(rel.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _stem(path: str) -> str:
    """The safe stem of an input's name (`m51.fits.gz` -> `m51`)."""
    return _safe(_split_name(path)[0]) or "image"


def _part_name(name: str, rel: str) -> str:
    """A safe folder/file stem; one that sanitising changed (non-ASCII, spaces) gets `-<hash of rel>`,
    so `日本.png` and `中国.png` never share an output whatever else is in the folder."""
    safe = _safe(name)
    return safe if safe and safe == name else f"{safe or 'image'}-{_short_hash(rel)}"


def name_candidates(source: str, root: str) -> list[str]:
    """Output base names for `source` (relative to the output folder, no suffix), in order of preference.

    The first is the plain stem (`a`); when it is taken (a.png and a.fits in
    one folder) the extension is kept (`a.fits`), then a short hash of the
    input's path relative to `root` is added (`a.fits-1f2e3d4c`). A stem that
    sanitising would change gets the hash at once. Each candidate depends on
    this input only, so names do not move when other files come and go (and
    `pipeline.manifest` keeps the name an input already has).
    """
    rel = os.path.relpath(os.path.abspath(source), root)
    rel_dir, _ = os.path.split(rel)
    parts = []
    if rel_dir and not rel_dir.startswith(".."):
        pieces = rel_dir.split(os.sep)
        parts = [_part_name(p, os.sep.join(pieces[: i + 1])) for i, p in enumerate(pieces)]
    stem, ext = _split_name(source)
    first = _part_name(stem, rel)
    ext = _safe(ext.lstrip(".")).lower()
    names = [first]
    if first == _safe(stem) and ext:
        names += [f"{first}.{ext}", f"{first}.{ext}-{_short_hash(rel)}"]
    elif ext:
        names.append(f"{first}.{ext}")
    return [os.path.join(*parts, n) for n in names]


def collect_inputs(input_path: str, recursive: bool = False, unsupported: Optional[list] = None) -> list[str]:
    """Image files named by `--input`: one file, or the image files of a folder.

    Args:
        unsupported: when given, receives the folder's image files of formats
            that are not read (see `data.io.list_images`).

    Raises:
        ImageReadError: the path does not exist.
    """
    if os.path.isdir(input_path):
        return list_images(input_path, recursive=recursive, unsupported=unsupported)
    if os.path.lexists(input_path):
        return [input_path]
    raise ImageReadError(input_path, "no such file or folder")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def exclude_own_outputs(sources: Sequence[str], input_path: str, output_dir: str,
                        recorded: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """Drops the tool's own outputs from the inputs (for `--output` inside or equal to `--input`).

    A source is dropped when its real path is a file this tool wrote
    (`recorded`: real paths from `pipeline.manifest`), or when the real output
    folder lies strictly inside the real input folder and the source is in it.

    Returns:
        (sources kept, sources dropped), each in the given order.
    """
    in_root = os.path.realpath(input_path if os.path.isdir(input_path) else os.path.dirname(input_path) or ".")
    out_root = os.path.realpath(output_dir)
    own_tree = out_root != in_root and _inside(out_root, in_root)
    recorded = set(recorded)
    kept, dropped = [], []
    for src in sources:
        real = os.path.realpath(src)
        if real in recorded or (own_tree and _inside(real, out_root)):
            dropped.append(src)
        else:
            kept.append(src)
    return kept, dropped


def _file_id(path: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def plan_jobs(
    sources: Sequence[str], input_root: str, output_dir: str, suffix: str, save_intermediate: bool,
    ext: str = ".png", previous: Optional[Mapping[str, str]] = None,
) -> list[Job]:
    """Output paths for each source, all inside `output_dir`, never the same file as an input.

    Sub-folders of a recursive input are kept (each part made safe), and two
    inputs with the same stem (a.png, a.fits) get distinct outputs (see
    `name_candidates`). Inputs are compared as real files (real path and
    device/inode), so an `--output` that reaches the input folder through a
    symbolic link or `..` is caught too.

    Args:
        previous: real source path -> output path it was given by an earlier
            run (`pipeline.manifest`); such a source keeps that output when it
            is still one of its candidates, so names are stable across runs.
    """
    out_root = os.path.abspath(output_dir)
    real_out = os.path.realpath(output_dir)
    root = os.path.abspath(input_root if os.path.isdir(input_root) else os.path.dirname(input_root) or ".")
    inputs = {os.path.realpath(s) for s in sources}
    input_ids = {i for i in map(_file_id, sources) if i is not None}
    previous = previous or {}
    # Case-folded so that names differing only in case (a.PNG, a.png) also stay
    # apart on case-insensitive file systems.
    used: set[str] = set()

    def files_of(base: str) -> list[str]:
        return [f"{base}{suffix}{ext}", f"{base}_colour224.png"]

    def free(base: str) -> bool:
        for path in files_of(base):
            real = os.path.join(real_out, os.path.relpath(path, out_root))
            if path.casefold() in used or os.path.realpath(real) in inputs:
                return False
            if os.path.lexists(path) and _file_id(path) in input_ids:
                return False
        return True

    chosen: dict[int, str] = {}
    candidates = [[os.path.join(out_root, c) for c in name_candidates(s, root)] for s in sources]
    # Sources an earlier run already named keep their names first.
    for i, src in enumerate(sources):
        before = previous.get(os.path.realpath(src))
        for base in candidates[i]:
            if before is not None and os.path.realpath(files_of(base)[0]) == os.path.realpath(before) and free(base):
                chosen[i] = base
                used.update(p.casefold() for p in files_of(base))
                break
    for i in range(len(sources)):
        if i in chosen:
            continue
        options = candidates[i] + [f"{candidates[i][-1]}-{n}" for n in range(2, 10_000)]
        base = next(b for b in options if free(b))
        chosen[i] = base
        used.update(p.casefold() for p in files_of(base))
    jobs = []
    for i, src in enumerate(sources):
        out, inter = files_of(chosen[i])
        jobs.append(Job(source=src, output=out, intermediate=inter if save_intermediate else None))
    return jobs


def iter_loaded(batches: Iterable[list], size: int, workers: int = 2, clock=None) -> Iterator[tuple[list, list]]:
    """Decodes the next batch of inputs in background threads while the caller computes on this one.

    Args:
        batches: lists of `Job`s.
        size: working size for `load_grey`.
        workers: decoding threads (PIL, imageio and astropy release the GIL
            for much of their work).
        clock: a `pipeline.overlap.StageClock` that receives the decoding time as `decode`.

    Yields:
        (the batch, per job either `(grey, was_colour)` or the `ImageReadError`
        that reading it raised), in order.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.overlap import timed

    def load(path: str):
        try:
            with timed(clock, "decode"):
                return load_grey(path, size)
        except ImageReadError as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending = None
        for batch in batches:
            futures = [pool.submit(load, job.source) for job in batch]
            if pending is not None:
                yield pending[0], [f.result() for f in pending[1]]
            pending = (batch, futures)
        if pending is not None:
            yield pending[0], [f.result() for f in pending[1]]


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of at most `size` items."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_grey(path: str, size: int) -> tuple[np.ndarray, bool]:
    """Reads one input, reduces it to luminance and resizes it to the working size.

    Returns:
        (grey `[size, size, 1]`, whether the input was a colour image).

    Raises:
        ImageReadError: unreadable file, or an image too small or too large.
    """
    image = read_image(path, max_pixels=MAX_PIXELS)
    h, w = image.shape[:2]
    check_frame_size(path, w, h)
    if h * w > MAX_PIXELS:
        raise ImageReadError(path, f"image is {w}x{h} px; too large for the faithful 224-px mode")
    grey, was_colour = to_luminance(image)
    return to_working_size(grey, size), was_colour
