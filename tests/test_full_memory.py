"""Full-resolution mode streams: peak memory stays below the size of its own output."""
import os
import subprocess
import sys

import numpy as np
from astropy.io import fits


def test_large_frame_peak_rss_below_output_size(tmp_path, tiny_exports):
    n = 3000  # output 12000 x 12000 x 3 float32 = 1.73 GB, more than the bound below
    data = np.random.default_rng(0).random((n, n), dtype=np.float32) * 100.0
    src = tmp_path / "big.fits"
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
    peak_mb = float(res.stdout.strip().splitlines()[-1])
    out = tmp_path / "out" / "big_colour_x4.fits"
    size_mb = os.path.getsize(out) / 2**20
    assert size_mb > 1600
    # TensorFlow and the two models take ~0.9 GB by themselves; the frame adds little.
    assert peak_mb < 1200, f"peak RSS {peak_mb:.0f} MB for a {size_mb:.0f} MB output"
    with fits.open(out, memmap=True) as hdul:
        assert hdul[0].data.shape == (3, 4 * n, 4 * n)
        corner = np.asarray(hdul[0].data[:, :8, :8])
        assert np.isfinite(corner).all() and corner.min() >= 0 and corner.max() <= 1
