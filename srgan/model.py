"""SRGAN networks (paper sec. 4.2, after Ledig et al. and tensorlayer/srgan) in Keras 3.

* `build_generator`: SRResNet. 9x9 conv + PReLU; `num_blocks` residual blocks
  (conv3x3-BN-PReLU-conv3x3-BN + skip); conv3x3-BN + long skip; log2(scale)
  sub-pixel x2 stages (conv3x3 to 4*filters -> depth_to_space -> PReLU); 9x9
  conv to 3 channels. Fully convolutional. `arch="tl"` gives tensorlayer/srgan's
  exact generator instead (`srgan.model_tl`).
* `build_discriminator`: Ledig's discriminator.
* `build_vgg_features`: the frozen VGG19 feature extractor of the content loss.

Images in and out are float32 RGB in [0, 1]; each network rescales inside
itself (generator and discriminator work on [-1, 1], VGG on Caffe-style BGR
with the ImageNet mean removed). Only `keras.layers`/`keras.ops` are used, so
the models also run under other Keras backends.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import keras
import numpy as np
from keras import layers, ops

from srgan.model_tl import DepthToSpace

ARCHS = ("residual", "srresnet", "tl")
VGG_LAYERS = {"conv5_4": "block5_conv4", "pool4": "block4_pool", "conv2_2": "block2_conv2"}
VGG_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="srgan")
class ICNR(keras.initializers.Initializer):
    """Sub-pixel convolution init that starts as nearest-neighbour upsampling.

    Aitken et al. (2017), "Checkerboard artifact free sub-pixel convolution":
    the r*r sub-kernels that `depth_to_space` interleaves start equal, so the
    untrained upsampler has no checkerboard pattern (a known tensorlayer/srgan
    complaint). Channel order matches `depth_to_space` (sub-position major):
    one He-normal kernel for `cout / scale**2` channels, tiled `scale**2` times.
    """

    def __init__(self, scale: int = 2, seed: Optional[int] = None) -> None:
        self.scale = scale
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        sub = cout // (self.scale**2)
        base = keras.initializers.HeNormal(seed=self.seed)((kh, kw, cin, sub), dtype=dtype)
        return ops.tile(base, (1, 1, 1, self.scale**2))

    def get_config(self) -> dict:
        return {"scale": self.scale, "seed": self.seed}


def _conv(filters: int, kernel: int, name: str, **kw) -> layers.Conv2D:
    return layers.Conv2D(filters, kernel, padding="same", name=name, **kw)


def _prelu(name: str) -> layers.PReLU:
    # One slope per channel, shared over space (Ledig's PReLU), so any input size works.
    return layers.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(0.25), name=name)


def build_generator(num_blocks: int = 16, filters: int = 64, scale: int = 4, arch: str = "srresnet") -> keras.Model:
    """The SR generator.

    Args:
        num_blocks: residual blocks (paper: 16).
        filters: feature channels (paper: 64).
        scale: upscaling factor, a power of 2 (paper: 4).
        arch: `srresnet` (Ledig, PReLU, batch norm: the paper's), `residual`
            (bicubic + a learned residual, no batch norm, reflect padding, all
            compute at LR resolution: `srgan.residual`, the trainer's default) or
            `tl` (tensorlayer/srgan's ReLU/tanh generator; x4 only).

    Returns:
        A model mapping `[B, H, W, 3]` in [0, 1] to `[B, scale*H, scale*W, 3]`,
        roughly in [0, 1] (linear output, clipped by the export: a linear output
        trains better for PSNR than a saturating tanh). Call with
        `training=False` at test time (batch norm in inference mode, paper 5.1).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {ARCHS}")
    if scale < 2 or scale & (scale - 1):
        raise ValueError(f"scale must be a power of 2 (2, 4, 8, ...), got {scale}")
    if arch == "residual":
        from srgan.residual import build_residual_generator

        return build_residual_generator(num_blocks=num_blocks, filters=filters, scale=scale)
    if arch == "tl":
        if scale != 4:
            raise ValueError("arch 'tl' (tensorlayer/srgan) is x4 only")
        from srgan.model_tl import build_tl_generator

        return build_tl_generator(num_blocks=num_blocks, filters=filters)
    lr = keras.Input((None, None, 3), name="lr")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(lr)
    x = _prelu("conv_in_prelu")(_conv(filters, 9, "conv_in")(x))
    skip = x
    for i in range(num_blocks):
        y = _conv(filters, 3, f"res{i}_conv1")(x)
        y = _prelu(f"res{i}_prelu")(layers.BatchNormalization(name=f"res{i}_bn1")(y))
        y = layers.BatchNormalization(name=f"res{i}_bn2")(_conv(filters, 3, f"res{i}_conv2")(y))
        x = layers.Add(name=f"res{i}_add")([x, y])
    x = layers.BatchNormalization(name="mid_bn")(_conv(filters, 3, "mid_conv")(x))
    x = layers.Add(name="mid_add")([x, skip])
    for i in range(int(math.log2(scale))):
        x = _conv(filters * 4, 3, f"up{i + 1}_conv", kernel_initializer=ICNR(2))(x)
        x = _prelu(f"up{i + 1}_prelu")(DepthToSpace(2, name=f"up{i + 1}_shuffle")(x))
    x = _conv(3, 9, "conv_out", dtype="float32")(x)
    sr = layers.Rescaling(0.5, offset=0.5, name="to_01", dtype="float32")(x)
    return keras.Model(lr, sr, name=f"srresnet_b{num_blocks}_f{filters}_x{scale}")


def build_discriminator(hr_size: int = 96, name: str = "discriminator") -> keras.Model:
    """Ledig et al.'s discriminator (SRGAN paper, fig. 4).

    Eight 3x3 convolutions, 64 -> 512 channels doubling every two, strides
    alternating 1, 2; batch norm on all but the first; LeakyReLU(0.2); then
    dense 1024 + LeakyReLU and dense 1. tensorlayer/srgan (which the paper's
    code followed) used a different, DCGAN-style discriminator with 4x4 strided
    convolutions and a global pool; we follow Ledig here.

    Args:
        hr_size: side of the (square) HR crops it judges; the dense head fixes it.

    Returns:
        A model mapping `[B, hr_size, hr_size, 3]` in [0, 1] to logits `[B, 1]`
        (real > 0 > fake).
    """
    img = keras.Input((hr_size, hr_size, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(img)
    for i, (filters, stride) in enumerate(
        [(64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2)]
    ):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"d_conv{i}")(x)
        if i > 0:
            x = layers.BatchNormalization(name=f"d_bn{i}")(x)
        x = layers.LeakyReLU(0.2, name=f"d_lrelu{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.LeakyReLU(0.2, name="dense_lrelu")(layers.Dense(1024, name="dense1024")(x))
    logits = layers.Dense(1, name="logit", dtype="float32")(x)
    return keras.Model(img, logits, name=name)


def _variance_preserving_init(vgg: keras.Model) -> None:
    """Re-draws a random VGG's kernels He-normal (seeded by the Keras global seed).

    Keras' default Glorot init halves the signal's second moment at every
    ReLU, so random conv5_4 features would be ~2^-8 of the input's scale and
    a content loss on them would all but vanish; He init keeps the scale
    through the 16 conv+ReLU layers. The first layer is also divided by 255,
    undoing the Caffe preprocessing's 0-255 range, so random features are of
    the order of [0, 1] pixels and the content loss stays comparable to the
    pixel MSE (and its gradients within float16's range).
    """
    first = True
    for layer in vgg.layers:
        if isinstance(layer, layers.Conv2D):
            kernel = keras.initializers.HeNormal()(tuple(layer.kernel.shape))
            layer.kernel.assign(kernel / 255.0 if first else kernel)
            first = False


def build_vgg_features(layer: str = "conv5_4", weights: Optional[str] = "imagenet") -> keras.Model:
    """Frozen VGG19 features for the content loss.

    Args:
        layer: `conv5_4` (SRGAN paper: VGG54, after its ReLU), `pool4`
            (tensorlayer/srgan's choice) or `conv2_2` (SRGAN's VGG22).
        weights: `imagenet` (Keras download, needs internet or the file in
            the Keras cache), `none`/None (random He-normal kernels: a weaker
            but still defined perceptual loss), or the path of a VGG19 no-top weights file
            (Keras' `.h5` download or a `.weights.h5`).

    Returns:
        A non-trainable model `[B, H, W, 3]` in [0, 1] -> features `[B, h, w, C]`
        (conv5_4: h = H/16, C = 512, after its ReLU; pool4: H/16 too, C = 512;
        conv2_2: H/2, C = 128).

    Raises:
        ValueError: unknown layer, ImageNet weights unavailable, or a file
            that is not VGG19 weights.
        FileNotFoundError: a weights path that does not exist.
    """
    if layer not in VGG_LAYERS:
        raise ValueError(f"unknown VGG layer {layer!r}; choose from {sorted(VGG_LAYERS)}")
    if weights in (None, "none"):
        vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
        _variance_preserving_init(vgg)
    elif weights == "imagenet":
        try:
            vgg = keras.applications.VGG19(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        except Exception as e:  # Keras raises a bare Exception for a failed download.
            raise ValueError(
                f"could not load the ImageNet VGG19 weights ({e}). Offline, put "
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 in ~/.keras/models/ or pass its path "
                "as the weights (--vgg_weights PATH), or use 'none' (random VGG features)"
            ) from e
    else:
        path = str(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"VGG19 weights file not found: {path}")
        vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
        try:
            vgg.load_weights(path)
        except Exception as e:  # h5py/Keras raise assorted types for a wrong file.
            raise ValueError(f"{path}: not VGG19 (include_top=False) weights: {e}") from e
    feats = keras.Model(vgg.input, vgg.get_layer(VGG_LAYERS[layer]).output, name=f"vgg19_{layer}")
    feats.trainable = False
    img = keras.Input((None, None, 3), name="image")
    bgr = ops.flip(img * 255.0, axis=-1) - ops.convert_to_tensor(VGG_MEAN_BGR, dtype=img.dtype)
    return keras.Model(img, feats(bgr), name=f"vgg19_features_{layer}")


def sr_output(sr):
    """The SR generator's output as everything uses it: float32, clipped to [0, 1].

    The one post-processing of `G(lr)` on tensors (Keras ops, so any backend;
    TensorFlow's clip and cast under TensorFlow): the export's signature,
    `srgan.saved_model.upscale`, the trainer's dev metrics and samples, and the
    pipeline's rebuilt generators (`pipeline.models`). A mixed-precision
    generator gives float16 or bfloat16, and a linear last layer can leave
    [0, 1] (SRResNet, residual design). Host-side arrays from any upscaler go
    through `pipeline.inference.sr_output`, the same rule on numpy.

    Args:
        sr: `[B, H, W, 3]` tensor or array, any float dtype.

    Returns:
        float32 tensor of the same shape in [0, 1].
    """
    return ops.clip(ops.cast(sr, "float32"), 0.0, 1.0)


def count_params(model: keras.Model) -> int:
    """All weights of `model` (trainable or not)."""
    return int(sum(np.prod(v.shape) for v in model.weights))
