"""Guo's residual-encoder colouriser (paper sec. 4.1) as a Keras 3 model.

The network takes a grey image and predicts its chroma (U, V) in the YUV space
of `data.colour`; the luminance is never predicted, it is the input.

Architecture (following Guo, github Armour/Automatic-Image-Colorization,
`residual_encoder.py`, itself after Ryan Dahl's colouriser)::

    grey [B,H,W,1] in [0,1] --repeat x3--> grey3 [B,H,W,3]
    grey3 -> VGG preprocessing ('caffe': x255, BGR, ImageNet mean subtracted)
          -> VGG16 up to conv4_3; taps conv1_2 (H), conv2_2 (H/2), conv3_3 (H/4), conv4_3 (H/8)
    x = ReLU(conv1x1 512->256 (BN(conv4_3)))                          H/8
    x = up2(x) + BN(conv3_3);  x = ReLU(BN(conv3x3 256->128 (x)))     H/4
    x = up2(x) + BN(conv2_2);  x = ReLU(BN(conv3x3 128->64 (x)))      H/2
    x = up2(x) + BN(conv1_2);  x = ReLU(BN(conv3x3  64->3  (x)))      H
    x = x + BN(grey3);         x = ReLU(BN(conv3x3   3->3  (x)))      H
    s = sigmoid(BN(conv3x3 3->2 (x)))                                 H
    uv = 0.5 + (2 s - 1) * (U_MAX, V_MAX)

Where we follow Guo: the taps, the batch norm on every skip (Keras' defaults,
momentum 0.99 / epsilon 1e-3, are those of the `tf.layers.batch_normalization`
he called), the 1x1 conv without BN, convolutions without bias (BN supplies
the shift), truncated-normal(0.01) kernels, bilinear x2 upsampling, the skip
from the 3-channel grey input itself (not VGG-preprocessed), and the output
BN + sigmoid, whose (0, 1) range covers the whole U and V gamut exactly as his
normalisation by 2 * 0.436 / 2 * 0.615 did. The backbone is frozen by default,
as his VGG weights were constants.

Where we differ: the output is returned in this project's YUV (`data.colour`,
UV offset by +0.5 but not rescaled), so the loss sees U and V in the same
units as the data pipeline (Guo's loss saw them divided by 0.872 and 1.23);
Keras' bilinear resize uses half-pixel centres (TF1's `resize_images` did not);
the VGG is Keras' `VGG16` (weights `imagenet`, random, or an `.h5` file) rather
than a `.npy` export; and any height/width that is a multiple of 8 works
(three 2x poolings), not only 224 - so every multiple of 16 does.

Only `keras.layers` and `keras.ops` are used, so the model also runs under
other Keras backends.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import keras
from keras import layers, ops

from data.colour import U_SCALE, UV_OFFSET, V_SCALE, WB, WR, compose_rgb  # noqa: F401  (re-exported)

# The largest |U - 0.5| and |V - 0.5| an RGB colour in [0, 1] can have (pure
# blue / its opposite, pure red / cyan): Guo's 0.435912 and 0.614777.
U_MAX = U_SCALE * (1.0 - WB)
V_MAX = V_SCALE * (1.0 - WR)

# ImageNet BGR means of the Caffe-trained VGG16 (Keras' 'caffe' preprocessing).
VGG_MEAN_BGR = (103.939, 116.779, 123.68)

# VGG16 layers Guo taps, deepest first.
VGG_TAPS = ("block4_conv3", "block3_conv3", "block2_conv2", "block1_conv2")

# Height and width must be multiples of this (three 2x poolings before conv4_3).
SIZE_MULTIPLE = 8

# Encoders the decoder can sit on: Guo's VGG16, or a small one trained from scratch.
BACKBONES = ("vgg16", "compact")
# Channels of the compact encoder's four levels (VGG16's are 64, 128, 256, 512).
COMPACT_WIDTHS = (16, 32, 64, 128)


def _kernel_init() -> keras.initializers.Initializer:
    return keras.initializers.TruncatedNormal(stddev=0.01)


def vgg_preprocess(grey3):
    """Keras' 'caffe' VGG preprocessing of a grey image repeated to 3 channels.

    Args:
        grey3: `[B, H, W, 3]` in [0, 1] (three equal channels).

    Returns:
        `[B, H, W, 3]`: BGR on a 0..255 scale minus the ImageNet channel means.
    """
    x = grey3[..., ::-1] * 255.0
    return x - ops.convert_to_tensor(VGG_MEAN_BGR, dtype=x.dtype)


def build_backbone(weights: Optional[str] = "imagenet", trainable: bool = False) -> keras.Model:
    """VGG16 truncated at conv4_3, returning Guo's four taps.

    Args:
        weights: `"imagenet"` (Keras downloads them; needs internet once),
            `None`/`"none"` (random init), or the path of a VGG16 no-top `.h5`
            weights file.
        trainable: whether the backbone is trained (Guo froze it).

    Returns:
        A model mapping VGG-preprocessed `[B, H, W, 3]` to
        `(conv4_3 [B,H/8,W/8,512], conv3_3 [B,H/4,W/4,256], conv2_2 [B,H/2,W/2,128], conv1_2 [B,H,W,64])`.

    Raises:
        FileNotFoundError: `weights` names a file that does not exist.
    """
    if weights is not None and str(weights).lower() == "none":
        weights = None
    if weights is not None and weights != "imagenet" and not os.path.isfile(weights):
        raise FileNotFoundError(
            f"backbone weights {weights!r}: no such file (use 'imagenet', 'none' or the path of a VGG16 no-top .h5)"
        )
    vgg = keras.applications.VGG16(include_top=False, weights=weights, input_shape=(None, None, 3))
    outputs = [vgg.get_layer(name).output for name in VGG_TAPS]
    backbone = keras.Model(vgg.input, outputs, name="vgg16_features")
    backbone.trainable = trainable
    return backbone


@keras.saving.register_keras_serializable(package="colorize")
class BilinearUpsample2x(layers.Layer):
    """2x bilinear upsampling (half-pixel centres, edges clamped) that works on unknown sizes.

    Equals `tf.image.resize(x, 2 * size, "bilinear")`, but written as fixed
    0.75 / 0.25 blends of neighbours so that it traces with dynamic height and
    width (`keras.layers.UpSampling2D` needs static sizes inside `tf.function`,
    which the exported any-size signature is).

    Input `[B, H, W, C]` -> output `[B, 2H, 2W, C]`.
    """

    def _double(self, x, axis: int):
        n = ops.shape(x)[axis]
        first = ops.take(x, [0], axis=axis)
        last = ops.take(x, [n - 1], axis=axis)
        prev = ops.concatenate([first, ops.take(x, ops.arange(0, n - 1), axis=axis)], axis=axis)
        nxt = ops.concatenate([ops.take(x, ops.arange(1, n), axis=axis), last], axis=axis)
        even = 0.75 * x + 0.25 * prev
        odd = 0.75 * x + 0.25 * nxt
        # Interleave even/odd along `axis`.
        y = ops.stack([even, odd], axis=axis + 1)
        shape = ops.shape(x)
        new_shape = [shape[i] for i in range(axis)] + [2 * n] + [shape[i] for i in range(axis + 1, 4)]
        return ops.reshape(y, new_shape)

    def call(self, x):
        return self._double(self._double(x, 1), 2)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, c)


def _conv(filters: int, size: int, name: str, init: Optional[keras.initializers.Initializer] = None,
          use_bias: bool = False) -> layers.Conv2D:
    """'Same' convolution; no bias by default (a batch norm follows and supplies the shift)."""
    return layers.Conv2D(filters, size, padding="same", use_bias=use_bias, kernel_initializer=init or _kernel_init(),
                         name=name)


def _conv_bn_relu(x, filters: int, name: str, init: Optional[keras.initializers.Initializer] = None):
    x = layers.BatchNormalization(name=name + "_bn")(_conv(filters, 3, name, init)(x))
    return layers.ReLU(name=name + "_relu")(x)


def build_compact_backbone() -> keras.Model:
    """A small VGG-style encoder trained from scratch, with Guo's four taps.

    For machines without ImageNet weights: a random frozen VGG16 gives the
    decoder random features, and training all of VGG16 from scratch is far too
    slow on a CPU. This keeps VGG's shape (2, 2, 3, 3 convolutions per level,
    2x max pooling between levels) at a quarter of its width, with batch norm
    so that it trains from scratch. He-normal kernels (the 0.01 truncated
    normal of Guo's decoder would vanish through ten layers).

    Returns:
        A model mapping grey `[B, H, W, 1]` in [0, 1] to
        `(c4 [B,H/8,W/8,128], c3 [B,H/4,W/4,64], c2 [B,H/2,W/2,32], c1 [B,H,W,16])`.
    """
    grey = keras.Input((None, None, 1), name="grey")
    x = layers.Rescaling(2.0, offset=-1.0, name="centre")(grey)
    taps = []
    for level, (filters, convs) in enumerate(zip(COMPACT_WIDTHS, (2, 2, 3, 3)), start=1):
        if level > 1:
            x = layers.MaxPooling2D(2, name=f"pool{level - 1}")(x)
        for i in range(1, convs + 1):
            x = _conv_bn_relu(x, filters, f"block{level}_conv{i}", keras.initializers.HeNormal())
        taps.append(x)
    return keras.Model(grey, taps[::-1], name="compact_features")


def _global_context(c4, name: str = "global"):
    """Adds an image-wide summary of the deepest features to every position.

    Iizuka et al. (2016) fuse global features into a colouriser so that
    colours follow the whole scene; here the mean of the deepest tap goes
    through one dense layer and is broadcast back over it. `[B, h, w, C]` ->
    same shape.
    """
    channels = c4.shape[-1]
    g = layers.GlobalAveragePooling2D(name=f"{name}_pool")(c4)
    g = layers.Dense(channels, activation="relu", name=f"{name}_dense")(g)
    return layers.Add(name=f"{name}_fuse")([c4, layers.Reshape((1, 1, channels), name=f"{name}_broadcast")(g)])


# `build_colorizer`'s keyword arguments that a training run records in its config.json as they are.
BUILD_FIELDS = ("freeze_backbone", "backbone", "global_context", "output_batchnorm")
# The settings that define the network (beyond its weights): those, and the loss with its chroma
# bins (a classification run's head has one output per bin, `colorize.chroma`).
ARCHITECTURE_FIELDS = BUILD_FIELDS + ("loss", "chroma_bin_width")


def architecture(config: Mapping[str, Any]) -> dict:
    """`build_colorizer` keyword arguments from a run's config (its dict or config.json).

    Fields an older config lacks are left out, so `build_colorizer`'s defaults
    (Guo's network, a UV head) apply to them. A `loss: classification` config
    gives `chroma_bins`, the number of its bins.
    """
    kwargs = {k: config[k] for k in BUILD_FIELDS if k in config}
    if config.get("loss") == "classification":
        kwargs["chroma_bins"] = len(config["chroma_bins"])
    return kwargs


def build_colorizer(
    backbone_weights: Optional[str] = "imagenet",
    freeze_backbone: bool = True,
    name: str = "guo_colorizer",
    backbone: str = "vgg16",
    global_context: bool = False,
    output_batchnorm: bool = True,
    chroma_bins: int = 0,
) -> keras.Model:
    """Builds the residual-encoder colouriser.

    Args:
        backbone_weights: VGG16 weights, see `build_backbone` (ignored by
            the compact backbone, which always starts random).
        freeze_backbone: keep the VGG16 weights fixed (Guo's setting); the
            compact backbone is always trained.
        name: model name.
        backbone: `"vgg16"` (Guo's) or `"compact"` (`build_compact_backbone`).
            The decoder's widths follow the taps, so with `compact` it is
            narrower too.
        global_context: add `_global_context` to the deepest tap (not in
            Guo's network).
        output_batchnorm: Guo's batch norm before the output sigmoid. In
            training mode it rescales every batch's chroma logits to the same
            mean and spread whatever the images' colours, so the network
            cannot say "this batch is nearly grey"; without ImageNet features
            it kept our networks at the grey baseline. False feeds the
            convolution (with a bias) to the sigmoid directly.
        chroma_bins: 0 for the UV head (below); Q > 0 for a classification
            head (`colorize.chroma`): the last decoder level keeps the width of
            the first encoder level, the grey skip is concatenated, and a 1x1
            convolution gives logits `[B, H, W, Q]` over the chroma bins
            (`output_batchnorm` does not apply).

    Returns:
        A model mapping grey `[B, H, W, 1]` in [0, 1] (H, W multiples of 8)
        to UV `[B, H, W, 2]` with the +0.5 offset of `data.colour`: U in
        (0.5 - 0.436, 0.5 + 0.436), V in (0.5 - 0.615, 0.5 + 0.615).
        Call with `training=True` while training (batch norm).

    Raises:
        ValueError: unknown `backbone`.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {BACKBONES}")
    grey = keras.Input((None, None, 1), name="grey")
    grey3 = layers.Concatenate(name="grey3")([grey, grey, grey])
    if backbone == "vgg16":
        c4, c3, c2, c1 = build_backbone(backbone_weights, trainable=not freeze_backbone)(vgg_preprocess(grey3))
    else:
        c4, c3, c2, c1 = build_compact_backbone()(grey)
    if global_context:
        c4 = _global_context(c4)

    x = layers.BatchNormalization(name="bn_4")(c4)
    x = layers.ReLU(name="b_conv4_relu")(_conv(c3.shape[-1], 1, "b_conv4")(x))
    last = c1.shape[-1] if chroma_bins else 3
    for skip, filters, level in ((c3, c2.shape[-1], 3), (c2, c1.shape[-1], 2), (c1, last, 1)):
        x = BilinearUpsample2x(name=f"up_{level + 1}")(x)
        x = layers.Add(name=f"b_conv{level}_input")([layers.BatchNormalization(name=f"bn_{level}")(skip), x])
        x = _conv_bn_relu(x, filters, f"b_conv{level}")
    if chroma_bins:
        x = layers.Concatenate(name="b_conv0_input")([x, layers.BatchNormalization(name="bn_0")(grey3)])
        x = _conv_bn_relu(x, last, "b_conv0", keras.initializers.HeNormal())
        logits = _conv(int(chroma_bins), 1, "output_logits", keras.initializers.HeNormal(), use_bias=True)(x)
        return keras.Model(grey, logits, name=name)
    x = layers.Add(name="b_conv0_input")([layers.BatchNormalization(name="bn_0")(grey3), x])
    x = _conv_bn_relu(x, 3, "b_conv0")
    x = _conv(2, 3, "output_conv", use_bias=not output_batchnorm)(x)
    if output_batchnorm:
        x = layers.BatchNormalization(name="output_conv_bn")(x)
    s = layers.Activation("sigmoid", name="output_sigmoid")(x)
    half_range = ops.convert_to_tensor((U_MAX, V_MAX), dtype=s.dtype)
    uv = UV_OFFSET + (2.0 * s - 1.0) * half_range
    return keras.Model(grey, uv, name=name)


__all__ = ["build_colorizer", "build_backbone", "build_compact_backbone", "architecture", "ARCHITECTURE_FIELDS", "BUILD_FIELDS",
           "BACKBONES", "compose_rgb", "vgg_preprocess", "U_MAX", "V_MAX", "SIZE_MULTIPLE"]
