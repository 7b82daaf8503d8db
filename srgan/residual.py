"""The default SR generator: a learned residual over bicubic, all compute at LR resolution.

Why this design (the SR issue's findings on pictures no model here trained on):

* **It cannot drift.** The output is `bicubic(lr) + residual`, and the layer that
  makes the residual starts at zero, so an untrained network *is* bicubic; a
  colour cast or a brightness change would have to be learned, not a default.
* **No batch norm** (EDSR's finding: batch statistics shift colours and hurt inputs
  unlike the training set).
* **Reflect padding in every convolution**, so the image border looks like the
  image and no bright or dark frame appears along it.
* **Compute at LR resolution** (ESPCN / Real-ESRGAN's compact net): every
  convolution runs on the LR grid; one convolution makes `3 * scale**2`
  channels and a depth-to-space puts them on the HR grid. The bicubic base is a
  fixed 5x5 polyphase convolution on the LR grid that feeds the same
  depth-to-space, so it costs almost nothing.

Ledig's batch-normalised SRResNet stays available (`arch="srresnet"`, the paper's).
Only `keras.layers` / `keras.ops` are used, so the model runs under any Keras backend.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from srgan.model_tl import DepthToSpace

#: Keys' cubic convolution parameter (PIL, TF and OpenCV bicubic all use a = -0.5).
CUBIC_A = -0.5


def cubic_weight(t: np.ndarray, a: float = CUBIC_A) -> np.ndarray:
    """Keys' cubic interpolation kernel at offsets `t` (pixels)."""
    t = np.abs(np.asarray(t, np.float64))
    near = (a + 2) * t**3 - (a + 3) * t**2 + 1
    far = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def bicubic_phases(scale: int) -> np.ndarray:
    """1-D bicubic upsampling by `scale` as `scale` phases of a 5-tap filter.

    With half-pixel centres (PIL, `tf.image.resize`), HR pixel `scale*i + s` sits
    at LR coordinate `i + (2s + 1 - scale) / (2 scale)`; its cubic taps fall on LR
    pixels `i-2 .. i+2`.

    Returns:
        `[scale, 5]` float64: row s holds the weights of LR pixels i-2..i+2 (each row sums to 1).
    """
    offsets = (2 * np.arange(scale) + 1 - scale) / (2 * scale)
    taps = np.arange(-2, 3)
    return cubic_weight(offsets[:, None] - taps[None, :])


def bicubic_kernel(scale: int, channels: int = 3) -> np.ndarray:
    """Conv kernel `[5, 5, C, C*scale**2]` whose output, depth-to-space'd, is bicubic upsampling.

    Output channel `(dy*scale + dx) * C + c` (the order of `depth_to_space`) is
    the outer product of the vertical phase dy and the horizontal phase dx,
    reading input channel c only.
    """
    w = bicubic_phases(scale)
    kernel = np.zeros((5, 5, channels, channels * scale * scale), np.float32)
    for dy in range(scale):
        for dx in range(scale):
            for c in range(channels):
                kernel[:, :, c, (dy * scale + dx) * channels + c] = np.outer(w[dy], w[dx])
    return kernel


@keras.saving.register_keras_serializable(package="srgan")
class BicubicPhases(layers.Layer):
    """Bicubic upsampling by `scale` as `3*scale**2` phase channels on the LR grid (fixed, no weights).

    Edges as PIL and `tf.image.resize` treat them: taps outside the image are
    dropped and the rest renormalised. Because the kernel is separable, that is
    the zero-padded convolution divided by the same convolution of an all-ones
    image (the in-range weight sum). Depth-to-space of the result is bicubic.
    """

    def __init__(self, scale: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, x):
        # Made at call time (25 x 48 x 3 numbers), so the layer holds no state to save or track.
        kernel = ops.convert_to_tensor(bicubic_kernel(self.scale, 3), dtype=x.dtype)
        pad = [[0, 0], [2, 2], [2, 2], [0, 0]]
        values = ops.conv(ops.pad(x, pad), kernel, padding="valid")
        sums = ops.conv(ops.pad(ops.ones_like(x), pad), kernel, padding="valid")
        return values / sums

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, h, w, c * self.scale * self.scale)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="srgan")
class ReflectPad2D(layers.Layer):
    """Pads H and W by `pad` px on each side: `reflect` (mirror without the edge pixel) or `symmetric`."""

    def __init__(self, pad: int = 1, mode: str = "reflect", **kwargs) -> None:
        super().__init__(**kwargs)
        self.pad = int(pad)
        self.mode = mode

    def call(self, x):
        # Edge rows/columns copied by slicing and concatenated, not `ops.pad(mode=...)`: the values are
        # the same, but TFLite's MIRROR_PAD has no XNNPACK kernel, so every pad would split the delegated
        # graph and run slowly outside it; slices and concatenation stay inside XNNPACK.
        p = self.pad
        if self.mode not in ("reflect", "symmetric"):
            raise ValueError(f"pad mode must be reflect or symmetric, got {self.mode!r}")
        skip = 1 if self.mode == "reflect" else 0  # reflect mirrors without the edge pixel
        for axis in (1, 2):
            def rows(a, b, x=x, axis=axis):
                return x[:, a:b] if axis == 1 else x[:, :, a:b]
            head = [rows(i, i + 1) for i in range(p - 1 + skip, skip - 1, -1)]
            tail = [rows(-1 - i, (-i) or None) for i in range(skip, p + skip)]
            x = ops.concatenate(head + [x] + tail, axis=axis)
        return x

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        p = 2 * self.pad
        return (b, None if h is None else h + p, None if w is None else w + p, c)

    def get_config(self) -> dict:
        return {**super().get_config(), "pad": self.pad, "mode": self.mode}


def _conv(x, filters: int, name: str, kernel: int = 3, **kw):
    x = ReflectPad2D(kernel // 2, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel, padding="valid", name=name, **kw)(x)


def build_residual_generator(num_blocks: int = 8, filters: int = 32, scale: int = 4,
                             res_scale: float = 1.0) -> keras.Model:
    """Bicubic + learned residual, every convolution on the LR grid.

    conv3x3 -> `num_blocks` x (conv3x3-ReLU-conv3x3, times `res_scale`, + skip)
    -> conv3x3 + long skip -> conv3x3 to `3*scale**2` (zero-initialised) -> + the
    fixed bicubic phases -> depth-to-space. All convolutions reflect-padded.

    Args:
        num_blocks: residual blocks.
        filters: feature channels.
        scale: upscaling factor (any integer >= 2).
        res_scale: EDSR's residual scaling (keeps deep stacks without BN stable).

    Returns:
        A model `[B, H, W, 3]` in [0, 1] -> `[B, scale*H, scale*W, 3]` (not clipped;
        the export clips). Untrained, it equals bicubic upsampling (PIL's and
        `tf.image.resize`'s, edges included).
    """
    if scale < 2:
        raise ValueError(f"scale must be an integer >= 2, got {scale}")
    lr = keras.Input((None, None, 3), name="lr")
    base = BicubicPhases(scale, name="bicubic")(lr)
    x = layers.Rescaling(1.0, offset=-0.5, name="centre")(lr)
    x = skip = _conv(x, filters, "conv_in")
    for i in range(num_blocks):
        y = _conv(x, filters, f"res{i}_conv1", activation="relu")
        y = _conv(y, filters, f"res{i}_conv2")
        if res_scale != 1.0:
            y = layers.Rescaling(res_scale, name=f"res{i}_scale")(y)
        x = layers.Add(name=f"res{i}_add")([x, y])
    x = layers.Add(name="mid_add")([_conv(x, filters, "mid_conv"), skip])
    residual = _conv(x, 3 * scale * scale, "to_phases", kernel_initializer="zeros", dtype="float32")
    phases = layers.Add(name="plus_bicubic", dtype="float32")([base, residual])
    sr = DepthToSpace(scale, name="shuffle", dtype="float32")(phases)
    return keras.Model(lr, sr, name=f"residual_b{num_blocks}_f{filters}_x{scale}")
