"""Trains one network a few steps on the active Keras backend, straight and resumed, in a fresh process.

`KERAS_BACKEND=jax python tests/backend_check.py colorize|srgan DATA_DIR WORKDIR`
prints one JSON line: the backend, the fixed-batch loss before and after
training (batch norm in training mode, as the optimiser sees it), the
per-step losses, and the largest difference between the weights of a run
stopped half-way and resumed and those of an uninterrupted run. A separate
process because Keras picks its backend once, at import.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np


def colorize_check(data_dir: str, workdir: str) -> dict:
    import keras

    from colorize.config import ColorizeConfig
    from colorize.losses import colorize_loss
    from colorize.model import architecture, build_colorizer
    from colorize.trainer import train
    from data.examples import load_images, make_examples, whole_images
    from data.splits import split_files

    # The paper's network (random, frozen VGG16), as tests/test_colorize_fit.py's run20.
    config = ColorizeConfig(data_dir=data_dir, iterations=8, batch_size=4, size=32, backbone_weights="none",
                            log_every=2, eval_every=4, sample_every=4, checkpoint_every=4, tensorboard=False,
                            export=False, seed=1)
    images, sizes = load_images(split_files(data_dir, "train"))
    y, uv = make_examples(images, whole_images(sizes), config.size)
    keras.utils.set_random_seed(config.seed)  # the trainer's initial weights
    untrained = build_colorizer(None, **architecture(dataclasses.asdict(config)))
    before = float(colorize_loss(uv, untrained(y, training=True)))
    straight = train(config, os.path.join(workdir, "straight"))
    saved = straight.model.get_weights()  # a training-mode call moves the batch-norm statistics
    after = float(colorize_loss(uv, straight.model(y, training=True)))
    straight.model.set_weights(saved)
    resumed_dir = os.path.join(workdir, "resumed")
    first = train(dataclasses.replace(config, iterations=4), resumed_dir)
    resumed = train(config, resumed_dir)
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(straight.model.weights, resumed.model.weights) if np.asarray(a).size)
    return {"backend": keras.backend.backend(), "before": before, "after": after,
            "losses": [v for _, v in straight.losses], "steps": [first.step, resumed.start_step, resumed.step],
            "max_abs_diff_resumed": diff, "samples": sorted(os.listdir(os.path.join(workdir, "straight", "samples"))),
            "dev": sorted(straight.dev)}


def srgan_check(data_dir: str, workdir: str) -> dict:
    import keras

    from data.examples import load_images
    from data.splits import split_files
    from data.sr_examples import central_hr_crops, degrade
    from srgan import losses
    from srgan.config import SRGANConfig
    from srgan.model import build_generator
    from srgan.restore import restore_generator
    from srgan.trainer import train

    # The paper's SRResNet (batch norm), phase 1 then 4 GAN steps; the stop at step 5 is in phase 2.
    config = SRGANConfig(data_dir=data_dir, arch="srresnet", num_blocks=1, filters=8, hr_size=32, batch_size=4,
                         init_steps=4, steps=8, decay_every=2, vgg_layer="conv2_2", vgg_weights="none",
                         learning_rate=1e-3, eval_every=4, sample_every=4, checkpoint_every=2, log_every=1,
                         eval_images=2, seed=1)
    hr, block = central_hr_crops(*load_images(split_files(data_dir, "train")), 32, "bicubic")
    lr = degrade(hr, block, config.scale)
    keras.utils.set_random_seed(config.seed)  # the trainer's initial generator
    untrained = build_generator(1, 8, 4, "srresnet")
    mse = lambda g: float(losses.pixel_mse(hr, g(lr, training=True)))  # noqa: E731
    before = mse(untrained)
    straight = train(config, os.path.join(workdir, "straight"))
    first = train(dataclasses.replace(config, steps=5), os.path.join(workdir, "resumed"))
    resumed = train(config, os.path.join(workdir, "resumed"))
    g_straight, _, _ = restore_generator(os.path.join(workdir, "straight"))
    g_resumed, _, _ = restore_generator(os.path.join(workdir, "resumed"))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(g_straight.get_weights(), g_resumed.get_weights()))
    g_mse, _, mse_step = restore_generator(os.path.join(workdir, "straight"), phase="mse")
    return {"backend": keras.backend.backend(), "before": before, "after_phase1": mse(g_mse), "mse_step": mse_step,
            "phases": [h["phase"] for h in straight.history], "steps": [first.step, resumed.history[0]["step"],
                                                                         resumed.step],
            "max_abs_diff_resumed": diff, "dev": sorted(straight.dev),
            "samples": sorted(os.listdir(os.path.join(workdir, "straight", "samples")))}


def consistency_check(data_dir: str, workdir: str) -> dict:
    """The trainer's consistency layer (`data.sr_examples.consistent`) on fixed seeded crops, both operators."""
    import keras
    from keras import ops

    from data.sr_examples import consistent, degrade

    del data_dir, workdir
    hr = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    block = np.array([1.0, 0.0], np.float32)
    lr = degrade(hr, block, 4, block_linear=True)
    out = consistent(np.clip(0.8 * hr, 0, 1), lr, block, 4, block_linear=True)
    return {"backend": keras.backend.backend(), "out": ops.convert_to_numpy(out).ravel().tolist()}


def run_under_jax(which: str, data_dir: str, workdir: str) -> dict:
    """This script's JSON for `which` (colorize | srgan), run in a fresh process with `KERAS_BACKEND=jax` on the CPU.

    Raises:
        AssertionError: the process failed (its stderr's tail in the message).
    """
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    res = subprocess.run([sys.executable, os.path.abspath(__file__), which, data_dir, workdir], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    which, data, work = sys.argv[1:4]
    print(json.dumps({"colorize": colorize_check, "srgan": srgan_check, "consistency": consistency_check}[which](
        data, work)))
