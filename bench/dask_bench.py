"""The `dask` section of `bench/suite.py`: frames/s of `pipeline.run` serially and on 1 and 2 Dask workers.

The same faithful run (the shipped models, 224 -> 896, `--batch_size` 4) over
the same frames (the test fixtures' Hubble PNGs, repeated), timed from the
call to the summary, models already loaded everywhere (a serial run's timer
and a worker's first task would otherwise include the load). Local clusters
of worker processes with one thread each; each worker gets `cores // workers`
TensorFlow threads (`pipeline.dask_executor.local_cluster`).
"""
from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _frames(folder: str, n: int) -> str:
    paths = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "images", "*.png")))
    os.makedirs(folder)
    for i in range(n):
        shutil.copy(paths[i % len(paths)], os.path.join(folder, f"frame{i:04d}.png"))
    return folder


def rows(n_frames: int = 16, workers: tuple = (1, 2)) -> list[dict]:
    """One row per executor: `{"what", "images_per_s"}` (frames per second over `n_frames` frames)."""
    from distributed import Client

    from pipeline.api import Pipeline
    from pipeline.dask_executor import ModelSpec, describe, local_cluster
    from pipeline.runner import RunConfig, run

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        frames = _frames(os.path.join(tmp, "in"), n_frames)
        config = RunConfig(input=frames, output="", progress=False)
        quiet = lambda message: None  # noqa: E731

        def timed(name: str, **kw) -> float:
            t0 = time.perf_counter()
            result = run(dataclasses.replace(config, output=os.path.join(tmp, name)), quiet, **kw)
            elapsed = time.perf_counter() - t0
            if len(result.written) != n_frames:
                raise SystemExit(f"dask bench: {name} wrote {len(result.written)} of {n_frames}: {result.failed[:3]}")
            return n_frames / elapsed

        pipe = Pipeline.load()  # loading runs each model once (a probe), as a worker's load does
        out.append({"what": f"pipeline.run, {n_frames} frames: serial (frames/s)", "images_per_s": timed(
            "serial", pipeline=pipe)})
        for n in workers:
            with local_cluster(n, dashboard_address=":0") as cluster, Client(cluster) as client:
                client.run(describe, ModelSpec.of(config))  # every worker loads the models now
                rate = timed(f"dask{n}", client=client)
            out.append({"what": f"pipeline.run, {n_frames} frames: --executor dask, {n} worker(s) "
                                f"x {max(1, (os.cpu_count() or 1) // n)} TF thread(s) (frames/s)",
                        "images_per_s": rate})
    return out
