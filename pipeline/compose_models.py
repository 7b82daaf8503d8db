"""The learned steps of the compose path: how the SR model sees the composite, and a two-filter green.

`pipeline.composite` makes the composite from the frames alone; this module is
where models touch it (`pipeline.compose_job` calls both):

* `SROnUpscaler`: the SR model applied to an RGB composite in one of `SR_ON`
  ways, as a drop-in for the loaded model's `run` (so `pipeline.full.upscaled_bands`
  tiles it and applies the consistency step after it, as for any SR):

  - `rgb`: the composite through the model in one pass (what full mode does);
  - `channels`: each channel alone, as a grey picture (repeated to 3
    channels), through the model; the output's BT.601 luma is that channel;
  - `luminance`: the composite's BT.601 luminance through the model (as a grey
    picture); its chroma (`data.colour.rgb_to_yuv` U, V) upsampled by bicubic
    and joined to the SR luminance with `data.colour.compose_rgb` (luminance
    kept, out-of-gamut chroma desaturated).

  The default is measured by `bench/compose_sr.py` on held-out Hubble pictures
  (see `pipeline.compose_job` and the README for the table).

* `colouriser_green`: with two filters, the green the learned colouriser
  proposes, R and B left exactly as measured.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SR_ON = ("rgb", "channels", "luminance")
GREENS = ("mean", "colouriser")
#: Floor (display units, ~5 of 255 levels) added to both sides of the colouriser's
#: G / mean(R, B) ratio: where its picture is near black the ratio is noise, and
#: the floor pulls it to 1, i.e. to the usual mean.
GREEN_RATIO_FLOOR = 0.02
#: The ratio is clipped to [0, this]: a green more than 3x the mean of its
#: neighbours is not a colour the two bands allow on any smooth spectrum.
GREEN_RATIO_MAX = 3.0


def sr_on_batch(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, sr_on: str) -> np.ndarray:
    """The SR of a batch of RGB tiles, the model applied the `sr_on` way.

    Args:
        run: the SR model, `[B, h, w, 3]` in [0, 1] -> `[B, s*h, s*w, 3]`.
        batch: float32 `[B, h, w, 3]` in [0, 1].
        sr_on: one of `SR_ON` (see the module docstring).

    Returns:
        float32 `[B, s*h, s*w, 3]`: in [0, 1] for `channels` and `luminance`
        (each pass clipped as `pipeline.inference.sr_output`), the model's own
        range for `rgb` (the caller clips it the same way).
    """
    from data.colour import compose_rgb, rgb_to_luma, rgb_to_yuv
    from pipeline.inference import sr_output

    batch = np.asarray(batch, np.float32)
    if sr_on == "rgb":
        return np.asarray(run(batch), np.float32)
    if sr_on == "channels":
        b = batch.shape[0]
        # [B, h, w, 3] -> [3B, h, w, 3]: channel c of tile i at 3*i + c, each a grey picture.
        greys = np.repeat(np.moveaxis(batch, -1, 1).reshape(-1, *batch.shape[1:3], 1), 3, axis=-1)
        sr = np.asarray(rgb_to_luma(sr_output(run(greys))), np.float32)[..., 0]
        return np.moveaxis(sr.reshape(b, 3, *sr.shape[1:]), 1, -1)
    if sr_on == "luminance":
        import tensorflow as tf

        yuv = np.asarray(rgb_to_yuv(batch), np.float32)
        y_sr = np.asarray(rgb_to_luma(sr_output(run(np.repeat(yuv[..., :1], 3, axis=-1)))), np.float32)
        uv = np.asarray(tf.image.resize(yuv[..., 1:], y_sr.shape[1:3], method="bicubic"), np.float32)
        return np.asarray(compose_rgb(y_sr, uv), np.float32)
    raise ValueError(f"unknown sr_on {sr_on!r}; choose from {SR_ON}")


class SROnUpscaler:
    """A loaded SR model whose `run` applies it the `sr_on` way (see `sr_on_batch`).

    Args:
        upscaler: a `pipeline.models.LoadedModel` (anything with `run`).
        sr_on: one of `SR_ON`.
    """

    def __init__(self, upscaler, sr_on: str) -> None:
        if sr_on not in SR_ON:
            raise ValueError(f"unknown sr_on {sr_on!r}; choose from {SR_ON}")
        self.upscaler = upscaler
        self.sr_on = sr_on

    def run(self, batch: np.ndarray) -> np.ndarray:
        return sr_on_batch(self.upscaler.run, batch, self.sr_on)


def colouriser_green(rgb: np.ndarray, colorizer, size: int) -> np.ndarray:
    """The green the learned colouriser proposes for a two-filter composite; R and B stay as measured.

    The colouriser cannot see colour, so it is given the luminance of the usual
    two-filter picture (G the mean of R and B). Of its prediction only one
    number per pixel is used: its green relative to the mean of its red and
    blue, `k = (G' + f) / ((R' + B') / 2 + f)` (`f` = `GREEN_RATIO_FLOOR`,
    clipped to [0, `GREEN_RATIO_MAX`]), computed at the working size and
    upsampled bilinearly (as full mode upsamples chroma). The result is
    `G = k (R + B) / 2` with the measured R and B: the model says where green
    sits between and beyond the two bands, the measurements say how bright.
    A ratio is used rather than the colouriser's chroma because it does not
    depend on the colouriser's brightness, which comes from a guessed
    luminance; and Lupton's stretch scales a pixel's three bands by one factor,
    so a ratio of display values is the same ratio in linear units.

    Args:
        rgb: float32 `[H, W, 3]` in [0, 1], display row order: R and B measured,
            G anything (it is not read).
        colorizer: a loaded colouriser (`run`: `[1, S, S, 1]` -> `[1, S, S, 3]`).
        size: its working size S (a multiple of 16).

    Returns:
        float32 `[H, W]` in [0, 1]: the green channel.
    """
    import tensorflow as tf

    from pipeline.inference import to_luminance, to_working_size

    rgb = np.asarray(rgb, np.float32)
    mean = 0.5 * (rgb[..., 0] + rgb[..., 2])
    usual = np.stack([rgb[..., 0], mean, rgb[..., 2]], axis=-1)
    grey, _ = to_luminance(usual)
    pred = np.clip(np.asarray(colorizer.run(to_working_size(grey, size)[None]), np.float32)[0], 0.0, 1.0)
    f = GREEN_RATIO_FLOOR
    k = np.clip((pred[..., 1] + f) / (0.5 * (pred[..., 0] + pred[..., 2]) + f), 0.0, GREEN_RATIO_MAX)
    k_full = np.asarray(tf.image.resize(k[None, ..., None], rgb.shape[:2], method="bilinear"), np.float32)[0, ..., 0]
    return np.clip(k_full * mean, 0.0, 1.0).astype(np.float32)
