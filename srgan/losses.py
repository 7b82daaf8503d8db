"""SRGAN losses (paper sec. 4.2; Ledig et al. eq. 3-6), pure batch-mean functions.

perceptual loss = content + 1e-3 x adversarial (+ an optional pixel MSE, which
tensorlayer/srgan adds). All functions take `(y_true, y_pred)`-style tensors and
return a scalar; none reads global state.
"""
from __future__ import annotations

from typing import Callable, Optional

from keras import ops


def pixel_mse(hr, sr):
    """Mean squared error over pixels and channels, batch mean. `[B, H, W, C]` in [0, 1]."""
    return ops.mean(ops.square(ops.cast(hr, "float32") - ops.cast(sr, "float32")))


def content_loss(features_hr, features_sr):
    """MSE between feature maps, normalised by their size (Ledig eq. 5).

    Ledig's VGG loss is 1/(W H) sum over the map of squared differences; we also
    divide by the channel count (a plain mean), which only rescales it by a
    constant and keeps it independent of the layer chosen.

    Args:
        features_hr, features_sr: `[B, h, w, C]` feature maps.

    Returns:
        Scalar: mean over batch, positions and channels.
    """
    return ops.mean(ops.square(ops.cast(features_hr, "float32") - ops.cast(features_sr, "float32")))


def perceptual_content_loss(extractor: Callable, hr, sr):
    """`content_loss` of `extractor(hr)` and `extractor(sr)` (e.g. frozen VGG19 features)."""
    return content_loss(extractor(hr), extractor(sr))


def adversarial_loss(fake_logits):
    """-log D(G(LR)), the non-saturating generator loss (Ledig eq. 6), batch mean.

    Computed from logits as softplus(-logit) = -log sigmoid(logit), which stays
    finite where D is confident.
    """
    return ops.mean(ops.softplus(-ops.cast(fake_logits, "float32")))


def discriminator_loss(real_logits, fake_logits):
    """Binary cross-entropy of D: real HR -> 1, G(LR) -> 0, from logits, batch mean."""
    real = ops.mean(ops.softplus(-ops.cast(real_logits, "float32")))
    fake = ops.mean(ops.softplus(ops.cast(fake_logits, "float32")))
    return real + fake


def generator_loss(
    hr,
    sr,
    fake_logits,
    extractor: Optional[Callable],
    adversarial_weight: float = 1e-3,
    content_weight: float = 1.0,
    pixel_weight: float = 0.0,
) -> dict:
    """The perceptual loss and its parts.

    Args:
        hr, sr: `[B, H, W, 3]` in [0, 1].
        fake_logits: D's logits on `sr`, `[B, 1]`.
        extractor: feature extractor for the content loss (None: no content term).
        adversarial_weight: paper's 1e-3.
        content_weight, pixel_weight: weights of the VGG and pixel MSE terms.

    Returns:
        {"total", "content", "adversarial", "pixel"} scalars.
    """
    content = perceptual_content_loss(extractor, hr, sr) if extractor is not None else ops.zeros(())
    adversarial = adversarial_loss(fake_logits)
    pixel = pixel_mse(hr, sr)
    total = content_weight * content + adversarial_weight * adversarial + pixel_weight * pixel
    return {"total": total, "content": content, "adversarial": adversarial, "pixel": pixel}
