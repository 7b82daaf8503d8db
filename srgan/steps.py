"""The networks, optimisers and compiled train steps of one SRGAN run.

Split from `srgan.trainer` (the loop: data, checkpoints, evaluation, export).

* `mse_step`: phase 1, the generator alone on pixel MSE (SRResNet).
* `gan_step`: phase 2, one discriminator update then one generator update
  (k = 1, Ledig et al. / paper sec. 4.2), the generator's loss seeing the
  freshly updated discriminator, as tensorlayer/srgan's alternating runs do.

Phase 1 has its own Adam so that phase 2 starts with fresh moment estimates for
a new loss, as a separate SRResNet -> SRGAN run would.
"""
from __future__ import annotations

from typing import Any, Optional

import keras
import tensorflow as tf

from common.distribute import distributed_step, replica_loss, synchronize_batch_norm
from srgan import losses
from srgan.model import build_discriminator, build_generator, build_vgg_features


class SRGANModels:
    """Generator, discriminator, VGG features, the three optimisers and the steps.

    Args:
        config: an `srgan.config.SRGANConfig` (read: num_blocks, filters,
            scale, arch, hr_size, vgg_layer, vgg_weights, learning_rate, beta_1,
            mixed_precision, jit_compile and the loss weights). The Keras
            mixed-precision policy must already be set when it is built.
    """

    def __init__(self, config: Any, strategy: Optional[tf.distribute.Strategy] = None) -> None:
        self.config = config
        strategy = strategy or tf.distribute.get_strategy()
        with strategy.scope():
            self.generator = build_generator(config.num_blocks, config.filters, config.scale, config.arch)
            self.discriminator = build_discriminator(config.hr_size)
            self.vgg = build_vgg_features(config.vgg_layer,
                                          None if config.vgg_weights == "none" else config.vgg_weights)
            self.g_init_opt, self.g_opt, self.d_opt = self._adam(), self._adam(), self._adam()
            # Slot variables must exist before a checkpoint restore, or Adam's
            # moments would silently restart from zero on resume.
            self.g_init_opt.build(self.generator.trainable_variables)
            self.g_opt.build(self.generator.trainable_variables)
            self.d_opt.build(self.discriminator.trainable_variables)
        if getattr(config, "strategy", "default") != "default":
            synchronize_batch_norm(self.generator)
            synchronize_batch_norm(self.discriminator)
        # Each replica's losses are its batch means; `replica_loss` scales the
        # gradients so their cross-replica sum is the global batch's.
        self.mse_step = distributed_step(strategy, self._mse_step, config.jit_compile)
        self.gan_step = distributed_step(strategy, self._gan_step, config.jit_compile)

    def _adam(self) -> keras.optimizers.Optimizer:
        opt = keras.optimizers.Adam(self.config.learning_rate, beta_1=self.config.beta_1)
        # float16 gradients underflow without loss scaling; bfloat16 has
        # float32's exponent range and needs none.
        if self.config.mixed_precision == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        return opt

    def trackables(self) -> dict:
        """Everything a checkpoint must hold to continue the run exactly."""
        return {"generator": self.generator, "discriminator": self.discriminator,
                "g_init_opt": self.g_init_opt, "g_opt": self.g_opt, "d_opt": self.d_opt}

    @staticmethod
    def _apply(opt, tape: tf.GradientTape, scaled_loss, variables) -> None:
        # LossScaleOptimizer unscales the gradients (and skips a non-finite
        # step) in apply_gradients.
        grads = tape.gradient(scaled_loss, variables)
        opt.apply_gradients(zip(grads, variables))

    def _mse_step(self, lr: tf.Tensor, hr: tf.Tensor) -> dict:
        """Phase 1. lr `[B, h, w, 3]`, hr `[B, s*h, s*w, 3]` in [0, 1] -> {"mse"}."""
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            loss = losses.pixel_mse(hr, sr)
            # Inside the tape, or the loss scale would not reach the gradients
            # (a plain optimizer's scale_loss is the identity).
            scaled = self.g_init_opt.scale_loss(replica_loss(loss))
        self._apply(self.g_init_opt, tape, scaled, g_vars)
        return {"mse": loss}

    def _gan_step(self, lr: tf.Tensor, hr: tf.Tensor) -> dict:
        """Phase 2: D then G. Returns {"d", "g", "content", "adversarial", "mse"} scalars."""
        c = self.config
        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
        sr = tf.stop_gradient(self.generator(lr, training=True))
        with tf.GradientTape() as d_tape:
            d_loss = losses.discriminator_loss(
                self.discriminator(hr, training=True), self.discriminator(sr, training=True)
            )
            d_scaled = self.d_opt.scale_loss(replica_loss(d_loss))
        self._apply(self.d_opt, d_tape, d_scaled, d_vars)
        with tf.GradientTape() as g_tape:
            sr = self.generator(lr, training=True)
            parts = losses.generator_loss(
                hr, sr, self.discriminator(sr, training=True), self.vgg,
                adversarial_weight=c.adversarial_weight, content_weight=c.content_weight,
                pixel_weight=c.pixel_weight,
            )
            g_scaled = self.g_opt.scale_loss(replica_loss(parts["total"]))
        self._apply(self.g_opt, g_tape, g_scaled, g_vars)
        return {"d": d_loss, "g": parts["total"], "content": parts["content"],
                "adversarial": parts["adversarial"], "mse": parts["pixel"]}

    def set_learning_rate(self, value: float) -> None:
        """Sets all three optimisers' rate (restoring a checkpoint restores the
        old rate too; the schedule, from the step, must win)."""
        for opt in (self.g_init_opt, self.g_opt, self.d_opt):
            getattr(opt, "inner_optimizer", opt).learning_rate.assign(value)
