"""SRGAN training: MSE steps lower the loss, phase 2 updates G and D, resume keeps step and phase."""
import json
import os
import shutil

import numpy as np
import pytest

from srgan.trainer import SRGANConfig, learning_rate_at, restore_generator, train


@pytest.fixture()
def sr_data(tmp_path, real_images):
    d = tmp_path / "data"
    for split, files in (("train", real_images[:8]), ("dev", real_images[8:])):
        (d / split).mkdir(parents=True)
        for f in files:
            shutil.copy(f, d / split)
    return str(d)


def _config(data_dir, **kw):
    base = dict(data_dir=data_dir, num_blocks=1, filters=8, hr_size=32, batch_size=4, init_steps=20, steps=20,
                decay_every=10, vgg_layer="conv2_2", vgg_weights="none", eval_every=1000, sample_every=1000,
                checkpoint_every=5, log_every=1000, eval_images=2, learning_rate=1e-3)
    base.update(kw)
    return SRGANConfig(**base)


def test_mse_steps_lower_the_loss(tmp_path, sr_data):
    result = train(_config(sr_data), str(tmp_path / "run"))
    mse = [h["mse"] for h in result.history]
    assert result.step == 20 and all(h["phase"] == 1 for h in result.history)
    assert np.mean(mse[-5:]) < 0.7 * np.mean(mse[:5])
    assert os.path.isfile(tmp_path / "run" / "export_mse" / "saved_model.pb")
    assert json.load(open(tmp_path / "run" / "config.json"))["hr_size"] == 32


def test_phase_two_updates_g_and_d_then_resume(tmp_path, sr_data):
    work = str(tmp_path / "run")
    first = train(_config(sr_data, init_steps=2, steps=4), work)
    assert [h["phase"] for h in first.history] == [1, 1, 2, 2]
    assert {"d", "g", "content", "adversarial"} <= set(first.history[-1])
    g1, _, step = restore_generator(work)
    assert step == 4
    # Continue to step 6: resumes at 4 in phase 2 (phase 1 is not redone), and
    # both networks move.
    from srgan.model import build_discriminator
    import tensorflow as tf

    d_before = build_discriminator(32)
    tf.train.Checkpoint(discriminator=d_before).restore(tf.train.latest_checkpoint(os.path.join(work, "ckpt"))).expect_partial()
    second = train(_config(sr_data, init_steps=2, steps=6), work)
    assert [h["step"] for h in second.history] == [5, 6] and all(h["phase"] == 2 for h in second.history)
    g2, _, step2 = restore_generator(work)
    d_after = build_discriminator(32)
    tf.train.Checkpoint(discriminator=d_after).restore(tf.train.latest_checkpoint(os.path.join(work, "ckpt"))).expect_partial()
    assert step2 == 6
    assert any(not np.allclose(a, b) for a, b in zip(g1.get_weights(), g2.get_weights()))
    assert any(not np.allclose(a, b) for a, b in zip(d_before.get_weights(), d_after.get_weights()))
    # The export says which phase its weights come from.
    assert json.load(open(os.path.join(work, "export", "config.json")))["phase"] == "gan"


def test_learning_rate_schedule_and_validation(sr_data):
    c = _config(sr_data, init_steps=10, steps=100, decay_every=20, learning_rate=1e-4)
    assert learning_rate_at(c, 5) == 1e-4 and learning_rate_at(c, 29) == 1e-4
    assert abs(learning_rate_at(c, 30) - 1e-5) < 1e-12 and abs(learning_rate_at(c, 55) - 1e-6) < 1e-13
    with pytest.raises(ValueError, match="multiple of scale"):
        train(_config(sr_data, hr_size=30), "/tmp/unused")


def test_non_finite_loss_stops_with_step(tmp_path, sr_data):
    from common.training import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="at step"):
        train(_config(sr_data, learning_rate=1e30, steps=10, init_steps=10), str(tmp_path / "nan"))


def test_empty_data_dir_fails_fast(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no usable images"):
        train(_config(str(tmp_path)), str(tmp_path / "w"))
