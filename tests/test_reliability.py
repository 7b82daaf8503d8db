"""Reliability: SIGKILL at a random step and resume, killed pipeline runs, unusable outputs, the corpus in data.prepare.

Training and pipeline kills run the real command lines in subprocesses (absl
flags are process-global). The kill step is random; its seed is printed so a
failure can be replayed with KILL_SEED=<seed>.
"""
import errno
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = int(os.environ.get("KILL_SEED", random.SystemRandom().randrange(10**6)))


def _hashes(folder, skip_dot=False):
    out = {}
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if skip_dot and name.startswith("."):
            continue
        if os.path.isfile(p) and not os.path.islink(p) and os.access(p, os.R_OK):
            out[name] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def _popen(module, args, log_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def _wait_for(proc, log_path, predicate, what, timeout=300):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"exited before {what}:\n" + open(log_path).read()[-3000:]
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _run(module, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_data(make_prepared):
    return make_prepared(4, 1)

def _state_step(workdir):
    """(step, folder) of a `common.state` run folder's saved state; (0, None) before the first."""
    from common.state import state_path, state_step

    folder = state_path(str(workdir))
    return (state_step(folder), folder) if folder else (0, None)


def _assert_state_complete(folder, models, optimizers):
    """Every file of the state reads back and holds finite numbers; returns each optimiser's iteration count."""
    import h5py

    for name in models:
        with h5py.File(os.path.join(folder, f"{name}.weights.h5"), "r") as f:
            arrays = []
            f.visititems(lambda k, v: arrays.append(v[()]) if isinstance(v, h5py.Dataset) else None)
        assert arrays and all(np.all(np.isfinite(a)) for a in arrays), name
    iterations = {}
    for name in optimizers:
        with np.load(os.path.join(folder, f"{name}.npz")) as saved:
            names = list(saved["names"])
            for k in saved.files:
                if k != "names":
                    assert np.all(np.isfinite(saved[k])), (name, k)
            iterations[name] = int(saved[f"v{[n.endswith('/iteration') for n in names].index(True):04d}"])
    return iterations


@pytest.mark.parametrize("which", ["srgan", "colorize"])
def test_sigkill_at_a_random_step_then_resume(tmp_path, tiny_data, which):
    kill_after = random.Random(f"{SEED}-{which}").randint(3, 8)
    print(f"KILL_SEED={SEED}: SIGKILL {which}.train once step {kill_after} is checkpointed")
    work = tmp_path / "run"
    latest_step = lambda: _state_step(work)  # noqa: E731
    if which == "srgan":
        module = "srgan.train"
        # The paper's SRResNet: its batch-norm statistics are state outside the optimisers, so every named
        # object has checkpoint keys of its own (the residual default's variables are all reached, and
        # named, through the optimisers' slots).
        common = [f"--data_dir={tiny_data}", f"--workdir={work}", "--arch=srresnet", "--num_blocks=1", "--filters=8",
                  "--hr_size=32",
                  "--batch_size=2", "--init_steps=4", "--vgg_layer=conv2_2", "--vgg_weights=none",
                  "--eval_every=1000", "--sample_every=1000", "--checkpoint_every=1", "--log_every=1",
                  "--eval_images=1"]
        steps_flag, models, optimizers = "--steps", ["generator", "discriminator"], ["g_init_opt", "g_opt", "d_opt"]
    else:
        module = "colorize.train"
        common = [f"--data_dir={tiny_data}", f"--workdir={work}", "--batch_size=2", "--size=32",
                  "--backbone_weights=none", "--checkpoint_every=1", "--log_every=1", "--eval_every=1000",
                  "--sample_every=1000", "--noexport", "--notensorboard"]
        steps_flag, models, optimizers = "--iterations", ["model"], ["optimizer"]

    log1 = tmp_path / "first.log"
    proc = _popen(module, [*common, f"{steps_flag}=100000"], log1)
    try:
        _wait_for(proc, log1, lambda: latest_step()[0] >= kill_after, f"checkpoint {kill_after}")
        # Kill at once, possibly in the middle of writing the next checkpoint.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at, latest = latest_step()
    assert killed_at >= kill_after
    iterations = _assert_state_complete(latest, models, optimizers)
    if which == "srgan":
        assert iterations == {"g_init_opt": min(killed_at, 4), "g_opt": max(killed_at - 4, 0),
                              "d_opt": max(killed_at - 4, 0)}
    else:
        assert iterations == {"optimizer": killed_at}

    second = _run(module, *common, f"{steps_flag}={killed_at + 2}")
    assert second.returncode == 0, second.stderr[-3000:]
    assert re.search(rf"resumed from \S+state at step {killed_at}\b", second.stderr), second.stderr[-3000:]
    if which == "colorize":
        assert f"optimizer iterations {killed_at})" in second.stderr
    # It went on from there, never back to step 1.
    assert not re.search(r"\bstep 1 (phase|loss)", second.stderr)
    final, latest = latest_step()
    assert final == killed_at + 2
    iterations = _assert_state_complete(latest, models, optimizers)
    if which == "colorize":
        assert iterations == {"optimizer": killed_at + 2}


@pytest.fixture()
def frames(tmp_path, real_images):
    from data.io import read_image
    from data.writers import write_png

    d = tmp_path / "in"
    d.mkdir()
    for i, p in enumerate(real_images[:6]):
        write_png(str(d / f"frame{i}.png"), read_image(p).mean(axis=-1, keepdims=True))
    return d


def test_killed_pipeline_rerun_with_skip_existing_equals_uninterrupted(tmp_path, frames, tiny_exports):
    models = [f"--colorize_model={tiny_exports['colorize']}", f"--srgan_model={tiny_exports['srgan']}",
              "--batch_size=1"]
    whole = _run("pipeline.run", f"--input={frames}", f"--output={tmp_path / 'whole'}", *models)
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = _hashes(tmp_path / "whole", skip_dot=True)
    assert len(expected) == 6

    out = tmp_path / "out"
    wait_for = random.Random(SEED).randint(1, 4)
    print(f"KILL_SEED={SEED}: SIGKILL pipeline.run after {wait_for} output(s)")
    log = tmp_path / "run.log"
    proc = _popen("pipeline.run", [f"--input={frames}", f"--output={out}", *models], log)
    try:
        done = lambda: os.path.isdir(out) and len([n for n in os.listdir(out) if not n.startswith(".")]) >= wait_for
        _wait_for(proc, log, done, f"{wait_for} outputs")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    partial = _hashes(out, skip_dot=True)
    assert 1 <= len(partial) < 6 or proc.returncode == 0
    # Whatever was there after the kill is complete: each output equals the uninterrupted one.
    assert all(expected[name] == digest for name, digest in partial.items())

    rerun = _run("pipeline.run", f"--input={frames}", f"--output={out}", "--skip_existing", *models)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(partial)} skipped" in rerun.stdout + rerun.stderr
    assert _hashes(out, skip_dot=True) == expected
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]  # no temporary file left behind


def test_unusable_output_folder_is_refused_before_work(tmp_path, frames, tiny_exports, monkeypatch):
    from pipeline.runner import OutputError, RunConfig, run

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    config = RunConfig(input=str(frames), output=str(blocker / "out"), colorize_model=tiny_exports["colorize"],
                       srgan_model=tiny_exports["srgan"], progress=False)
    with pytest.raises(OutputError, match=r"cannot write to output folder .*a_file/out: Not a directory"):
        run(config)
    res = _run("pipeline.run", f"--input={frames}", f"--output={blocker}", f"--colorize_model={tiny_exports['colorize']}",
               f"--srgan_model={tiny_exports['srgan']}")
    assert res.returncode == 2 and "cannot write to output folder" in res.stderr and "Traceback" not in res.stderr

    # A read-only file system (root ignores permission bits, so the error is injected).
    import pipeline.runner as runner

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(runner.tempfile, "mkstemp", read_only)
    with pytest.raises(OutputError, match="Read-only file system"):
        run(RunConfig(input=str(frames), output=str(tmp_path / "ro"), colorize_model=tiny_exports["colorize"],
                      srgan_model=tiny_exports["srgan"], progress=False))


def test_disk_full_stops_the_run_and_leaves_no_partial_file(tmp_path, frames, tiny_exports, monkeypatch):
    import common.files as files
    from pipeline.runner import RunConfig, run

    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    out = tmp_path / "out"
    messages = []
    result = run(RunConfig(input=str(frames), output=str(out), colorize_model=tiny_exports["colorize"],
                           srgan_model=tiny_exports["srgan"], batch_size=1, progress=False), log=messages.append)
    assert len(result.written) == 2
    reasons = [r for _, r in result.failed]
    assert "No space left on device" in reasons[0] and len(reasons) == 4
    assert all(r.startswith("not processed") for r in reasons[1:])
    assert any(m.startswith("error: stopped") and "--skip_existing" in m for m in messages)
    # No temp file left; the manifest records exactly the outputs written.
    assert sorted(os.listdir(out)) == sorted([".colourise-manifest.jsonl"] + [os.path.basename(p) for p in result.written])




def test_prepare_over_the_corpus(tmp_path, corpus, real_images):
    from data.preparation import PrepareConfig, prepare

    folder, expected = corpus
    shutil.copy(real_images[2], folder / "good.png")
    expected["good.png"] = "ok"
    before = _hashes(folder)
    manifest = prepare(PrepareConfig(src=str(folder), out=str(tmp_path / "tiles"), tile_width=64, tile_height=64,
                                     min_policy="keep"), progress=False)
    records = {r["source"]: r for r in manifest["sources"]}
    for name, outcome in expected.items():
        if name == "folder.png":
            continue  # a folder is searched (recursively), not read as an image
        record = records[name]
        if outcome in ("ok", "at least 2x2"):
            assert record["status"] == "ok" and record["tiles"] >= 1, record
        else:
            assert record["status"] == "error" and outcome in record["reason"], record
    assert _hashes(folder) == before
    for tile in manifest["tiles"]:
        assert os.path.isfile(tmp_path / "tiles" / tile["file"])

    res = _run("data.prepare", f"--src={folder}", f"--out={tmp_path / 'cli'}", "--tile_width=64", "--tile_height=64",
               "--min_policy=keep")
    bad = sum(1 for n, o in expected.items() if o not in ("ok", "at least 2x2") and n != "folder.png")
    assert res.returncode == 1 and f"({bad} error" in res.stdout, res.stdout + res.stderr[-2000:]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("which", ["colorize", "srgan"])
def test_training_on_unusable_or_partly_bad_data(tmp_path, real_images, which):
    """No usable image: a fast, clear error. Some bad ones: skipped with a warning, training goes on."""
    from colorize.config import ColorizeConfig
    from colorize.trainer import train as train_colorize
    from srgan.config import SRGANConfig
    from srgan.trainer import train as train_srgan

    def run(data_dir, steps):
        if which == "colorize":
            return train_colorize(ColorizeConfig(data_dir=str(data_dir), iterations=steps, batch_size=2, size=32,
                                                 backbone_weights="none", export=False, tensorboard=False,
                                                 sample_every=1, eval_every=1000), str(tmp_path / f"w{steps}"))
        return train_srgan(SRGANConfig(data_dir=str(data_dir), num_blocks=1, filters=8, hr_size=32, batch_size=2,
                                       init_steps=steps, steps=steps, vgg_layer="conv2_2", vgg_weights="none",
                                       eval_every=1000, sample_every=1, log_every=1000), str(tmp_path / f"w{steps}"))

    bad = tmp_path / "bad"
    (bad / "train").mkdir(parents=True)
    (bad / "train" / "notes.png").write_text("not an image")
    (bad / "train" / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no usable images .*2 unusable file"):
        run(bad, 2)
    # Files that look right but do not decode get past the cheap check; training still says why it stops.
    png = open(real_images[0], "rb").read()
    for name in ("notes.png", "empty.png"):
        (bad / "train" / name).write_bytes(png[:200])
    with pytest.raises(ValueError, match="no training image could be decoded"):
        run(bad, 2)
    # One good image among them: the bad ones are skipped and training runs.
    shutil.copy(real_images[1], bad / "train" / "good.png")
    result = run(bad, 3)
    assert result.step == 3
