"""SRGAN training: MSE steps lower the loss, phase 2 updates G and D, a crash resumes at the right step and phase."""
import json
import os

import numpy as np
import pytest

from srgan.config import SRGANConfig, phase_of
from srgan.restore import restore_generator
from srgan.trainer import train


@pytest.fixture(scope="module")
def sr_data(make_prepared):
    return make_prepared(8, 2)

def _config(data_dir, **kw):
    # The trainer's machinery on the paper's SRResNet (batch norm, sub-pixel upsampling); the default
    # residual design is tested in tests/test_sr_design.py.
    base = dict(data_dir=data_dir, arch="srresnet", num_blocks=1, filters=8, hr_size=32, batch_size=4, init_steps=20, steps=20,
                decay_every=10, vgg_layer="conv2_2", vgg_weights="none", eval_every=1000, sample_every=1000,
                checkpoint_every=5, log_every=1000, eval_images=2, learning_rate=1e-3)
    base.update(kw)
    return SRGANConfig(**base)


def _ckpt_value(workdir, name):
    """The saved state's `step`, or an optimiser's update count (`"<optimiser>/_iterations"`)."""
    from common.state import state_path, state_step

    folder = state_path(workdir)
    if name == "step":
        return state_step(folder)
    with np.load(os.path.join(folder, name.split("/")[0] + ".npz")) as saved:
        names = list(saved["names"])
        return int(saved[f"v{[n.endswith('/iteration') for n in names].index(True):04d}"])


def test_mse_steps_lower_the_loss(tmp_path, sr_data):
    work = tmp_path / "run"
    result = train(_config(sr_data, eval_every=20, sample_every=10), str(work))
    mse = [h["mse"] for h in result.history]
    assert result.step == 20 and [h["phase"] for h in result.history] == [1] * 20
    assert np.mean(mse[-5:]) < 0.7 * np.mean(mse[:5])
    # Phase 1's generator is kept and exported on its own (PSNR-oriented model).
    assert os.path.isfile(work / "export_mse" / "saved_model.pb")
    assert json.load(open(work / "export_mse" / "config.json"))["phase"] == "mse"
    assert os.listdir(work / "ckpt_mse")
    assert json.load(open(work / "config.json"))["hr_size"] == 32
    with pytest.raises(ValueError, match="not past phase 1"):
        restore_generator(str(work), phase="gan")
    # Dev PSNR/SSIM, samples (bicubic | SR | HR) and the history file.
    assert 0 < result.dev["psnr"] < 60 and -1 <= result.dev["ssim"] <= 1
    from data.io import read_image

    assert sorted(os.listdir(work / "samples")) == ["step_00000010.png", "step_00000020.png"]
    assert read_image(str(work / "samples" / "step_00000020.png")).shape == (32, 96, 3)
    lines = [json.loads(line) for line in open(work / "history.jsonl")]
    assert any("dev_psnr" in line for line in lines) and lines[-1]["step"] == 20


def test_steps_through_the_consistency_layer_lower_the_loss(tmp_path, sr_data):
    """`train_consistency`: the loss sees the generator's output after the pipeline's consistency step, and
    gradients reach the generator through it; dev scores what that step gives."""
    config = _config(sr_data, degradation="mixed", block_linear=True, train_consistency=True,
                     eval_every=20)
    result = train(config, str(tmp_path / "run"))
    mse = [h["mse"] for h in result.history]
    assert result.step == 20 and np.all(np.isfinite(mse))
    assert np.mean(mse[-5:]) < 0.7 * np.mean(mse[:5])
    assert 0 < result.dev["psnr"] < 60
    assert json.load(open(tmp_path / "run" / "config.json"))["train_consistency"] is True


@pytest.mark.parametrize("precision", ["none", "mixed_float16"])
def test_phase_two_step_updates_g_and_d(sr_data, precision):
    import keras

    from data.examples import load_images
    from data.splits import split_files
    from data.sr_examples import degrade, random_hr_crops
    from srgan.fit import SRGANFit

    keras.utils.set_random_seed(0)
    hr, block = random_hr_crops(np.random.default_rng(0), *load_images(split_files(sr_data, "train")), 4, 32, "bicubic")
    lr = degrade(hr, block, 4)
    if precision != "none":
        keras.mixed_precision.set_global_policy(precision)
    try:
        m = SRGANFit(_config(sr_data, mixed_precision=precision))
        m.compile_for_fit(False)
        m.set_phase(2)
        g0 = [v.numpy() for v in m.generator.trainable_variables]
        d0 = [v.numpy() for v in m.discriminator.trainable_variables]
        # float16: dynamic loss scaling may skip a first step that overflows
        # (and halve the scale); the next one must then go through.
        for _ in range(1 if precision == "none" else 2):
            out = m.train_on_batch(hr, block, return_dict=True)
        out = {k: np.asarray(v).reshape(-1)[0] for k, v in out.items()}  # fit's logs: one value each, as [1]
        sr = m.generator(lr, training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {"d", "g", "content", "adversarial", "mse"} == set(out)
    assert all(np.isfinite(float(v)) for v in out.values())
    # g = content + 1e-3 * adversarial (pixel weight 0 by default).
    assert abs(float(out["g"]) - float(out["content"]) - 1e-3 * float(out["adversarial"])) < 1e-3 * float(out["g"])
    # The output layer stays float32 under mixed precision.
    assert sr.dtype == "float32" and m.generator.get_layer("conv_in").compute_dtype == (
        "float16" if precision == "mixed_float16" else "float32")
    # Both networks moved (with float16, only if loss scaling got the gradients through).
    g_moved = [not np.allclose(a, b.numpy()) for a, b in zip(g0, m.generator.trainable_variables)]
    d_moved = [not np.allclose(a, b.numpy()) for a, b in zip(d0, m.discriminator.trainable_variables)]
    assert sum(g_moved) > len(g_moved) // 2 and sum(d_moved) > len(d_moved) // 2
    assert int(m.d_opt.iterations) >= 1 and int(m.g_opt.iterations) >= 1 and int(m.g_init_opt.iterations) == 0
    if precision == "none":
        assert int(m.d_opt.iterations) == 1 and int(m.g_opt.iterations) == 1


@pytest.mark.parametrize("arch", ["srresnet", "residual"])
def test_crash_then_resume_keeps_step_phase_and_optimisers(tmp_path, sr_data, monkeypatch, arch):
    from common import callbacks as trainer  # where the trainers' NaN check runs

    work = str(tmp_path / "run")
    config = _config(sr_data, init_steps=3, steps=8, checkpoint_every=2, arch=arch)
    real_check = trainer.check_finite

    def crash_at_6(values, step):
        if step == 6:
            raise RuntimeError("simulated crash")
        real_check(values, step)

    monkeypatch.setattr(trainer, "check_finite", crash_at_6)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, work)
    # States saved at 2, 3 (end of phase 1) and 4; step 5 was lost with the crash.
    assert _ckpt_value(work, "step") == 4
    mse_export_time = os.path.getmtime(os.path.join(work, "export_mse", "saved_model.pb"))
    _, _, mse_step = restore_generator(work, phase="mse")
    assert mse_step == 3
    monkeypatch.setattr(trainer, "check_finite", real_check)

    resumed = train(config, work)
    assert [h["step"] for h in resumed.history] == [5, 6, 7, 8]
    assert all(h["phase"] == 2 and "d" in h for h in resumed.history)
    # Phase 1 was not redone, and the optimisers' counters carried on.
    assert os.path.getmtime(os.path.join(work, "export_mse", "saved_model.pb")) == mse_export_time
    assert _ckpt_value(work, "step") == 8
    assert _ckpt_value(work, "g_init_opt/_iterations") == 3
    assert _ckpt_value(work, "d_opt/_iterations") == 5 and _ckpt_value(work, "g_opt/_iterations") == 5
    assert json.load(open(os.path.join(work, "export", "config.json")))["phase"] == "gan"
    # The generator of the last 3 saves (2, 3, 4, then 6 and 8) is kept as a snapshot, and exports from one.
    assert sorted(os.listdir(os.path.join(work, "weights"))) == [f"step_{s:07d}.weights.h5" for s in (4, 6, 8)]
    assert restore_generator(work, os.path.join(work, "weights", "step_0000006.weights.h5"))[2] == 6
    g_mse, _, _ = restore_generator(work, phase="mse")
    g_gan, _, _ = restore_generator(work, phase="gan")
    assert any(not np.allclose(a, b) for a, b in zip(g_mse.get_weights(), g_gan.get_weights()))
    # The checkpoint fixes the architecture: other model settings are refused up front.
    with pytest.raises(ValueError, match="filters: 8 -> 16"):
        train(_config(sr_data, init_steps=3, steps=10, filters=16, arch=arch), work)


def test_learning_rate_schedule_and_validation(sr_data):
    from srgan.fit import SRGANFit

    c = _config(sr_data, init_steps=10, steps=100, decay_every=20, learning_rate=1e-4)
    m = SRGANFit(c)
    # The logged rate is the optimisers' own schedule: phase 1 the base rate; phase 2 x0.1 every 20 of its steps.
    # Float32 schedule arithmetic: a relative 1e-6 (a few ulps) is the tolerance.
    for step, rate in ((5, 1e-4), (29, 1e-4), (30, 1e-5), (55, 1e-6)):
        assert m.learning_rate_at(step) == pytest.approx(rate, rel=1e-6)
    for opt in (m.g_opt, m.d_opt):
        opt.iterations.assign(45)  # phase-2 update 45 is global step 55's
        assert float(opt.learning_rate) == pytest.approx(m.learning_rate_at(55), rel=1e-6)
    assert float(m.g_init_opt.learning_rate) == pytest.approx(m.learning_rate_at(5), rel=1e-6)
    assert phase_of(c, 9) == 1 and phase_of(c, 10) == 2
    with pytest.raises(ValueError, match="multiple of scale"):
        train(_config(sr_data, hr_size=30), "/tmp/unused")
    with pytest.raises(ValueError, match="power of 2"):
        train(_config(sr_data, scale=3, hr_size=36), "/tmp/unused")


def test_non_finite_loss_stops_with_step(tmp_path, sr_data):
    from common.training import NonFiniteLossError

    with pytest.raises(NonFiniteLossError, match="at step"):
        train(_config(sr_data, learning_rate=1e30, steps=10, init_steps=10), str(tmp_path / "nan"))


def test_empty_data_dir_fails_fast(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no usable images"):
        train(_config(str(tmp_path)), str(tmp_path / "w"))


def test_init_generator_starts_phase_two_from_an_export(tmp_path, sr_data):
    """--init_generator: a new run's generator starts as the exported one (its steps counted in the new export's);
    a mismatched export is refused."""
    import tensorflow as tf

    from srgan.model import build_generator
    from srgan.saved_model import export_saved_model
    from srgan.restore import load_generator_weights

    source = build_generator(1, 8, 4, "srresnet")
    lr = np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32)
    before = source(lr, training=False).numpy()
    export = export_saved_model(source, str(tmp_path / "export"),
                                {"num_blocks": 1, "filters": 8, "arch": "srresnet"}, steps_trained=5)

    fresh = build_generator(1, 8, 4, "srresnet")
    assert not np.allclose(fresh(lr, training=False).numpy(), before)
    load_generator_weights(fresh, export)
    np.testing.assert_allclose(fresh(lr, training=False).numpy(), before, atol=1e-6)
    with pytest.raises(ValueError, match="does not fit"):
        load_generator_weights(build_generator(2, 8, 4, "srresnet"), export)
    with pytest.raises(ValueError, match="num_blocks 1 .this run: 3"):
        train(_config(sr_data, num_blocks=3, init_steps=0, steps=1, init_generator=export), str(tmp_path / "r3"))
    with pytest.raises(FileNotFoundError, match="no SavedModel variables"):
        load_generator_weights(fresh, str(tmp_path))

    # Phase 2 from step 0 (init_steps 0): the first GAN step moves away from the export's weights.
    work = tmp_path / "run"
    result = train(_config(sr_data, init_steps=0, steps=1, init_generator=export), str(work))
    assert result.step == 1 and result.history[0]["phase"] == 2
    trained, _, _ = restore_generator(str(work))
    after = trained(lr, training=False).numpy()
    assert 0 < np.abs(after - before).max() < 0.5
    meta = json.load(open(work / "export" / "config.json"))
    # The export counts every update behind its weights: this run's one and the initial generator's 5.
    assert (meta["phase"], meta["steps_trained"]) == ("gan", 6)
    assert tf.saved_model.load(str(work / "export")) is not None


def test_inference_and_training_do_not_climb_layers():
    """Restoring a run loads no trainer; the trainer loads nothing of the pipeline (issue 16)."""
    import subprocess
    import sys

    code = ("import sys, srgan.restore, srgan.export; assert 'srgan.trainer' not in sys.modules, 'restore'; "
            "import srgan.trainer; bad = sorted(m for m in sys.modules if m.split('.')[0] == 'pipeline'); "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-500:]


def _check_backend_run(out, backend):
    assert out["backend"] == backend
    assert out["after_phase1"] < out["before"], out  # 4 MSE steps at 1e-3: about 10 % lower
    assert out["phases"] == [1] * 4 + [2] * 4 and out["mse_step"] == 4
    assert out["steps"] == [5, 6, 8]
    assert out["max_abs_diff_resumed"] < 1e-5, out
    assert out["samples"] == ["step_00000004.png", "step_00000008.png"]
    assert {"psnr", "psnr_bicubic"} <= set(out["dev"])


def test_trains_and_resumes_exactly_under_tensorflow(tmp_path, sr_data):
    """`tests/backend_check.py`'s SRGAN run in this process (TensorFlow backend): phase 1 lowers the pixel MSE
    of a fixed batch, and a run stopped in phase 2 and resumed ends with the uninterrupted run's generator
    (tolerance as under JAX below)."""
    from backend_check import srgan_check

    _check_backend_run(srgan_check(sr_data, str(tmp_path)), "tensorflow")


def test_trains_and_resumes_exactly_under_jax(tmp_path, sr_data):
    """The same trainer under `KERAS_BACKEND=jax` (JAX's own train step): phase 1 lowers the pixel MSE of a
    fixed batch, the phases follow the step, and a run stopped in phase 2 and resumed ends with the
    uninterrupted run's generator. Tolerance 1e-5: the resumed run compiles its steps afresh (XLA may
    order float32 sums differently)."""
    pytest.importorskip("jax")
    from backend_check import run_under_jax

    _check_backend_run(run_under_jax("srgan", sr_data, str(tmp_path)), "jax")


def test_sr_pairs_lr_by_hand(real_images):
    """`data.sr_examples.degrade` (Keras ops, in the train step): each crop's LR is tf.image.resize's antialiased
    bicubic, or its 4x4 block means, rounded to 8-bit levels."""
    import tensorflow as tf

    from data.examples import load_images
    from data.sr_examples import degrade, random_hr_crops

    images, sizes = load_images(real_images[:3])
    hr, block = random_hr_crops(np.random.default_rng(1), images, sizes, 6, 32, "mixed")
    assert hr.shape == (6, 32, 32, 3) and set(np.unique(block)) <= {0.0, 1.0}
    lr = np.asarray(degrade(hr, block, 4))
    for i in range(6):
        if block[i]:
            ref = hr[i].astype(np.float64).reshape(8, 4, 8, 4, 3).mean(axis=(1, 3))
        else:
            ref = tf.image.resize(hr[i][None], (8, 8), "bicubic", antialias=True)[0].numpy()
        levels = np.clip(ref, 0, 1) * 255
        # The same TensorFlow op, or a mean of 16 numbers: the step's float32 arithmetic differs from this by
        # under 1e-4 level, so the 8-bit level is the same except where the unrounded value is that close to a
        # half level (a block of 8-bit values can mean exactly k + 0.5): there either neighbour is right.
        off = np.abs(lr[i] * 255 - np.round(levels))
        tie = np.abs(levels - np.floor(levels) - 0.5) < 1e-3
        assert off[~tie].max() < 1e-3 and (off[tie] < 1 + 1e-3).all()


def test_small_images_sit_centred_in_their_crops():
    """An image smaller than hr_size is padded with black sky around it, in training and dev crops alike."""
    from data.sr_examples import central_hr_crops, random_hr_crops

    images = np.zeros((2, 40, 40, 3), np.float32)
    images[0, :10, :20] = 0.5  # image 0 is 10 x 20, at the top left of the stack
    images[1] = np.random.default_rng(0).random((40, 40, 3))  # image 1 fills 40 x 40
    sizes = np.array([[10, 20], [40, 40]])
    hr, _ = central_hr_crops(images, sizes, 32, "bicubic")
    # (32 - 10) // 2 = 11 rows and (32 - 20) // 2 = 6 columns of sky before it, the rest after.
    lit = np.argwhere(hr[0, ..., 0] > 0)
    assert lit.min(axis=0).tolist() == [11, 6] and lit.max(axis=0).tolist() == [20, 25]
    np.testing.assert_array_equal(hr[1], images[1, 4:36, 4:36])  # a big one: its central 32 px
    crops, _ = random_hr_crops(np.random.default_rng(3), images[:1], sizes[:1], 8, 32, "bicubic")
    for crop in crops:  # flipped and rotated, but always the same 200 lit pixels around the middle
        lit = np.argwhere(crop[..., 0] > 0)
        assert len(lit) == 200 and np.allclose(lit.mean(axis=0), 15.5)


def test_training_needs_no_tensorflow():
    """What a GPU machine with JAX but no TensorFlow runs: no module that `srgan.train` loads imports TensorFlow
    at import time (checked on the source; the SavedModel writer, which does, is imported only to export)."""
    from test_colorize_cli import _module_level_imports_of

    assert "tensorflow" not in _module_level_imports_of("srgan.train", "srgan.trainer", "srgan.fit", "data.sr_examples")
    assert "tensorflow" in _module_level_imports_of("srgan.saved_model")  # the check can fail


def test_consistency_layer_cannot_hide_a_dark_generator(sr_data):
    """A generator output at half the brightness: the consistency layer puts the light back (its MSE is small),
    but the loss adds how far the raw output is from consistent, so training cannot drift the network's own
    output where the layer hides it."""
    from keras import ops

    from data.sr_examples import consistent, degrade
    from srgan.fit import SRGANFit

    model = SRGANFit(_config(sr_data, arch="residual", train_consistency=True, block_linear=True))
    hr = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    block = np.array([1.0, 0.0], np.float32)
    lr = degrade(hr, block, 4, block_linear=True)
    dark = 0.5 * hr
    raw_mse = float(np.mean((hr - dark) ** 2))
    fixed_mse = float(np.mean((hr - ops.convert_to_numpy(consistent(dark, lr, block, 4, True))) ** 2))
    again = ops.convert_to_numpy(degrade(dark, block, 4, block_linear=True, quantize=False))
    inconsistency = float(np.mean((ops.convert_to_numpy(lr) - again) ** 2))
    loss = float(ops.convert_to_numpy(model._pixel_loss(hr, dark, lr, (hr, block))))
    assert fixed_mse < 0.5 * raw_mse  # what the layer alone would let through
    assert inconsistency > fixed_mse  # the darkness is seen again
    assert loss == pytest.approx(fixed_mse + inconsistency, rel=1e-5)
