"""Colourisation as classification over quantised chroma (Zhang, Isola & Efros 2016, "Colorful Image Colorization").

A regression loss (the paper's blurred MSE) is minimised by the *mean* of the
plausible colours, and for a nebula that could be red or teal the mean is grey:
the regression model learns to colour nothing. Zhang et al. predict instead a
distribution over Q chroma bins and rebalance the classes so the rare,
saturated bins are not drowned by the grey sky. Here, in this project's YUV
(`data.colour`, UV offset by +0.5):

* Bins: a square grid of side `bin_width` in UV, centred on grey (grid index
  (0, 0) is UV = (0.5, 0.5)); a run keeps the bins its training pixels fall in
  (`data_bins`), so Q follows the data (about 230 of the 525 in-gamut bins of
  width 0.04 for Stellarium's nebulae). The kept grid indices are saved in the
  run's config (`chroma_bins`), so the network and its decoding can be rebuilt.
* Targets (`soft_encode`): a Gaussian (sigma = half a bin width, Zhang's 5 ab
  units for 10-unit bins) over the `neighbours` nearest kept bins, normalised;
  `neighbours=1` is one-hot on the nearest bin.
* Rebalancing (`rebalance_weights`): w_q ∝ ((1 - lambda) p~_q + lambda / Q)^-1,
  normalised so that sum_q p~_q w_q = 1, with p~ the empirical bin distribution
  of the training pixels smoothed by the same Gaussian; each pixel's
  cross-entropy is weighted by the w of its nearest bin.
* Decoding (`annealed_mean`): softmax(logits / T) then the mean of the bin
  centres under it; T -> 0 gives the mode's centre, T = 1 the plain mean
  (Zhang's 0.38 in between: vivid, but not the mode's patchiness).

NumPy for the statistics (once per run, on the host), `keras.ops` for what runs
in the graph, so the trainer works on any Keras backend.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from keras import ops

from data.colour import U_SCALE, UV_OFFSET, V_SCALE, WB, WG, WR

DEFAULT_BIN_WIDTH = 0.04
DEFAULT_NEIGHBOURS = 5
DEFAULT_LAMBDA = 0.5
DEFAULT_TEMPERATURE = 0.38  # Zhang et al. sec. 2.3


def grid_index(uv: np.ndarray, bin_width: float) -> np.ndarray:
    """Nearest grid point of UV `[..., 2]` (+0.5 offset) as integer indices `[..., 2]` ((0, 0) = grey)."""
    return np.round((np.asarray(uv, np.float64) - UV_OFFSET) / bin_width).astype(np.int64)


def bin_centres(bins: Sequence[Sequence[int]], bin_width: float) -> np.ndarray:
    """UV `[Q, 2]` float32 (+0.5 offset) of the grid indices `bins` `[Q, 2]`."""
    return (UV_OFFSET + np.asarray(bins, np.float64).reshape(-1, 2) * bin_width).astype(np.float32)


def _uv_of_rgb(rgb: np.ndarray) -> np.ndarray:
    """UV `[..., 2]` (+0.5 offset) of RGB `[..., 3]` in [0, 1], as `data.colour.rgb_to_yuv` (float64)."""
    rgb = np.asarray(rgb, np.float64)
    y = WR * rgb[..., 0] + WG * rgb[..., 1] + WB * rgb[..., 2]
    return np.stack([U_SCALE * (rgb[..., 2] - y), V_SCALE * (rgb[..., 0] - y)], axis=-1) + UV_OFFSET


def data_bins(images: np.ndarray, sizes: np.ndarray, bin_width: float) -> tuple[np.ndarray, np.ndarray]:
    """The grid bins the images' pixels fall in, and how many pixels fall in each.

    Args:
        images: `[N, H, W, 3]` in [0, 1], each at the top left (as `data.examples.load_images`).
        sizes: `[N, 2]` (height, width) of each image; the padding is not counted.
        bin_width: grid spacing in UV units.

    Returns:
        bins `[Q, 2]` int64 grid indices in sorted order (grey's (0, 0) always
        among them) and counts `[Q]` int64.
    """
    total: dict[tuple[int, int], int] = {(0, 0): 0}
    for image, (h, w) in zip(images, sizes):
        idx = grid_index(_uv_of_rgb(image[:h, :w].reshape(-1, 3)), bin_width)
        keys, counts = np.unique(idx, axis=0, return_counts=True)
        for k, c in zip(map(tuple, keys), counts):
            total[k] = total.get(k, 0) + int(c)
    bins = sorted(total)
    return np.array(bins, np.int64).reshape(-1, 2), np.array([total[b] for b in bins], np.int64)


def rebalance_weights(bins: np.ndarray, counts: np.ndarray, rebalance_lambda: float = DEFAULT_LAMBDA,
                      smoothing: float = 0.5) -> np.ndarray:
    """Zhang's class-rebalancing weights `[Q]` float32.

    w_q ∝ ((1 - lambda) p~_q + lambda / Q)^-1, scaled so that sum_q p~_q w_q = 1
    (the expected weight of a training pixel is 1, so the loss keeps its scale).

    Args:
        bins: `[Q, 2]` grid indices.
        counts: `[Q]` pixel counts per bin.
        rebalance_lambda: the mix with the uniform distribution, in [0, 1]
            (0: w = 1/p~, the fully rebalanced loss; 1: all weights 1).
        smoothing: sigma of the Gaussian that smooths the empirical
            distribution, in bin widths (0: none). Each bin's mass is spread
            over the kept bins and renormalised, so the total stays 1.

    Raises:
        ValueError: lambda outside [0, 1], no counts, or mismatched shapes.
    """
    counts = np.asarray(counts, np.float64)
    bins = np.asarray(bins, np.float64).reshape(-1, 2)
    if not 0.0 <= rebalance_lambda <= 1.0:
        raise ValueError(f"rebalance_lambda must be in [0, 1], got {rebalance_lambda}")
    if counts.shape != (len(bins),) or counts.sum() <= 0:
        raise ValueError(f"need one positive-sum count per bin, got {counts.shape} counts for {len(bins)} bins")
    p = counts / counts.sum()
    if smoothing > 0:
        d2 = np.sum(np.square(bins[:, None, :] - bins[None, :, :]), axis=-1)
        kernel = np.exp(-d2 / (2.0 * smoothing**2))
        kernel /= kernel.sum(axis=0, keepdims=True)  # column r spreads bin r's mass, total 1
        p = kernel @ p
    w = 1.0 / ((1.0 - rebalance_lambda) * p + rebalance_lambda / len(p))
    return (w / np.sum(p * w)).astype(np.float32)


def _sq_distances(uv, centres):
    """`[B, H, W, Q]` squared UV distances of each pixel to each bin centre."""
    c = ops.convert_to_tensor(centres, dtype=uv.dtype)
    return ops.square(uv[..., :1] - c[:, 0]) + ops.square(uv[..., 1:2] - c[:, 1])


def soft_encode(uv, centres: np.ndarray, bin_width: float, neighbours: int = DEFAULT_NEIGHBOURS):
    """Soft target distribution `[B, H, W, Q]` of UV `[B, H, W, 2]` over the bins.

    A Gaussian of sigma = bin_width / 2 in UV distance, kept on the `neighbours`
    nearest bins and normalised; `neighbours=1` is one-hot on the nearest bin.
    Ties at the k-th distance keep all tied bins (they share its weight).
    """
    uv = ops.convert_to_tensor(uv, dtype="float32")
    d2 = _sq_distances(uv, centres)
    k = int(min(max(neighbours, 1), len(centres)))
    kth = -ops.top_k(-d2, k)[0][..., k - 1 : k]  # the k-th smallest distance, [B, H, W, 1]
    sigma = 0.5 * bin_width
    logit = -(d2 - ops.min(d2, axis=-1, keepdims=True)) / (2.0 * sigma**2)  # shifted: exp never underflows to 0 at the nearest
    w = ops.exp(logit) * ops.cast(d2 <= kth, uv.dtype)
    return w / ops.sum(w, axis=-1, keepdims=True)


def classification_loss(uv_true, logits, centres: np.ndarray, weights: np.ndarray, bin_width: float,
                        neighbours: int = DEFAULT_NEIGHBOURS, stride: int = 1):
    """Zhang's class-rebalanced multinomial cross-entropy (scalar, mean over batch and pixels).

    With `stride` s > 1 it is taken on every s-th pixel each way (Zhang et al.
    computed it at a quarter of the resolution): the soft encoding against Q
    bins costs Q times a pixel's work, and chroma is smooth; random crops move
    the grid over the content from one step to the next.

    Args:
        uv_true: target chroma `[B, H, W, 2]` (+0.5 offset).
        logits: network output `[B, H, W, Q]`.
        centres: `[Q, 2]` bin centres (`bin_centres`).
        weights: `[Q]` rebalancing weights (`rebalance_weights`; ones for none).
        bin_width: the grid spacing (sets the soft encoding's sigma).
        neighbours: bins in the soft target (1 = one-hot).
        stride: pixel step of the grid the loss is taken on (1 = every pixel).
    """
    uv_true = ops.convert_to_tensor(uv_true, dtype="float32")[:, ::stride, ::stride]
    logits = ops.cast(logits, "float32")[:, ::stride, ::stride]
    target = ops.stop_gradient(soft_encode(uv_true, centres, bin_width, neighbours))
    log_p = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    ce = -ops.sum(target * log_p, axis=-1)
    nearest = ops.argmin(_sq_distances(uv_true, centres), axis=-1)
    w = ops.take(ops.convert_to_tensor(np.asarray(weights, np.float32)), nearest)
    return ops.mean(ce * w)


def annealed_mean(logits, centres: np.ndarray, temperature):
    """Chroma `[B, H, W, 2]` (+0.5 offset) decoded from `logits` `[B, H, W, Q]` at `temperature` > 0.

    softmax(logits / T) weighted mean of the bin centres: T = 1 the mean of the
    predicted distribution, T -> 0 the centre of its mode.
    """
    logits = ops.cast(logits, "float32")
    t = ops.cast(temperature, "float32")
    p = ops.softmax(logits / t, axis=-1)
    return ops.einsum("bhwq,qc->bhwc", p, ops.convert_to_tensor(np.asarray(centres, np.float32)))


def counts_in(bins: np.ndarray, found_bins: np.ndarray, found_counts: np.ndarray) -> np.ndarray:
    """The counts `[Q]` of `bins` among (`found_bins`, `found_counts`) from `data_bins` (0 where absent)."""
    lookup = {tuple(b): int(c) for b, c in zip(np.asarray(found_bins).tolist(), np.asarray(found_counts).tolist())}
    return np.array([lookup.get(tuple(b), 0) for b in np.asarray(bins).tolist()], np.int64)


@dataclasses.dataclass(frozen=True)
class ChromaHead:
    """A classification run's bins, weights and decoding, built from its config."""

    centres: np.ndarray  # [Q, 2] UV (+0.5 offset)
    weights: np.ndarray  # [Q] rebalancing weights (ones when not training)
    bin_width: float
    neighbours: int
    temperature: float
    loss_stride: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any], counts: Optional[np.ndarray] = None) -> "ChromaHead":
        """From a run's config dict (`chroma_bins` set); `counts` per bin give the rebalancing weights."""
        bins = np.asarray(config["chroma_bins"], np.int64).reshape(-1, 2)
        weights = (np.ones(len(bins), np.float32) if counts is None
                   else rebalance_weights(bins, counts, float(config.get("rebalance_lambda", DEFAULT_LAMBDA))))
        return cls(centres=bin_centres(bins, float(config["chroma_bin_width"])), weights=weights,
                   bin_width=float(config["chroma_bin_width"]),
                   neighbours=int(config.get("chroma_neighbours", DEFAULT_NEIGHBOURS)),
                   temperature=float(config.get("temperature", DEFAULT_TEMPERATURE)),
                   loss_stride=int(config.get("chroma_loss_stride", 1)))

    def loss(self, uv_true, logits):
        """`classification_loss` with this head's bins and weights."""
        return classification_loss(uv_true, logits, self.centres, self.weights, self.bin_width, self.neighbours,
                                   self.loss_stride)

    def decode(self, logits, temperature=None):
        """`annealed_mean` at `temperature` (default: the run's)."""
        return annealed_mean(logits, self.centres, self.temperature if temperature is None else temperature)


__all__ = ["ChromaHead", "counts_in", "grid_index", "bin_centres", "data_bins", "rebalance_weights", "soft_encode", "classification_loss",
           "annealed_mean", "DEFAULT_BIN_WIDTH", "DEFAULT_NEIGHBOURS", "DEFAULT_LAMBDA", "DEFAULT_TEMPERATURE"]
