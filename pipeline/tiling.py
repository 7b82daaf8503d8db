"""Tiled super-resolution with feathered blending, so memory is bounded by the tile.

The input is cut into overlapping tiles (`data.tiles.tile_boxes`), each tile is
upscaled on its own, and the results are blended with a weight window that is 1
in a tile's interior, ramps linearly across the middle of the overlap and is 0
in its outer quarter (pixels that saw the tile edge's zero padding), so no seam
shows. The overlap should exceed four times the network's receptive-field
radius for tiled and whole-image results to agree closely. Tile edges that lie on the frame border are not ramped. The output
can be any array-like with numpy slicing, e.g. a `np.memmap` on disk.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional

import numpy as np

from data.tiles import Box, tile_boxes


def _ramp(n: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1-D weights of length n for a tile side that overlaps its neighbour by >= `overlap`.

    On a side shared with another tile, the outer quarter of the overlap gets
    weight 0 (those pixels saw the zero padding at the tile's edge, inside the
    network's receptive field), the next half ramps linearly up to 1. The two
    neighbours' ramps cover the same stretch with complementary weights, so the
    blend is smooth and uses only pixels at least overlap/4 inside a tile.
    """
    w = np.ones(n, np.float32)
    margin, ramp_len = overlap // 4, max(overlap // 2, 1)
    if overlap > 0 and margin + ramp_len <= n:
        ramp = np.concatenate([np.zeros(margin, np.float32), (np.arange(ramp_len, dtype=np.float32) + 0.5) / ramp_len])
        if ramp_start:
            w[: ramp.size] = np.minimum(w[: ramp.size], ramp)
        if ramp_end:
            w[n - ramp.size :] = np.minimum(w[n - ramp.size :], ramp[::-1])
    return w


def feather_window(box: Box, height: int, width: int, overlap: int, scale: int) -> np.ndarray:
    """Blend weights `[scale*h, scale*w, 1]` for one tile's output.

    Ramps only on sides that touch another tile (not on the frame border);
    constant over each `scale` x `scale` output block.
    """
    # The ramps are made on the input grid and repeated: each output block of
    # scale x scale pixels has one weight, so blending tiles that each agree
    # with the input under a block-mean operator keeps that agreement exactly.
    wy = np.repeat(_ramp(box.height, overlap, box.top > 0, box.top + box.height < height), scale)
    wx = np.repeat(_ramp(box.width, overlap, box.left > 0, box.left + box.width < width), scale)
    return (wy[:, None] * wx[None, :])[..., None]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Box]:
    """Tiles of at most `tile` px with at least `overlap` px shared between neighbours."""
    if tile <= 2 * overlap:
        raise ValueError(f"--tile ({tile}) must be more than twice --tile_overlap ({overlap})")
    return tile_boxes(height, width, tile, tile, min_overlap=overlap)


def iter_tiles(image, boxes: list[Box]) -> Iterator[tuple[Box, np.ndarray]]:
    for box in boxes:
        yield box, np.asarray(image[box.top : box.top + box.height, box.left : box.left + box.width], np.float32)


def _upscaled(image, boxes: list[Box], upscale, batch_size: int):
    """(box, upscaled tile) for `boxes`, in order: up to `batch_size` equal-sized tiles per `upscale` call."""
    pending: list = []
    for box, lr in iter_tiles(image, boxes):
        if pending and (len(pending) >= batch_size or pending[0][1].shape != lr.shape):
            yield from zip([b for b, _ in pending], upscale(np.stack([t for _, t in pending])))
            pending = []
        pending.append((box, lr))
    if pending:
        yield from zip([b for b, _ in pending], upscale(np.stack([t for _, t in pending])))


def iter_upscaled_bands(
    image,
    upscale: Callable[[np.ndarray], np.ndarray],
    scale: int,
    tile: int = 256,
    overlap: int = 16,
    progress: Optional[Callable[[int, int], None]] = None,
    batch_size: int = 1,
    clip: bool = True,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Upscales `image` tile by tile and yields finished bands of output rows, top to bottom.

    Tiles are visited row by row; output rows are final once every tile that
    overlaps them is done, so only one band of tiles (plus the overlap carried
    into the next) is ever in memory.

    Args:
        image: `[H, W, C]` float in [0, 1] (anything with numpy slicing and `.shape`).
        upscale: maps a stack of equal-sized tiles `[N, h, w, C]` to
            `[N, scale*h, scale*w, C]` (one tile is a stack of one).
        scale: the upscaling factor.
        tile: tile side in input px.
        overlap: least overlap between neighbouring tiles, in input px.
        progress: called with (tiles done, tiles total) after each tile.
        batch_size: tiles of a band per `upscale` call, at most (fewer,
            larger model calls; the tiles' results do not depend on it when
            `upscale` treats each tile on its own).
        clip: clip the blended rows to [0, 1] (off for values in other units,
            e.g. a FITS frame's linear units).

    Yields:
        (first input row, end input row, output rows `[scale*(end-first), scale*W, C]`
        float32, in [0, 1] when `clip`) covering the frame exactly once.
    """
    h, w, c = image.shape
    boxes = plan_tiles(h, w, tile, overlap)
    rows = sorted({b.top for b in boxes})
    carry_acc = carry_w = None
    done = 0
    for i, top in enumerate(rows):
        band = [b for b in boxes if b.top == top]
        band_h = max(b.height for b in band)
        next_top = rows[i + 1] if i + 1 < len(rows) else h
        acc = np.zeros((band_h * scale, w * scale, c), np.float32)
        wsum = np.zeros((band_h * scale, w * scale, 1), np.float32)
        if carry_acc is not None:
            acc[: carry_acc.shape[0]] += carry_acc
            wsum[: carry_w.shape[0]] += carry_w
        for box, sr in _upscaled(image, band, upscale, max(1, batch_size)):
            sr = np.asarray(sr, np.float32)
            expected = (box.height * scale, box.width * scale, c)
            if sr.shape != expected:
                raise ValueError(f"upscale returned shape {sr.shape} for a tile, expected {expected}")
            win = feather_window(box, h, w, overlap, scale)
            y0, x0 = (box.top - top) * scale, box.left * scale
            acc[y0 : y0 + expected[0], x0 : x0 + expected[1]] += sr * win
            wsum[y0 : y0 + expected[0], x0 : x0 + expected[1]] += win
            done += 1
            if progress:
                progress(done, len(boxes))
        final = (next_top - top) * scale
        # Keep only the overlap rows for the next band, then normalise the
        # finished rows in place: one band buffer alive at a time, no copies.
        carry_acc, carry_w = acc[final:].copy(), wsum[final:].copy()
        done_rows, weights = acc[:final], wsum[:final]
        np.maximum(weights, 1e-12, out=weights)
        np.divide(done_rows, weights, out=done_rows)
        if clip:
            np.clip(done_rows, 0.0, 1.0, out=done_rows)
        del wsum, weights
        yield top, next_top, done_rows
        del acc, done_rows


def upscale_tiled(
    image,
    upscale: Callable[[np.ndarray], np.ndarray],
    scale: int,
    tile: int = 256,
    overlap: int = 16,
    out: Optional[np.ndarray] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    batch_size: int = 1,
) -> np.ndarray:
    """`iter_upscaled_bands` gathered into one array `[scale*H, scale*W, C]` (or into `out`)."""
    h, w, c = image.shape
    if out is None:
        out = np.zeros((h * scale, w * scale, c), np.float32)
    for top, end, rows in iter_upscaled_bands(image, upscale, scale, tile, overlap, progress, batch_size):
        out[top * scale : end * scale] = rows
    return out
