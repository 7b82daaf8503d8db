"""The paper's end-to-end job (sec. 5.2) as library code: grey -> 224 colour -> 4x.

`run.py` handles files and flags; this module works on arrays. All images are
float32 in [0, 1], channels last.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf

from data.colour import rgb_to_luma
from data.datasets import resize_image
from data.io import ImageReadError, list_images, read_image
from pipeline.models import LoadedModel

# Longest side accepted in faithful mode: larger frames would be read whole only
# to be shrunk to 224 px, which needs more memory than a user expects.
MAX_PIXELS = 40_000 * 40_000


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
    return np.asarray(resize_image(tf.convert_to_tensor(grey[None]), size, size)[0])


def sr_output(sr) -> np.ndarray:
    """The SR network's output as the pipeline uses it: float32, clipped to [0, 1]."""
    return np.clip(np.asarray(sr, np.float32), 0.0, 1.0)


def colourise_and_upscale(
    grey: np.ndarray, colorizer: LoadedModel, upscaler: LoadedModel, consistency: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """The faithful pipeline on a batch already at the working size.

    Args:
        grey: `[B, S, S, 1]` in [0, 1], S a multiple of 16 (224 in the paper).
        consistency: `pipeline.consistency` mode; `auto` (and `bicubic`)
            correct each SR output so that its antialiased bicubic downscale is
            the colour image it came from; `none` leaves the network's output.

    Returns:
        (colour `[B, S, S, 3]`, upscaled `[B, scale*S, scale*S, 3]`), both in [0, 1].
    """
    from pipeline.consistency import back_project, operator_for

    colour = np.clip(colorizer.run(grey), 0.0, 1.0)
    upscaled = sr_output(upscaler.run(colour))
    # The working-size colour image is a picture made by resizing: bicubic is its operator.
    operator = operator_for(consistency, is_raw_frame=False)
    if operator is not None:
        scale = upscaled.shape[1] // colour.shape[1]
        upscaled = np.stack([np.clip(back_project(u, c, scale, operator), 0.0, 1.0)
                             for u, c in zip(upscaled, colour)])
    return colour, upscaled


@dataclasses.dataclass
class Job:
    """One input file and where its outputs go."""

    source: str
    output: str
    intermediate: Optional[str] = None


def _stem(path: str) -> str:
    name = os.path.basename(path)
    for ext in (".gz", ".fz"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
    stem = os.path.splitext(name)[0]
    # Names come from the file system but end up in another folder: keep them
    # to safe characters so they cannot smuggle separators or control codes.
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", stem).strip(". ")
    return stem or "image"


def collect_inputs(input_path: str, recursive: bool = False) -> list[str]:
    """Image files named by `--input`: one file, or the image files of a folder.

    Raises:
        ImageReadError: the path does not exist.
    """
    if os.path.isdir(input_path):
        return list_images(input_path, recursive=recursive)
    if os.path.lexists(input_path):
        return [input_path]
    raise ImageReadError(input_path, "no such file or folder")


def plan_jobs(
    sources: Sequence[str], input_root: str, output_dir: str, suffix: str, save_intermediate: bool,
    ext: str = ".png",
) -> list[Job]:
    """Output paths for each source, all inside `output_dir`, never equal to an input.

    Sub-folders of a recursive input are kept (each part made safe), and two
    inputs with the same stem (a.png, a.fits) get distinct outputs.
    """
    out_root = os.path.abspath(output_dir)
    root = os.path.abspath(input_root if os.path.isdir(input_root) else os.path.dirname(input_root) or ".")
    inputs = {os.path.abspath(s) for s in sources}
    used: set[str] = set()
    jobs = []
    for src in sources:
        rel_dir = os.path.relpath(os.path.dirname(os.path.abspath(src)), root)
        parts = [] if rel_dir in (".", "") or rel_dir.startswith("..") else [_stem(p) for p in rel_dir.split(os.sep)]
        base = os.path.join(out_root, *parts, _stem(src))
        n, tag = 1, ""
        while {f"{base}{tag}{suffix}{ext}", f"{base}{tag}_colour224.png"} & (used | inputs):
            n += 1
            tag = f"-{n}"
        out = f"{base}{tag}{suffix}{ext}"
        inter = f"{base}{tag}_colour224.png"
        used.update({out, inter})
        inter = inter if save_intermediate else None
        jobs.append(Job(source=src, output=out, intermediate=inter))
    return jobs


def iter_loaded(batches: Iterable[list], size: int, workers: int = 2) -> Iterator[tuple[list, list]]:
    """Decodes the next batch of inputs in background threads while the caller computes on this one.

    Args:
        batches: lists of `Job`s.
        size: working size for `load_grey`.
        workers: decoding threads (PIL, imageio and astropy release the GIL
            for much of their work).

    Yields:
        (the batch, per job either `(grey, was_colour)` or the `ImageReadError`
        that reading it raised), in order.
    """
    from concurrent.futures import ThreadPoolExecutor

    def load(path: str):
        try:
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
    image = read_image(path)
    h, w = image.shape[:2]
    if h < 2 or w < 2:
        raise ImageReadError(path, f"image is {w}x{h} px; at least 2x2 is needed")
    if h * w > MAX_PIXELS:
        raise ImageReadError(path, f"image is {w}x{h} px; too large for the faithful 224-px mode")
    grey, was_colour = to_luminance(image)
    return to_working_size(grey, size), was_colour
