"""Tile geometry: cutting a frame into fixed-size, evenly overlapping tiles.

The paper (sec. 3) cut 2040x1356 tiles from each image, overlapping where the
image size is not a multiple of the tile size. Here the tiles along an axis are
spread evenly: n = ceil(length / tile) tiles, the first at 0, the last ending
exactly at the edge, the rest evenly between (start_i = round(i * (length -
tile) / (n - 1))). So every pixel is covered and overlaps are as even as they
can be. The same geometry serves `data.prepare` and tiled inference.
"""
from __future__ import annotations

import math
from typing import NamedTuple


class Box(NamedTuple):
    """A tile: top-left corner and size, in pixels."""

    top: int
    left: int
    height: int
    width: int


def tile_starts(length: int, tile: int, min_overlap: int = 0) -> list[int]:
    """Start offsets of tiles of size `tile` covering `[0, length)` exactly.

    Args:
        length: image extent along the axis (>= 1).
        tile: tile extent (>= 1). If `tile >= length`, one tile starting at 0.
        min_overlap: least overlap between neighbouring tiles (< tile).

    Returns:
        Sorted start offsets; the last tile ends at `length` when `tile <= length`.
    """
    if length < 1 or tile < 1:
        raise ValueError(f"length and tile must be >= 1, got {length}, {tile}")
    if not 0 <= min_overlap < tile:
        raise ValueError(f"min_overlap must be in [0, tile), got {min_overlap}")
    if tile >= length:
        return [0]
    stride = tile - min_overlap
    n = max(2, math.ceil((length - tile) / stride) + 1)
    span = length - tile
    return [round(i * span / (n - 1)) for i in range(n)]


def tile_boxes(height: int, width: int, tile_height: int, tile_width: int, min_overlap: int = 0) -> list[Box]:
    """Row-major boxes of `tile_height` x `tile_width` covering a `height` x `width` frame.

    Boxes are clipped to the frame when the frame is smaller than the tile.
    """
    rows = tile_starts(height, tile_height, min_overlap)
    cols = tile_starts(width, tile_width, min_overlap)
    return [
        Box(top, left, min(tile_height, height), min(tile_width, width))
        for top in rows
        for left in cols
    ]
