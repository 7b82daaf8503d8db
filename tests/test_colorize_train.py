"""Training the colouriser (`model.fit`) on a few real images: learning, run files, resume, NaN stop, restore."""
import dataclasses
import glob
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorize.losses import colorize_loss
from colorize.model import build_colorizer
from colorize.saved_model import restore_colorizer
from colorize.trainer import ColorizeConfig, train
from common import callbacks
from common.state import state_path, state_step
from common.training import NonFiniteLossError
from data.examples import load_images, make_examples, whole_images
from data.splits import split_files
from data.io import read_image


@pytest.fixture(scope="module")
def prepared(make_prepared):
    """The data.prepare layout: 8 real images in train/, 2 in dev/."""
    return make_prepared(8, 2)

def _config(data_dir, **kw):
    base = dict(data_dir=data_dir, batch_size=2, size=32, backbone_weights="none", log_every=5,
                sample_every=1000, eval_every=1000, checkpoint_every=1000, export=False, tensorboard=False)
    base.update(kw)
    return ColorizeConfig(**base)


@pytest.fixture(scope="module")
def run30(prepared, tmp_path_factory):
    """30 steps at 64x64, batch 4, with evaluation, samples and TensorBoard logs."""
    config = _config(prepared, iterations=30, batch_size=4, size=64, log_every=10, sample_every=15,
                     eval_every=15, checkpoint_every=10, tensorboard=True)
    workdir = str(tmp_path_factory.mktemp("run30"))
    return config, workdir, train(config, workdir)


def _fixed_batch(prepared, size=64):
    """The 8 training images resized whole: `(y, uv)`."""
    images, sizes = load_images(split_files(prepared, "train"))
    return make_examples(images, whole_images(sizes), size)


def test_thirty_steps_lower_the_loss(prepared, run30):
    config, _, result = run30
    y, uv = _fixed_batch(prepared)
    keras.utils.set_random_seed(config.seed)
    untrained = build_colorizer(None, freeze_backbone=True)
    # Batch-norm in training mode: what the optimiser sees, without waiting for
    # the slow (momentum 0.99) moving statistics to settle.
    before = float(colorize_loss(uv, untrained(y, training=True)))
    saved = result.model.get_weights()  # a training-mode call moves the BN statistics
    after = float(colorize_loss(uv, result.model(y, training=True)))
    result.model.set_weights(saved)
    assert after < 0.5 * before
    losses = [loss for _, loss in result.losses]
    assert [s for s, _ in result.losses] == list(range(1, 31))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert set(result.dev) == {"loss", "uv_mse", "rgb_mse", "rgb_psnr", "grey_baseline_loss", "grey_uv_mse"}
    assert result.dev["rgb_psnr"] == pytest.approx(-10 * np.log10(result.dev["rgb_mse"]))
    assert all(np.isfinite(v) for v in result.dev.values())


def test_run_writes_config_samples_logs_and_checkpoints(run30):
    config, workdir, _ = run30
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f) == json.loads(json.dumps(dataclasses.asdict(config)))
    for step in (15, 30):
        sheet = read_image(os.path.join(workdir, "samples", f"step_{step:07d}.png"))
        # Two dev images, each a row of grey | prediction | truth with 2-pixel gaps.
        assert sheet.shape == (2 * 64 + 2, 3 * 64 + 4, 3)
        assert np.allclose(sheet[:64, :64, 0], sheet[:64, :64, 1])  # the grey panel is grey
    assert state_step(state_path(workdir)) == 30
    # checkpoint_every 10: a snapshot at each checkpoint, all of them kept (max_to_keep 5).
    assert sorted(os.listdir(os.path.join(workdir, "weights"))) == [f"step_{s:07d}.weights.h5" for s in (10, 20, 30)]
    assert os.path.isfile(os.path.join(workdir, "best", "best.json"))
    tags = set()
    for path in glob.glob(os.path.join(workdir, "tensorboard", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"train/loss", "train/steps_per_sec", "dev/loss", "dev/rgb_mse", "samples/grey_pred_truth"} <= tags


def test_restore_for_export_gives_the_trained_weights(prepared, run30):
    _, workdir, result = run30
    y, _ = _fixed_batch(prepared)
    model, step, config = restore_colorizer(workdir, "latest")
    assert step == 30 and config["iterations"] == 30
    np.testing.assert_array_equal(model(y, training=False), result.model(y, training=False))
    _, best_step, _ = restore_colorizer(workdir, "best")
    assert best_step == json.load(open(os.path.join(workdir, "best", "best.json")))["step"]
    assert best_step in (15, 30)
    assert restore_colorizer(workdir, "20")[1] == 20
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        restore_colorizer(workdir, "7")


def test_compact_backbone_with_global_context_trains_and_restores(prepared, tmp_path):
    workdir = str(tmp_path / "compact")
    config = _config(prepared, iterations=12, batch_size=4, size=64, backbone="compact", global_context=True,
                     output_batchnorm=False, learning_rate=3e-3)
    result = train(config, workdir)
    y, uv = _fixed_batch(prepared)
    keras.utils.set_random_seed(config.seed)  # the trainer's initial weights
    untrained = build_colorizer(None, backbone="compact", global_context=True, output_batchnorm=False)
    # Training-mode batch norm, as in test_thirty_steps_lower_the_loss (per-step losses of random crops
    # vary tenfold between crops; one fixed batch does not).
    saved = result.model.get_weights()
    assert float(colorize_loss(uv, result.model(y, training=True))) < float(colorize_loss(uv, untrained(y, training=True)))
    result.model.set_weights(saved)
    # The encoder learns too (it has no pretrained weights to keep).
    assert any("block1_conv1" in v.path for v in result.model.trainable_variables)
    y, _ = _fixed_batch(prepared)
    model, step, saved = restore_colorizer(workdir, "latest")
    assert step == 12 and saved["backbone"] == "compact" and saved["global_context"] is True
    assert saved["output_batchnorm"] is False
    np.testing.assert_array_equal(model(y, training=False), result.model(y, training=False))
    # The same folder cannot be resumed as a different network.
    with pytest.raises(ValueError, match="backbone"):
        train(dataclasses.replace(config, backbone="vgg16", iterations=14), workdir)


def _weights(model):
    return [v.numpy() for v in model.weights]


def test_restart_continues_from_the_saved_step(prepared, tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    first = train(_config(prepared, iterations=6, checkpoint_every=3), workdir)
    assert first.step == 6 and int(first.optimizer.iterations.numpy()) == 6

    # Same target: nothing to do, and the weights are the saved ones, not a fresh init.
    again = train(_config(prepared, iterations=6, checkpoint_every=3), workdir)
    assert again.start_step == 6 and again.losses == []
    for a, b in zip(_weights(again.model), _weights(first.model)):
        np.testing.assert_array_equal(a, b)

    # An interrupted run (Ctrl-C at step 8) saves its state on the way out ...
    real_check = callbacks.check_finite

    def interrupt_at_8(losses, step):
        real_check(losses, step)
        if step == 8:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks, "check_finite", interrupt_at_8)
    with pytest.raises(KeyboardInterrupt):
        train(_config(prepared, iterations=12, checkpoint_every=100), workdir)
    monkeypatch.setattr(callbacks, "check_finite", real_check)
    assert state_step(state_path(workdir)) == 8

    # ... and the restart carries on from there, optimiser state included.
    resumed = train(_config(prepared, iterations=10, checkpoint_every=100, learning_rate=5e-4), workdir)
    assert resumed.start_step == 8 and [s for s, _ in resumed.losses] == [9, 10]
    assert int(resumed.optimizer.iterations.numpy()) == 10
    # A learning rate given on restart is used, not the one stored in the checkpoint.
    assert float(resumed.optimizer.learning_rate.numpy()) == pytest.approx(5e-4)
    assert state_step(state_path(workdir)) == 10

    with pytest.raises(ValueError, match="freeze_backbone"):
        train(_config(prepared, iterations=12, freeze_backbone=False), workdir)


def test_non_finite_loss_stops_and_keeps_finite_checkpoints(prepared, tmp_path):
    workdir = str(tmp_path / "nan")
    # Adam's first step moves every weight by ~lr: 1e30 overflows float32 within a few steps.
    config = _config(prepared, iterations=20, learning_rate=1e30, checkpoint_every=1, max_to_keep=20)
    with pytest.raises(NonFiniteLossError, match=r"at step \d+") as info:
        train(config, workdir)
    bad_step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
    folder = state_path(workdir)
    if folder:  # whatever was saved before the NaN is usable, and is from before it
        assert state_step(folder) < bad_step
        model, _, _ = restore_colorizer(workdir, "latest")
        for v in model.weights:
            assert np.all(np.isfinite(np.asarray(v))), v.path
        with np.load(os.path.join(folder, "optimizer.npz")) as saved:
            for k in saved.files:
                if k != "names":
                    assert np.all(np.isfinite(saved[k])), k


def test_an_old_tensorflow_loop_workdir_gets_one_clear_sentence(prepared, tmp_path):
    old = tmp_path / "old"
    os.makedirs(old / "ckpt")
    (old / "config.json").write_text("{}")
    for call in (lambda: train(_config(prepared, iterations=1), str(old)), lambda: restore_colorizer(str(old))):
        with pytest.raises(ValueError, match=r"earlier TensorFlow-loop trainer \(ckpt/\).*new --workdir"):
            call()
    assert sorted(os.listdir(old)) == ["ckpt", "config.json"]  # nothing written


def test_bad_settings_are_refused(prepared, tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        train(_config(prepared, iterations=1, size=36), str(tmp_path))
    with pytest.raises(ValueError, match="no such folder"):
        train(_config(str(tmp_path / "nowhere"), iterations=1), str(tmp_path))
