"""The tensorlayer/srgan generator as a Keras 3 model, and its weight-file reader.

The paper's SR model follows github tensorlayer/srgan, whose generator is not
Ledig's SRResNet (ReLU, no PReLU; tanh output in [-1, 1]). This module copies
it layer for layer, read from tensorlayer/srgan `model.py` (`SRGAN_g` in TL1,
`get_G` in TL2: the same network) and TensorLayer 2.2.5's layers:

* conv 64 3x3, bias, ReLU                                       (`conv_in`)
* 16 residual blocks: conv 64 3x3 no bias -> BN + ReLU ->
  conv 64 3x3 no bias -> BN -> add the block input              (`res{i}_*`)
* conv 64 3x3 no bias -> BN -> add the output of `conv_in`      (`mid_*`)
* twice: conv 256 3x3, bias -> sub-pixel x2 -> ReLU             (`up{1,2}_*`)
* conv 3 1x1, bias, tanh                                        (`conv_out`)

All convolutions stride 1, SAME. BN is TL's: epsilon 1e-5, decay 0.9, beta and
gamma. Initialisers are TL's, so training from scratch starts where TL's does.
TL feeds images in [-1, 1]; by default the model maps this project's [0, 1] in
and out inside itself (`io_range="01"`), `io_range="tl"` is TL's raw interface.

TensorLayer weight files (TL2 `g.h5`, `save_npz_dict` npz, TL1 `g_srgan.npz`)
are read into this model by `srgan.tl_weights` (`python -m srgan.import_tl` is
its command line).
"""
from __future__ import annotations

import keras
from keras import layers, ops

#: TensorLayer 2.2.5 `BatchNorm` / TL1 `BatchNormLayer` defaults.
TL_BN_EPSILON = 1e-5
TL_BN_DECAY = 0.9
#: tensorlayer/srgan's initialisers (`tf.random_normal_initializer(stddev=0.02)`
#: for kernels, `(1., 0.02)` for BN gamma); TL's bias init is zeros.
TL_KERNEL_STDDEV = 0.02

IO_RANGES = ("01", "tl")


@keras.saving.register_keras_serializable(package="srgan_tl")
class DepthToSpace(layers.Layer):
    """Sub-pixel shuffle with `tf.nn.depth_to_space` ("DCR") channel order.

    TensorLayer's `SubpixelConv2d` (TL >= 1.6.7 and TL2) calls
    `tf.nn.depth_to_space`: output pixel `(h*r + i, w*r + j)` channel `c` is
    input channel `(i*r + j) * C_out + c`. `keras.ops.depth_to_space` uses the
    same order (checked against TensorLayer in tests/test_import_tl.py).

    Input `[B, H, W, C*r*r]` -> output `[B, H*r, W*r, C]`, any value range.
    """

    def __init__(self, block_size: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        return ops.depth_to_space(x, self.block_size, data_format="channels_last")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.block_size
        return (b, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self) -> dict:
        return {**super().get_config(), "block_size": self.block_size}


def _conv(filters: int, kernel: int, name: str, use_bias: bool, activation=None) -> layers.Conv2D:
    return layers.Conv2D(
        filters,
        kernel,
        padding="same",
        use_bias=use_bias,
        activation=activation,
        kernel_initializer=keras.initializers.RandomNormal(stddev=TL_KERNEL_STDDEV),
        bias_initializer="zeros",
        name=name,
    )


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(
        momentum=TL_BN_DECAY,
        epsilon=TL_BN_EPSILON,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=TL_KERNEL_STDDEV),
        name=name,
    )


def build_tl_generator(num_blocks: int = 16, filters: int = 64, io_range: str = "01") -> keras.Model:
    """Builds tensorlayer/srgan's 4x generator.

    Args:
        num_blocks: residual blocks (TL: 16).
        filters: feature channels of the trunk (TL: 64). The two up-sampling
            convolutions have `4 * filters` outputs (TL: 256) so each sub-pixel
            shuffle gives back `filters` channels.
        io_range: "01": input RGB `[B, H, W, 3]` in [0, 1], output
            `[B, 4H, 4W, 3]` in [0, 1] (the project's convention; the model maps
            to TL's [-1, 1] and back inside itself). "tl": input and output in
            TL's [-1, 1], exactly TL's interface.

    Returns:
        An uncompiled `keras.Model` named "tl_generator" taking any H, W. Call it
        with `training=False` for inference (BN on its moving statistics, as
        TL's `G.eval()`).

    Raises:
        ValueError: bad `num_blocks`, `filters` or `io_range`.
    """
    if io_range not in IO_RANGES:
        raise ValueError(f"io_range must be one of {IO_RANGES}, got {io_range!r}")
    if int(num_blocks) < 0 or int(filters) < 1:
        raise ValueError(f"need num_blocks >= 0 and filters >= 1, got {num_blocks}, {filters}")
    num_blocks, filters = int(num_blocks), int(filters)

    inputs = keras.Input((None, None, 3), name="lr")
    x = inputs
    if io_range == "01":
        x = layers.Rescaling(2.0, offset=-1.0, name="to_tl_range")(x)

    x = _conv(filters, 3, "conv_in", use_bias=True, activation="relu")(x)
    trunk = x
    for i in range(num_blocks):
        y = _conv(filters, 3, f"res{i}_conv1", use_bias=False)(x)
        y = _bn(f"res{i}_bn1")(y)
        y = layers.ReLU(name=f"res{i}_relu")(y)
        y = _conv(filters, 3, f"res{i}_conv2", use_bias=False)(y)
        y = _bn(f"res{i}_bn2")(y)
        x = layers.Add(name=f"res{i}_add")([x, y])
    x = _conv(filters, 3, "mid_conv", use_bias=False)(x)
    x = _bn("mid_bn")(x)
    x = layers.Add(name="mid_add")([x, trunk])

    for k in (1, 2):
        x = _conv(4 * filters, 3, f"up{k}_conv", use_bias=True)(x)
        x = DepthToSpace(2, name=f"up{k}_shuffle")(x)
        x = layers.ReLU(name=f"up{k}_relu")(x)
    x = _conv(3, 1, "conv_out", use_bias=True, activation="tanh")(x)

    if io_range == "01":
        x = layers.Rescaling(0.5, offset=0.5, name="from_tl_range")(x)
    return keras.Model(inputs, x, name="tl_generator")


__all__ = ["build_tl_generator", "DepthToSpace", "TL_BN_EPSILON", "TL_BN_DECAY", "TL_KERNEL_STDDEV", "IO_RANGES"]
