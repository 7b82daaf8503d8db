"""The train/dev/test layout written by `python -m data.prepare` (no TensorFlow here)."""
from __future__ import annotations

import os

from absl import logging

from data.io import ImageReadError, check_image_file, list_images

SPLITS = ("train", "dev", "test")


def split_files(data_dir: str, split: str) -> list[str]:
    """Images of one split in the layout written by `python -m data.prepare`.

    Args:
        data_dir: the `--out` folder of `data.prepare` (holds `train/`, `dev/`, `test/`).
        split: `train`, `dev` or `test`.

    Raises:
        ValueError: unknown split, or no images there (the message says how to make them).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    folder = os.path.join(data_dir, split)
    if not os.path.isdir(folder):
        raise ValueError(
            f"{folder}: no such folder. Prepare the data first: "
            f"python -m data.prepare --src IMAGES_DIR --out {data_dir}"
        )
    files, problems = [], []
    for path in list_images(folder):
        try:
            check_image_file(path)
        except ImageReadError as e:
            problems.append(str(e))
            logging.warning("skipping %s", e)
            continue
        files.append(path)
    if not files:
        detail = f" ({len(problems)} unusable file(s), e.g. {problems[0]})" if problems else ""
        raise ValueError(f"{folder}: no usable images (PNG/JPEG/TIFF/FITS) in the {split} split{detail}")
    return files


__all__ = ["SPLITS", "split_files"]
