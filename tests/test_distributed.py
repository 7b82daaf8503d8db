"""tf.distribute with the `model.fit` trainers: a mirrored run equals a single-device run; a two-worker run on
loopback completes and checkpoints once.

Both need fresh processes: the CPU can be split into logical devices, and a
multi-worker cluster joined, only before TensorFlow starts.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def train_only(make_prepared):
    return make_prepared(6)

def _env(**extra):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


@pytest.mark.parametrize("which", ["colorize", "srgan"])
def test_mirrored_on_two_cpu_devices_equals_one_device(tmp_path, train_only, which):
    """4 steps (global batch 4 = 2 replicas x 2) give the weights one device gets with batch 4.

    Tolerances: per-step losses to 1e-4 relative; trainable weights to 1e-4
    absolute and batch-norm moving statistics to 1e-3 relative (float32
    reduction order differs: one sum across replicas against one over the
    batch). Phase 2 of the SRGAN (D and G steps) is included.
    """
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "distributed_check.py"), which, train_only,
                          str(tmp_path)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    np.testing.assert_allclose(out["losses_mirrored"], out["losses_default"], rtol=1e-4)
    assert len(out["losses_default"]) == 4
    assert out["max_abs_diff_trainable"] < 1e-4, out
    assert out["max_rel_diff_moving_stats"] < 1e-3, out


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_on_loopback_train_and_checkpoint_once(tmp_path, train_only):
    work = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    args = [sys.executable, "-m", "srgan.train", f"--data_dir={train_only}", f"--workdir={work}", "--num_blocks=1",
            "--filters=8", "--hr_size=32", "--batch_size=4", "--init_steps=2", "--steps=3", "--vgg_layer=conv2_2",
            "--vgg_weights=none", "--eval_every=1000", "--sample_every=1000", "--checkpoint_every=1",
            "--log_every=1", "--strategy=multi_worker"]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(tmp_path / f"worker{index}.log", "w")
        procs.append(subprocess.Popen(args, cwd=ROOT, env=_env(TF_CONFIG=tf_config), stdout=log,
                                      stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = [open(tmp_path / f"worker{i}.log").read() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    assert all("step 3 phase 2" in log for log in logs)
    # The chief (worker 0) wrote the run; worker 1 nothing.
    from common.state import state_path, state_step

    latest = state_path(str(work))
    assert latest and state_step(latest) == 3
    assert sorted(os.listdir(work)) == sorted(n for n in os.listdir(work) if not n.startswith(".scratch"))
    assert (work / "export" / "saved_model.pb").is_file() and (work / "config.json").is_file()
    with np.load(os.path.join(latest, "g_opt.npz")) as saved:  # one phase-2 update
        names = list(saved["names"])
        assert int(saved[f"v{[n.endswith('/iteration') for n in names].index(True):04d}"]) == 1
    assert json.loads((work / "config.json").read_text())["strategy"] == "multi_worker"


def test_bad_strategy_settings_are_refused(train_only, tmp_path):
    from common.distribute import check_batch, make_strategy
    from srgan.config import SRGANConfig, validate

    with pytest.raises(ValueError, match="unknown strategy"):
        validate(SRGANConfig(data_dir=train_only, strategy="tpu"))
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("tpu")

    class TwoReplicas:
        num_replicas_in_sync = 2

    with pytest.raises(ValueError, match="does not split evenly across 2 replicas"):
        check_batch(TwoReplicas(), 5)
    os.environ["TF_CONFIG"] = "{not json"
    try:
        with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
            make_strategy("multi_worker")
    finally:
        del os.environ["TF_CONFIG"]
