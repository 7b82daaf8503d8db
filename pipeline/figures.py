"""Side-by-side figures for `pipeline.evaluate` (matplotlib, no display needed)."""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from common.files import atomic_write_bytes


def _zoom_box(shape: tuple, frac: float = 0.25) -> tuple[int, int, int, int]:
    """The central `frac` of the image: (top, left, height, width)."""
    h, w = shape[:2]
    ch, cw = max(1, int(h * frac)), max(1, int(w * frac))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def side_by_side(path: str, panels: Sequence[tuple[str, np.ndarray]], title: str = "", zoom: bool = True) -> None:
    """Writes a PNG figure: the panels in a row, each with a zoomed inset of its centre below.

    Args:
        path: PNG to write (atomically).
        panels: (label, image `[H, W, 1|3]` in [0, 1]) pairs; images may differ in size
            (the inset is taken from the same relative region of each).
        title: figure title.
        zoom: add the row of zoomed insets.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = 2 if zoom else 1
    fig, axes = plt.subplots(rows, len(panels), figsize=(3.2 * len(panels), 3.3 * rows), squeeze=False)
    for col, (label, image) in enumerate(panels):
        image = np.clip(np.asarray(image, np.float32), 0, 1)
        shown = image[..., 0] if image.shape[-1] == 1 else image
        ax = axes[0][col]
        ax.imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{label}\n{image.shape[1]}x{image.shape[0]}", fontsize=9)
        ax.axis("off")
        if zoom:
            top, left, h, w = _zoom_box(image.shape)
            ax.add_patch(Rectangle((left, top), w, h, fill=False, edgecolor="yellow", linewidth=1))
            crop = shown[top : top + h, left : left + w]
            axes[1][col].imshow(crop, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1,
                                interpolation="nearest")
            axes[1][col].set_title("zoom (centre)", fontsize=8)
            axes[1][col].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
