"""The SRGAN as one `keras.Model` whose `train_step` is phase 1 or phase 2, for `model.fit` on any backend.

* phase 1: the generator alone on pixel MSE (SRResNet), with its own Adam
  (`g_init_opt`), so phase 2 starts with fresh moment estimates for a new loss,
  as a separate SRResNet -> SRGAN run would;
* phase 2: one discriminator update then one generator update (k = 1, Ledig
  et al. / paper sec. 4.2), the generator's loss seeing the freshly updated
  discriminator, as tensorlayer/srgan's alternating runs do.

A batch is `(hr crops, block flags)` (`data.sr_examples`); the LR is made
inside the step (`data.sr_examples.degrade`). `srgan.trainer` runs one `fit`
per phase over its span of the global step (`set_phase`). The step is written
twice where Keras needs it: with `tf.GradientTape` under TensorFlow (inside
`tf.distribute` each replica's losses are divided by the replica count, so the
gradients summed across replicas are the global batch's) and with
`stateless_call` + `jax.value_and_grad` under JAX (fit passes the state in and
takes it back). Each returns the step's losses, batch means.

The learning rate is a schedule of each optimiser's own update count: phase 1
the base rate; phase 2 (`g_opt`, `d_opt`, whose counts are phase-2 steps)
`PhaseTwoRate`; `SRGANFit.learning_rate_at` reads the same schedules for the log.
"""
from __future__ import annotations

from typing import Any

import keras
from keras import ops

from common.back_projection import lr_cycle
from common.callbacks import Prebuilt
from data.sr_examples import consistent, degrade
from srgan import losses
from srgan.model import build_discriminator, build_generator, build_vgg_features

#: The state's file stems (`common.state.save_state`).
MODELS = ("generator", "discriminator")
OPTIMIZERS = ("g_init_opt", "g_opt", "d_opt")


class PhaseTwoRate(keras.optimizers.schedules.LearningRateSchedule):
    """`rate * factor ** (updates // every)`: phase 2's step decay on a phase-2 optimiser's update count."""

    def __init__(self, rate: float, factor: float, every: int) -> None:
        self.rate, self.factor, self.every = float(rate), float(factor), int(every)

    def __call__(self, step):
        n = ops.floor_divide(ops.cast(step, "int32"), self.every)
        return self.rate * ops.power(self.factor, ops.cast(n, "float32"))

    def get_config(self) -> dict:
        return {"rate": self.rate, "factor": self.factor, "every": self.every}


class _Optimizers(keras.optimizers.Optimizer):
    """The three Adams as the one `model.optimizer` fit expects (their variables, in order, are its own).

    fit keeps `optimizer.variables` in its state (under JAX outside the
    variables) and writes them back; the steps apply each Adam themselves.
    """

    def __init__(self, optimizers: list) -> None:
        super().__init__(learning_rate=0.0, name="srgan_optimizers")
        self.parts = optimizers
        self.built = True

    def build(self, variables) -> None:
        self.built = True

    @property
    def variables(self) -> list:
        return [v for opt in self.parts for v in opt.variables]


class SRGANFit(Prebuilt, keras.Model):
    """Generator, discriminator, VGG features and the three optimisers; `train_step` by phase.

    Args:
        config: an `srgan.config.SRGANConfig` (read: num_blocks, filters,
            scale, arch, hr_size, vgg_layer, vgg_weights, learning_rate,
            beta_1, decay_factor, decay_every, mixed_precision and the loss
            weights). The Keras mixed-precision policy must already be set.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(name="srgan_fit", dtype="float32")  # the networks keep their own policies
        self.config = config
        self.generator = build_generator(config.num_blocks, config.filters, config.scale, config.arch)
        self.discriminator = build_discriminator(config.hr_size)
        self.vgg = build_vgg_features(config.vgg_layer, None if config.vgg_weights == "none" else config.vgg_weights)
        self._phase2_rate = PhaseTwoRate(config.learning_rate, config.decay_factor, config.decay_every)
        self.g_init_opt, self.g_opt, self.d_opt = (self._adam(config.learning_rate), self._adam(self._phase2_rate),
                                                   self._adam(self._phase2_rate))
        # Slot variables must exist before a restore, or Adam's moments would restart from zero on resume.
        self.g_init_opt.build(self.generator.trainable_variables)
        self.g_opt.build(self.generator.trainable_variables)
        self.d_opt.build(self.discriminator.trainable_variables)
        if config.train_consistency:
            # The consistency layer's LR-grid matrices, made now (eagerly): inside a traced step they cannot be.
            for operator in ("bicubic", "block"):
                lr_cycle(config.hr_size // config.scale, config.scale, operator)
        self.phase = 1
        self.built = True

    def learning_rate_at(self, step: int) -> float:
        """The rate of the update taking the run from global `step` to `step + 1` (phase 1's, or phase 2's schedule)."""
        if step < self.config.init_steps:
            return float(self.config.learning_rate)
        return float(self._phase2_rate(step - self.config.init_steps))

    def _adam(self, rate) -> keras.optimizers.Optimizer:
        opt = keras.optimizers.Adam(rate, beta_1=self.config.beta_1)
        # float16 gradients underflow without loss scaling; bfloat16 has float32's exponent range.
        if self.config.mixed_precision == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        return opt

    def call(self, lr, training: bool = False):
        return self.generator(lr, training=training)

    def compile_for_fit(self, jit_compile) -> None:
        self.compile(optimizer=_Optimizers([self.g_init_opt, self.g_opt, self.d_opt]), jit_compile=jit_compile)

    def set_phase(self, phase: int) -> None:
        """The phase the next fit trains (its compiled step is rebuilt)."""
        self.phase = int(phase)
        self.train_function = None

    def state(self) -> tuple[dict, dict]:
        """`(models, optimizers)` by file stem, as `common.state.save_state` takes them."""
        return ({"generator": self.generator, "discriminator": self.discriminator},
                {"g_init_opt": self.g_init_opt, "g_opt": self.g_opt, "d_opt": self.d_opt})

    # ------------------------------------------------------------------ the losses (any backend)

    def _lr(self, data):
        hr, block = data[0], data[1]
        return degrade(hr, block, self.config.scale, self.config.block_linear), ops.cast(hr, "float32")

    def _output(self, sr, lr, data):
        """The generator's output as the losses see it: after the consistency layer with `train_consistency`."""
        c = self.config
        return consistent(sr, lr, data[1], c.scale, c.block_linear) if c.train_consistency else sr

    def _raw_term(self, raw, lr, data):
        """With `train_consistency`: how far the generator's own output is from consistent, the MSE of it
        degraded again (float) against its input. The layer cannot see that part of the output, so without
        this term it drifts (a first fine-tune's own output came out 7-10 levels dark); with it the network
        stays an SR on its own (`--consistency none`) and the layer has little left to do."""
        c = self.config
        if not c.train_consistency:
            return 0.0
        again = degrade(ops.clip(raw, 0.0, 1.0), data[1], c.scale, c.block_linear, quantize=False)
        return losses.pixel_mse(lr, again)

    def _pixel_loss(self, hr, raw, lr, data):
        """Phase 1's loss: pixel MSE of the output (after the layer), plus `_raw_term` when it is on."""
        return losses.pixel_mse(hr, self._output(raw, lr, data)) + self._raw_term(raw, lr, data)

    def _generator_loss(self, hr, sr, fake_logits, raw, lr, data, feats=None) -> dict:
        """Phase 2's generator loss parts on the output `sr` (after the layer), plus `_raw_term` of `raw`."""
        c = self.config
        parts = losses.generator_loss(hr, sr, fake_logits, self.vgg if feats is None else feats,
                                      adversarial_weight=c.adversarial_weight, content_weight=c.content_weight,
                                      pixel_weight=c.pixel_weight)
        if c.train_consistency:
            parts = dict(parts, total=parts["total"] + self._raw_term(raw, lr, data))
        return parts

    # ------------------------------------------------------------------ TensorFlow

    def _tf_train_step(self, data) -> dict:
        import tensorflow as tf

        lr, hr = self._lr(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync

        def scaled(opt, loss):
            # Inside the tape, or the loss scale would not reach the gradients (a plain optimiser's
            # scale_loss is the identity); apply_gradients unscales them and skips a non-finite step.
            return opt.scale_loss(loss / replicas)

        def apply(opt, tape, loss, variables):
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))

        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
        if self.phase == 1:
            with tf.GradientTape() as tape:
                mse = self._pixel_loss(hr, self.generator(lr, training=True), lr, data)
                loss = scaled(self.g_init_opt, mse)
            apply(self.g_init_opt, tape, loss, g_vars)
            return {"mse": mse}
        sr = tf.stop_gradient(self._output(self.generator(lr, training=True), lr, data))
        with tf.GradientTape() as tape:
            d = losses.discriminator_loss(self.discriminator(hr, training=True),
                                          self.discriminator(sr, training=True))
            loss = scaled(self.d_opt, d)
        apply(self.d_opt, tape, loss, d_vars)
        with tf.GradientTape() as tape:
            raw = self.generator(lr, training=True)
            sr = self._output(raw, lr, data)
            parts = self._generator_loss(hr, sr, self.discriminator(sr, training=True), raw, lr, data)
            loss = scaled(self.g_opt, parts["total"])
        apply(self.g_opt, tape, loss, g_vars)
        return {"d": d, "g": parts["total"], "content": parts["content"], "adversarial": parts["adversarial"],
                "mse": parts["pixel"]}

    # ------------------------------------------------------------------ JAX

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, opt_values, metrics = state
        t_pos = {id(v): i for i, v in enumerate(self.trainable_variables)}
        n_pos = {id(v): i for i, v in enumerate(self.non_trainable_variables)}
        pick = lambda values, pos, variables: [values[pos[id(v)]] for v in variables]  # noqa: E731
        nets = {name: getattr(self, name) for name in ("generator", "discriminator", "vgg")}
        tv = {k: pick(trainable, t_pos, m.trainable_variables) for k, m in nets.items()}
        ntv = {k: pick(non_trainable, n_pos, m.non_trainable_variables) for k, m in nets.items()}
        sizes = [len(o.variables) for o in (self.g_init_opt, self.g_opt, self.d_opt)]
        cut = (sizes[0], sizes[0] + sizes[1])
        opt_parts = [opt_values[: cut[0]], opt_values[cut[0]: cut[1]], opt_values[cut[1]:]]
        lr, hr = self._lr(data)

        def call(name, x, trainable_values=None):
            out, ntv[name] = nets[name].stateless_call(
                tv[name] if trainable_values is None else trainable_values, ntv[name], x, training=True)
            return out

        if self.phase == 1:
            def mse_loss(g_tv, g_ntv):
                sr, g_ntv = nets["generator"].stateless_call(g_tv, g_ntv, lr, training=True)
                return self._pixel_loss(hr, sr, lr, data), g_ntv

            (mse, ntv["generator"]), grads = jax.value_and_grad(mse_loss, has_aux=True)(tv["generator"],
                                                                                        ntv["generator"])
            tv["generator"], opt_parts[0] = self.g_init_opt.stateless_apply(opt_parts[0], grads, tv["generator"])
            logs = {"mse": mse}
        else:
            sr = jax.lax.stop_gradient(self._output(call("generator", lr), lr, data))

            def d_loss(d_tv, d_ntv):
                real, d_ntv = nets["discriminator"].stateless_call(d_tv, d_ntv, hr, training=True)
                fake, d_ntv = nets["discriminator"].stateless_call(d_tv, d_ntv, sr, training=True)
                return losses.discriminator_loss(real, fake), d_ntv

            (d, ntv["discriminator"]), grads = jax.value_and_grad(d_loss, has_aux=True)(tv["discriminator"],
                                                                                       ntv["discriminator"])
            tv["discriminator"], opt_parts[2] = self.d_opt.stateless_apply(opt_parts[2], grads, tv["discriminator"])

            def g_loss(g_tv, g_ntv, d_ntv):
                raw, g_ntv = nets["generator"].stateless_call(g_tv, g_ntv, lr, training=True)
                sr = self._output(raw, lr, data)
                fake, d_ntv = nets["discriminator"].stateless_call(tv["discriminator"], d_ntv, sr, training=True)
                feats = lambda x: nets["vgg"].stateless_call(tv["vgg"], ntv["vgg"], x)[0]  # noqa: E731  frozen
                parts = self._generator_loss(hr, sr, fake, raw, lr, data, feats)
                return parts["total"], (parts, g_ntv, d_ntv)

            (_, (parts, ntv["generator"], ntv["discriminator"])), grads = jax.value_and_grad(g_loss, has_aux=True)(
                tv["generator"], ntv["generator"], ntv["discriminator"])
            tv["generator"], opt_parts[1] = self.g_opt.stateless_apply(opt_parts[1], grads, tv["generator"])
            logs = {"d": d, "g": parts["total"], "content": parts["content"], "adversarial": parts["adversarial"],
                    "mse": parts["pixel"]}
        trainable, non_trainable = list(trainable), list(non_trainable)
        for name, model in nets.items():
            for v, value in zip(model.trainable_variables, tv[name]):
                trainable[t_pos[id(v)]] = value
            for v, value in zip(model.non_trainable_variables, ntv[name]):
                non_trainable[n_pos[id(v)]] = value
        return logs, (trainable, non_trainable, [v for part in opt_parts for v in part], metrics)

    def train_step(self, *args):
        if keras.backend.backend() == "jax":
            logs, state = self._jax_train_step(*args)
            return self.one_value_each(logs), state
        if keras.backend.backend() == "tensorflow":
            return self.one_value_each(self._tf_train_step(*args))
        raise ValueError(f"the SRGAN trains under the TensorFlow or JAX backend, not {keras.backend.backend()}")


__all__ = ["SRGANFit", "PhaseTwoRate", "MODELS", "OPTIMIZERS"]
