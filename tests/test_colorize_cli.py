"""`python -m colorize.train` and `python -m colorize.export` as a user runs them.

Run as subprocesses: both entry modules define absl flags (as do other entry
modules of the project), so they are not imported into the test process.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module_level_imports_of(*modules: str) -> set:
    """Top-level packages imported at import time by `modules` and, transitively, the project modules they
    import at module level (imports inside functions run later, only when called)."""
    import ast

    seen, found, todo = set(), set(), list(modules)
    while todo:
        name = todo.pop()
        path = os.path.join(ROOT, *name.split(".")) + ".py"
        if name in seen or not os.path.isfile(path):
            continue
        seen.add(name)
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in tree.body:  # module level only
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for n in names:
                found.add(n.split(".")[0])
                todo.append(n)
    return found


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_train_then_export_from_the_command_line(real_images, tmp_path):
    data = tmp_path / "prepared"
    for split, paths in (("train", real_images[:4]), ("dev", real_images[4:5])):
        os.makedirs(data / split)
        for p in paths:
            shutil.copy(p, data / split)
    run, final = tmp_path / "run", tmp_path / "final"
    proc = _run("colorize.train", f"--data_dir={data}", f"--workdir={run}", "--iterations=3", "--batch_size=2",
                "--size=32", "--backbone_weights=none", "--checkpoint_every=2", f"--export_dir={final}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["iterations"] == 3 and config["learning_rate"] == 1e-3 and config["epsilon"] == 1e-8
    meta = json.loads((final / "config.json").read_text())
    assert meta["model"] == "colorize" and meta["steps_trained"] == 3 and meta["trained"] is True
    assert (run / "export" / "saved_model.pb").is_file()

    # The export command will not replace a model unless told to.
    proc = _run("colorize.export", f"--workdir={run}", f"--output={final}", "--checkpoint=2")
    assert proc.returncode != 0 and "not empty" in proc.stderr
    assert json.loads((final / "config.json").read_text())["steps_trained"] == 3
    proc = _run("colorize.export", f"--workdir={run}", f"--output={final}", "--checkpoint=2", "--overwrite")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((final / "config.json").read_text())["steps_trained"] == 2
    fn = tf.saved_model.load(str(final)).signatures["serving_default"]
    grey = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(1, 32, 32, 1)
    rgb = fn(grey=tf.constant(grey))["rgb"].numpy()
    assert rgb.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(rgb @ np.array([0.299, 0.587, 0.114], np.float32), grey[..., 0], atol=1e-5)


def test_non_finite_loss_exits_with_a_message(real_images, tmp_path):
    data = tmp_path / "prepared"
    os.makedirs(data / "train")
    for p in real_images[:2]:
        shutil.copy(p, data / "train")
    proc = _run("colorize.train", f"--data_dir={data}", f"--workdir={tmp_path / 'run'}", "--iterations=10",
                "--batch_size=2", "--size=32", "--backbone_weights=none", "--learning_rate=1e30", "--noexport")
    assert proc.returncode == 1
    assert "error: non-finite colorize loss" in proc.stderr and "Traceback" not in proc.stderr


def test_training_needs_no_tensorflow(real_images, tmp_path):
    """What a GPU machine with JAX but no TensorFlow runs: no module that `colorize.train` loads imports
    TensorFlow at import time (checked on the source, so it holds where JAX is not installed), and a run
    without export trains from the command line into a folder that `colorize.export` turns into a SavedModel."""
    assert "tensorflow" not in _module_level_imports_of("colorize.train", "colorize.trainer", "common.callbacks",
                                                         "common.state", "data.examples")
    # The check can fail: the SavedModel writer does import it.
    assert "tensorflow" in _module_level_imports_of("colorize.saved_model")

    data = tmp_path / "prepared"
    os.makedirs(data / "train")
    for p in real_images[:3]:
        shutil.copy(p, data / "train")
    run = tmp_path / "run"
    r = _run("colorize.train", f"--data_dir={data}", f"--workdir={run}", "--backbone=compact", "--noexport",
             "--size=32", "--batch_size=2", "--iterations=4", "--checkpoint_every=2", "--lr_decay_steps=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "no dev evaluation" in r.stderr and "colorize.export --workdir" in r.stderr
    assert not (run / "export").exists()
    assert sorted(os.listdir(run / "weights")) == ["step_0000002.weights.h5", "step_0000004.weights.h5"]
    r = _run("colorize.export", f"--workdir={run}", "--checkpoint=2", f"--output={tmp_path / 'export'}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.load(open(tmp_path / "export" / "config.json"))["steps_trained"] == 2
    r = _run("colorize.train", f"--data_dir={data}", f"--workdir={run}", "--lr_decay_steps=x")
    assert r.returncode == 1 and "error: lr_decay_steps must be step numbers" in r.stderr
    assert "Traceback" not in r.stderr
