"""Full-resolution mode streams: peak memory stays below the size of its own output."""
import os
import subprocess
import sys

import numpy as np
from astropy.io import fits


def _peak_rss_mb(tmp_path, n, tiny_exports):
    data = np.random.default_rng(0).random((n, n), dtype=np.float32) * 100.0
    src = tmp_path / f"big{n}.fits"
    fits.PrimaryHDU(data).writeto(src)
    del data
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"""
import os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, {root!r})
from pipeline.full import FullOptions
from pipeline.runner import RunConfig, run
r = run(RunConfig(input={str(src)!r}, output={str(tmp_path / 'out')!r}, colorize_model={tiny_exports['colorize']!r},
                  srgan_model={tiny_exports['srgan']!r}, mode="full", progress=False,
                  full=FullOptions(size=64, tile=128, tile_overlap=32, output_format="fits")), log=lambda m: None)
assert r.written and not r.failed, r.failed
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return float(res.stdout.strip().splitlines()[-1]), tmp_path / "out" / f"big{n}_colour_x4.fits"


def test_large_frame_peak_rss_grows_far_less_than_output(tmp_path, tiny_exports):
    small_peak, _ = _peak_rss_mb(tmp_path, 600, tiny_exports)
    big_peak, out = _peak_rss_mb(tmp_path, 1500, tiny_exports)
    size_mb = os.path.getsize(out) / 2**20  # 6000 x 6000 x 3 float32 = 412 MiB
    assert size_mb > 400
    # 6x the pixels, 340 MiB more output: memory grows only with the tile band
    # (frame width x tile height, ~50 MiB here), never with the whole output.
    assert big_peak - small_peak < 0.35 * size_mb, (small_peak, big_peak, size_mb)
    with fits.open(out, memmap=True) as hdul:
        assert hdul[0].data.shape == (3, 6000, 6000)
        corner = np.asarray(hdul[0].data[:, :8, :8])
        assert np.isfinite(corner).all() and corner.min() >= 0 and corner.max() <= 1
