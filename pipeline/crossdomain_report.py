"""Tables and the colour figure grid of the cross-domain evaluation (`pipeline.crossdomain`)."""
from __future__ import annotations

import csv
import io
import math
from typing import Sequence

import numpy as np

from common.files import atomic_write_bytes

BASELINE = "bicubic (PIL)"

# (CSV / row key, Markdown header, format)
SR_COLUMNS = (
    ("domain", "domain", "{}"), ("lr", "LR", "{}"), ("method", "method", "{}"), ("n", "n", "{}"),
    ("psnr_rgb", "PSNR RGB", "{:.2f}"), ("d_psnr_rgb", "Δ vs bicubic", "{:+.2f}"), ("psnr_y", "PSNR Y", "{:.2f}"),
    ("ssim_rgb", "SSIM RGB", "{:.4f}"), ("ssim_y", "SSIM Y", "{:.4f}"),
    ("bias_r", "bias R", "{:+.2f}"), ("bias_g", "bias G", "{:+.2f}"), ("bias_b", "bias B", "{:+.2f}"),
    ("ring_psnr", "ring 8px PSNR", "{:.2f}"), ("d_ring_psnr", "ring Δ vs bicubic", "{:+.2f}"),
    ("ring_mse", "ring MSE", "{:.3f}"),
    ("stars", "stars", "{}"), ("flux_err_median", "median abs dF/F", "{:.4f}"),
    ("flux_dev_median", "median dF/F", "{:+.4f}"),
)
COLOUR_COLUMNS = (
    ("domain", "domain", "{}"), ("method", "method", "{}"), ("n", "n", "{}"),
    ("mse", "MSE", "{:.1f}"), ("mse_vs_grey", "MSE / grey", "{:.3f}"),
    ("colourfulness", "colourfulness", "{:.2f}"), ("truth_colourfulness", "truth", "{:.2f}"),
    ("colourfulness_ratio", "ratio", "{:.3f}"), ("saturation", "saturation", "{:.3f}"),
    ("truth_saturation", "truth sat.", "{:.3f}"), ("saturation_ratio", "sat. ratio", "{:.3f}"),
    ("hue_error_deg", "hue error (deg)", "{:.1f}"),
)


def with_deltas(rows: Sequence[dict]) -> list[dict]:
    """Adds `d_psnr_rgb` and `d_ring_psnr`: the row minus the bicubic row of the same domain and LR kind."""
    base = {(r["domain"], r.get("lr")): r for r in rows if r["method"] == BASELINE}
    out = []
    for r in rows:
        b = base.get((r["domain"], r.get("lr")))
        extra = {"d_psnr_rgb": r["psnr_rgb"] - b["psnr_rgb"], "d_ring_psnr": r["ring_psnr"] - b["ring_psnr"]} if b else {}
        out.append({**r, **extra})
    return out


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(value)


def table(rows: Sequence[dict], columns) -> tuple[str, str]:
    """(Markdown, CSV) of `rows` with `columns`; columns no row has are left out; missing cells 'n/a'/''."""
    columns = [c for c in columns if any(c[0] in r for r in rows)]
    md = ["| " + " | ".join(c[1] for c in columns) + " |", "|" + "---|" * len(columns)]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([c[0] for c in columns])
    for r in rows:
        md.append("| " + " | ".join(_cell(r.get(k), f) if k in r else "" for k, _, f in columns) + " |")
        writer.writerow([r.get(k, "") for k, _, _ in columns])
    return "\n".join(md), buf.getvalue()


def sr_table(rows: Sequence[dict]) -> tuple[str, str]:
    return table(with_deltas(rows), SR_COLUMNS)


def colour_table(rows: Sequence[dict]) -> tuple[str, str]:
    return table(rows, COLOUR_COLUMNS)


def pick_samples(samples: dict[str, list], total: int) -> list[tuple[str, tuple]]:
    """Evenly spaced samples of every domain (by sorted order, not chosen by score): each domain
    its share of `total` by size but at least 2, the largest domain making up the rest.

    Returns:
        [(domain, (name, grey, ours, truth))].
    """
    sizes = {d: len(v) for d, v in samples.items() if v}
    count = sum(sizes.values())
    share = {d: min(n, max(2, total * n // max(count, 1))) for d, n in sizes.items()}
    if sizes:
        largest = max(sizes, key=sizes.get)
        share[largest] = min(sizes[largest], share[largest] + max(0, total - sum(share.values())))
    out = []
    for domain, k in share.items():
        items = samples[domain]
        for i in np.linspace(0, len(items) - 1, k).round().astype(int):
            out.append((domain, items[i]))
    return out


def colour_grid(path: str, picked: Sequence[tuple[str, tuple]], columns: int = 2) -> None:
    """A grid of (grey | ours | truth) triplets, `columns` triplets per row, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = int(math.ceil(len(picked) / columns))
    fig, axes = plt.subplots(rows, 3 * columns, figsize=(2.2 * 3 * columns, 2.75 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (domain, (name, grey, ours, truth)) in enumerate(picked):
        r, c = divmod(i, columns)
        for j, (label, image) in enumerate((("grey input", grey), ("colouriser", ours), ("truth", truth))):
            ax = axes[r][3 * c + j]
            image = np.clip(np.asarray(image, np.float32), 0, 1)
            if image.shape[-1] == 1:
                ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(image, interpolation="nearest")
            ax.set_title(f"{domain}/{name}\n{label}" if j == 0 else label, fontsize=8)
    fig.suptitle("Colourisation on held-out domains (never trained on): grey | ours | truth, at 224", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    # Matplotlib writes RGBA; the opaque RGB version is 12 % smaller (photographs compress poorly).
    from PIL import Image

    out = io.BytesIO()
    Image.open(io.BytesIO(buf.getvalue())).convert("RGB").save(out, format="PNG", optimize=True)
    atomic_write_bytes(path, out.getvalue())
