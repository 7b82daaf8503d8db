"""Runs one trainer twice in a fresh process: single device, then mirrored over two logical CPUs.

`python tests/distributed_check.py colorize|srgan DATA_DIR WORKDIR` prints one
JSON line: the largest absolute difference between the two runs' weights,
their per-step losses and the replica count. A separate process because the
CPU can only be split into logical devices before TensorFlow starts using it.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np


def main(which: str, data_dir: str, workdir: str) -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    runs = {}
    for strategy in ("default", "mirrored"):
        work = os.path.join(workdir, strategy)
        if which == "colorize":
            # Adam epsilon 1e-4 instead of the paper's 1e-8: Adam's first update is lr x g / (|g| + eps), so
            # with eps = 1e-8 a weight whose gradient is only float noise (~1e-9: decoder kernels behind the
            # random, frozen VGG16 at 32 px) moves a full +-lr on either run by chance, and the runs would be
            # compared on noise. With eps = 1e-4 such a weight moves < lr * 1e-5, and Adam is no longer
            # blind to the gradients' scale (g / |g| is), so a mis-scaled replica sum shows in the weights.
            from colorize.config import ColorizeConfig
            from colorize.trainer import train

            result = train(ColorizeConfig(data_dir=data_dir, iterations=4, batch_size=4, size=32,
                                          backbone_weights="none", freeze_backbone=True, export=False,
                                          tensorboard=False, eval_every=1000, sample_every=1000, log_every=1,
                                          checkpoint_every=1000, strategy=strategy, seed=3,
                                          epsilon=1e-4), work)
            weights = [np.asarray(v) for v in result.model.weights]
            names = [v.path for v in result.model.weights]
            moving = [not v.trainable for v in result.model.weights]
            losses = [loss for _, loss in result.losses]
        else:
            from srgan.config import SRGANConfig
            from srgan.restore import restore_generator
            from srgan.trainer import train

            # The paper's SRResNet: its batch norm is what synchronised replicas must agree on.
            result = train(SRGANConfig(data_dir=data_dir, arch="srresnet", num_blocks=1, filters=8, hr_size=32, batch_size=4,
                                       init_steps=2, steps=4, vgg_layer="conv2_2", vgg_weights="none",
                                       eval_every=1000, sample_every=1000, checkpoint_every=1000, log_every=1,
                                       eval_images=1, strategy=strategy, seed=3), work)
            generator, _, _ = restore_generator(work)
            weights = [np.asarray(v) for v in generator.weights]
            moving = [not v.trainable for v in generator.weights]
            names = [v.path for v in generator.weights]
            losses = [h.get("mse", 0.0) + h.get("d", 0.0) for h in result.history]
        runs[strategy] = (weights, losses)
        runs["names"], runs["moving"] = names, moving
    (w0, l0), (w1, l1) = runs["default"], runs["mirrored"]
    assert len(w0) == len(w1)
    if os.environ.get("DEBUG_DIFF"):
        for n, a, b in zip(runs["names"], w0, w1):
            if a.size and np.max(np.abs(a - b)) > 1e-4:
                print(n, float(np.max(np.abs(a - b))), float(np.max(np.abs(a))), file=sys.stderr)
    pairs = [(a, b, m) for a, b, m in zip(w0, w1, runs["moving"]) if a.size]
    diff = max(float(np.max(np.abs(a - b))) for a, b, m in pairs if not m)
    moving_rel = max(float(np.max(np.abs(a - b) / (np.abs(a) + 1e-3))) for a, b, m in pairs if m)
    from common.distribute import make_strategy

    return {"max_abs_diff_trainable": diff, "max_rel_diff_moving_stats": moving_rel,
            "losses_default": l0, "losses_mirrored": l1,
            "replicas": int(make_strategy("mirrored").num_replicas_in_sync)}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
