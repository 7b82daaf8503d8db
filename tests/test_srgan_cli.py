"""The command lines: `srgan.train` stopped by SIGTERM mid-phase-2 and resumed, then `srgan.export`.

Each runs in a subprocess, as a user runs it (absl flags are process-global).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--num_blocks=1", "--filters=8", "--hr_size=32", "--batch_size=2", "--init_steps=2",
        "--vgg_layer=conv2_2", "--vgg_weights=none", "--eval_every=1000", "--sample_every=1000",
        "--checkpoint_every=1000", "--log_every=1", "--eval_images=1"]


def _run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_train_sigterm_resume_and_export(tmp_path, real_images):
    import tensorflow as tf

    data = tmp_path / "data"
    for split, files in (("train", real_images[:4]), ("dev", real_images[4:5])):
        (data / split).mkdir(parents=True)
        for f in files:
            shutil.copy(f, data / split)
    work = tmp_path / "run"
    log_path = tmp_path / "train1.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "srgan.train", f"--data_dir={data}", f"--workdir={work}",
                                 "--steps=1000000", *TINY], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 240
            while not re.search(r"step 4 phase 2", log_path.read_text()):
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.time() < deadline, "training never reached step 4"
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rc == 130, log_path.read_text()[-3000:]
    # Only the end of phase 1 (step 2) was a scheduled checkpoint: the rest is SIGTERM's save.
    from common.state import state_path, state_step

    stopped = state_step(state_path(str(work)))
    assert stopped >= 4

    second = _run("srgan.train", f"--data_dir={data}", f"--workdir={work}", f"--steps={stopped + 1}", *TINY)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"at step {stopped} (phase 2)" in second.stderr
    assert f"step {stopped + 1} phase 2" in second.stderr and "step 1 phase 1" not in second.stderr

    out = tmp_path / "export"
    exported = _run("srgan.export", f"--workdir={work}", f"--output={out}", "--phase=mse")
    assert exported.returncode == 0, exported.stderr[-3000:]
    meta = json.load(open(out / "config.json"))
    assert (meta["model"], meta["phase"], meta["steps_trained"], meta["scale"]) == ("srgan", "mse", 2, 4)
    sr = tf.saved_model.load(str(out)).signatures["serving_default"](lr=tf.random.uniform((1, 10, 12, 3)))["sr"]
    assert sr.shape == (1, 40, 48, 3) and 0 <= float(np.min(sr)) and float(np.max(sr)) <= 1

    again = _run("srgan.export", f"--workdir={work}", f"--output={out}", "--phase=gan")
    assert again.returncode == 1 and "not empty" in again.stderr
    assert json.load(open(out / "config.json"))["phase"] == "mse"
