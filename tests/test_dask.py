"""pipeline.run on Dask (`--executor dask`, `Pipeline.process_files(client=...)`) against the serial run.

One LocalCluster of 2 worker processes serves the whole module. Its workers run
TensorFlow with its default threads (`tf_threads=0`), as this test process
does, so "byte-identical" is the claim that a Dask run makes the very model
calls of the serial run (the same batches), nothing about float order across
thread counts.
"""
import dataclasses
import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from astropy.io import fits  # noqa: E402

from data.io import read_image  # noqa: E402
from data.writers import write_png  # noqa: E402
from pipeline import manifest  # noqa: E402
from pipeline.runner import RunConfig, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _FsyncHook(distributed.WorkerPlugin):
    """Test hook in each worker: `os.fsync` (called by `atomic_file` while its temporary exists, before the
    rename) sleeps `delay` s, or, the first time in the whole cluster (`marker` not yet there), kills its worker."""

    def __init__(self, marker=None, delay=0.0):
        self.marker, self.delay = marker, delay

    def setup(self, worker):
        real = self.real = os.fsync
        marker, delay = self.marker, self.delay

        def fsync(fd):
            if marker is not None:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    pass
                else:
                    os._exit(1)  # the worker process dies holding a temporary
            time.sleep(delay)
            return real(fd)

        os.fsync = fsync

    def teardown(self, worker):
        os.fsync = self.real


@pytest.fixture(scope="module")
def client():
    from pipeline.dask_executor import local_cluster

    with local_cluster(2, tf_threads=0, dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def frames(tmp_path_factory, real_images):
    """Six readable frames (colour PNGs, a non-square grey one, a FITS) and two bad files."""
    d = tmp_path_factory.mktemp("frames")
    for p in real_images[:4]:
        shutil.copy(p, d)
    grey = read_image(real_images[4]).mean(axis=-1, keepdims=True)
    write_png(str(d / "grey.png"), grey[:90, :70])
    y, x = np.mgrid[:40, :48]
    fits.PrimaryHDU((100 + 50 * np.exp(-((x - 20) ** 2 + (y - 15) ** 2) / 20.0)).astype(np.float32)).writeto(
        d / "star.fits")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    fits.PrimaryHDU(np.full((16, 16), np.nan, np.float32)).writeto(d / "nan.fits")
    return d


def _config(inputs, out, models, **kw):
    base = dict(input=str(inputs), output=str(out), colorize_model=models["colorize"], srgan_model=models["srgan"],
                size=64, batch_size=2, progress=False)
    return RunConfig(**{**base, **kw})


def _files(folder):
    """{relative path: sha256} of every file under `folder` but the hidden ones (the manifest)."""
    out = {}
    for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True):
        if os.path.isfile(path) and not os.path.basename(path).startswith("."):
            out[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def _temporaries(folder):
    return glob.glob(os.path.join(folder, "**", ".tmp-*"), recursive=True)


def _errors(lines):
    return sorted(m for m in lines if m.startswith("error:"))


@pytest.fixture(scope="module")
def serial(tmp_path_factory, frames, tiny_exports):
    """The serial faithful run over `frames` (batches of 2, intermediates kept): (output folder, result, lines)."""
    out = tmp_path_factory.mktemp("serial") / "out"
    lines = []
    result = run(_config(frames, out, tiny_exports, save_intermediate=True), log=lines.append)
    assert len(result.written) == 6 and len(result.failed) == 2
    return out, result, lines


def test_faithful_on_dask_is_the_serial_run(tmp_path, frames, tiny_exports, serial, client):
    from pipeline.api import Pipeline

    ref, ref_result, ref_lines = serial
    pipe = Pipeline.load(tiny_exports["colorize"], tiny_exports["srgan"])
    lines = []
    result = pipe.process_files(frames, tmp_path / "dask", client=client, size=64, batch_size=2,
                                save_intermediate=True, progress=False, log=lines.append)
    assert _files(tmp_path / "dask") == _files(ref) and len(_files(ref)) == 12
    assert sorted(map(os.path.basename, result.written)) == sorted(map(os.path.basename, ref_result.written))
    assert sorted(result.failed) == sorted(ref_result.failed)
    # The same error lines (in the order results came back), colour note and summary counts.
    assert _errors(lines) == _errors(ref_lines) and len(_errors(lines)) == 2
    assert [m for m in lines if m.startswith("note:")] == [m for m in ref_lines if m.startswith("note:")]
    assert lines[-1].startswith("done: 6 written, 0 skipped (existing), 2 failed")
    dask_line = next(m for m in lines if m.startswith("dask:"))
    assert "2 worker(s)" in dask_line and "dashboard: http://" in dask_line
    assert len(manifest.read_manifest(str(tmp_path / "dask"))) == 6 and not _temporaries(tmp_path / "dask")
    # The same through the API over a list of files, serially with the loaded models.
    paths = sorted(glob.glob(str(frames / "*")))
    listed = pipe.process_files(paths, tmp_path / "listed", size=64, batch_size=2, save_intermediate=True,
                                progress=False, log=lambda m: None)
    assert _files(tmp_path / "listed") == _files(ref) and sorted(listed.failed) == sorted(ref_result.failed)


def test_full_mode_on_dask_is_the_serial_run(tmp_path, frames, tiny_exports, client):
    from pipeline.full import FullOptions

    small = tmp_path / "small"  # whole frames are super-resolved in full mode: keep them small
    small.mkdir()
    for name in ("grey.png", "star.fits", "corrupt.png"):
        shutil.copy(frames / name, small)
    colour = [p for p in sorted(glob.glob(str(frames / "*.png"))) if os.path.basename(p)[0] not in "cg"]
    for i, p in enumerate(colour[:2]):
        write_png(str(small / f"c{i}.png"), read_image(p)[:40, :56])
    options = FullOptions(size=64, tile=48, tile_overlap=8, output_format="png16", report=True, residual_map=True)
    config = _config(small, tmp_path / "serial", tiny_exports, mode="full", full=options)
    serial_lines, dask_lines = [], []
    ref = run(config, log=serial_lines.append)
    got = run(dataclasses.replace(config, output=str(tmp_path / "dask")), log=dask_lines.append, client=client)
    files = _files(tmp_path / "serial")
    # Four outputs, four residual maps and fidelity.csv (rows in the serial order, paths differ only by folder).
    assert len(files) == 9 and len(ref.written) == 4 and len(ref.failed) == 1
    csv_serial = (tmp_path / "serial" / "fidelity.csv").read_text().replace(str(tmp_path / "serial"), "OUT")
    csv_dask = (tmp_path / "dask" / "fidelity.csv").read_text().replace(str(tmp_path / "dask"), "OUT")
    assert csv_dask == csv_serial
    files.pop("fidelity.csv")
    got_files = _files(tmp_path / "dask")
    got_files.pop("fidelity.csv")
    assert got_files == files
    assert sorted(got.failed) == sorted(ref.failed) and _errors(dask_lines) == _errors(serial_lines)
    assert sorted(m for m in dask_lines if m.startswith("note:")) == sorted(
        m for m in serial_lines if m.startswith("note:"))


def test_model_error_on_the_workers_is_the_serial_error(tmp_path, frames, tiny_exports, client):
    from pipeline.models import ModelLoadError

    config = _config(frames, tmp_path / "o", tiny_exports, colorize_model=str(tmp_path / "none"))
    with pytest.raises(ModelLoadError, match="no such model folder"):
        run(config, log=lambda m: None, client=client)


def _unfinished(dask_scheduler):
    return sum(ts.state in ("waiting", "queued", "processing", "no-worker") for ts in dask_scheduler.tasks.values())


def _idle(client, timeout=60.0):
    """Waits until the scheduler has dropped a killed client's tasks and no worker still runs one."""
    end = time.monotonic() + timeout
    while (client.run_on_scheduler(_unfinished)
           or sum(client.run(lambda dask_worker: dask_worker.state.executing_count).values())):
        assert time.monotonic() < end, "workers still busy"
        time.sleep(0.1)


def test_skip_existing_resumes_after_the_client_is_killed(tmp_path, real_images, tiny_exports, client, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(8):
        shutil.copy(real_images[i % len(real_images)], inputs / f"f{i:02d}.png")
    (inputs / "bad.jpg").write_text("not a jpeg")
    out = tmp_path / "out"
    # One frame per task, so that outputs never depend on which frames share a batch.
    ref = run(_config(inputs, tmp_path / "serial", tiny_exports, batch_size=1), log=lambda m: None)
    options = dict(input=str(inputs), output=str(out), size=64, batch_size=1, colorize_model=tiny_exports["colorize"],
                   srgan_model=tiny_exports["srgan"], executor="dask", dask_scheduler=client.scheduler.address,
                   skip_existing=True, progress=False)
    cli = [sys.executable, "-m", "pipeline.run"] + [f"--{k}={v}" for k, v in options.items()]
    client.register_plugin(_FsyncHook(delay=0.5), name="slow")  # each output write takes 0.5 s longer
    try:
        proc = subprocess.Popen(cli, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 120
        while len(manifest.read_manifest(str(out))) < 2 and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _idle(client)
    finally:
        client.unregister_worker_plugin("slow")
    recorded = {os.path.basename(p) for p in manifest.read_manifest(str(out))}
    assert 2 <= len(recorded) < 8, "the client was to be killed mid-run"
    # The rerun through the command's own main (in this process: no second TensorFlow start-up).
    from absl import flags
    from absl.testing import flagsaver

    from pipeline import run as command

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    capsys.readouterr()
    with flagsaver.flagsaver(**options):
        status = command.main([])
    printed = capsys.readouterr()
    assert status == 1 and "bad.jpg" in printed.err  # as the serial run: one input failed
    done = [m for m in printed.out.splitlines() if m.startswith("done:")]
    assert done[0].startswith(f"done: {8 - len(recorded)} written, {len(recorded)} skipped (existing), 1 failed")
    assert _files(out) == _files(tmp_path / "serial") and len(ref.written) == 8
    assert not _temporaries(out)


def test_worker_killed_mid_run_task_retried_elsewhere(tmp_path, frames, tiny_exports, serial, client):
    marker = tmp_path / "crashed"
    client.register_plugin(_FsyncHook(marker=str(marker)), name="crash")
    try:
        lines = []
        result = run(_config(frames, tmp_path / "out", tiny_exports, save_intermediate=True), log=lines.append,
                     client=client)
    finally:
        client.unregister_worker_plugin("crash")
    assert marker.exists()  # a worker did die writing an output
    ref, ref_result, _ = serial
    assert _files(tmp_path / "out") == _files(ref)
    assert sorted(result.failed) == sorted(ref_result.failed) and len(result.written) == 6
    assert not _temporaries(tmp_path / "out")
