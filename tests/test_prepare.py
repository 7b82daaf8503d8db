"""data.prepare: tile geometry by hand, split determinism, no leakage, idempotence."""
import json
import os
import shutil

import numpy as np
import pytest

from data.io import read_image
from data.writers import write_png
from data.preparation import PrepareConfig, assign_splits, prepare, split_counts
from data.tiles import tile_boxes, tile_starts


def test_tile_boxes_5000x3000_by_hand():
    # Width 5000 with 2040-px tiles: ceil(5000/2040) = 3 tiles, starts spread over
    # 5000 - 2040 = 2960 px: 0, 1480, 2960. Height 3000 with 1356: 3 tiles over
    # 1644 px: 0, 822, 1644. 9 tiles, the last ending exactly at the edges.
    assert tile_starts(5000, 2040) == [0, 1480, 2960]
    assert tile_starts(3000, 1356) == [0, 822, 1644]
    boxes = tile_boxes(3000, 5000, 1356, 2040)
    assert len(boxes) == 9
    assert boxes[0] == (0, 0, 1356, 2040) and boxes[-1] == (1644, 2960, 1356, 2040)
    assert tile_starts(4080, 2040) == [0, 2040]  # divides: no overlap
    assert tile_starts(100, 2040) == [0]


def test_tiles_cover_every_pixel():
    for h, w, th, tw in [(3000, 5000, 1356, 2040), (97, 33, 10, 7), (50, 50, 50, 50)]:
        cover = np.zeros((h, w), int)
        for b in tile_boxes(h, w, th, tw):
            cover[b.top : b.top + b.height, b.left : b.left + b.width] += 1
        assert cover.min() >= 1


def test_split_counts_and_determinism():
    assert split_counts(10, (0.8, 0.1, 0.1)) == (8, 1, 1)
    assert split_counts(3, (0.8, 0.1, 0.1)) == (1, 1, 1)
    assert split_counts(100, (0.8, 0.1, 0.1)) == (80, 10, 10)
    ids = [f"img{i:03d}.png" for i in range(50)]
    a = assign_splits(ids, (0.8, 0.1, 0.1))
    b = assign_splits(list(reversed(ids)), (0.8, 0.1, 0.1))
    assert a == b
    assert sorted(a.values()).count("dev") == 5
    assert assign_splits(ids, (0.8, 0.1, 0.1), salt="x") != a
    with pytest.raises(ValueError):
        split_counts(10, (0.5, 0.1, 0.1))


@pytest.fixture()
def src_dir(tmp_path, real_images):
    src = tmp_path / "src"
    src.mkdir()
    for p in real_images:
        shutil.copy(p, src)
    # One large synthetic frame (a real image upscaled) to check multi-tile sources.
    big = np.kron(read_image(real_images[0]), np.ones((3, 2, 1), np.float32))  # 768 x 512
    write_png(str(src / "big.png"), big)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return src


def test_prepare_tiles_split_manifest_and_idempotence(tmp_path, src_dir):
    out = tmp_path / "out"
    config = PrepareConfig(src=str(src_dir), out=str(out), tile_width=200, tile_height=200, min_policy="drop")
    m = prepare(config, progress=False)
    by_source = {s["source"]: s for s in m["sources"]}
    assert by_source["broken.png"]["status"] == "error" and "cannot decode" in by_source["broken.png"]["reason"]
    # 256x256 -> 2x2 tiles of 200 (starts 0, 56); 768x512 -> 4 rows x 3 cols.
    assert by_source["ic418.png"]["tiles"] == 4
    assert by_source["big.png"]["tiles"] == 12
    assert len(m["tiles"]) == 10 * 4 + 12
    # No leakage: every tile of a source is in that source's split.
    for t in m["tiles"]:
        assert t["split"] == by_source[t["source"]]["split"]
        assert os.path.isfile(out / t["file"]) and t["file"].startswith(t["split"] + "/")
    tile = next(t for t in m["tiles"] if t["source"] == "big.png" and t["box"][:2] == [568, 312])
    np.testing.assert_array_equal(
        read_image(str(out / tile["file"])), read_image(str(src_dir / "big.png"))[568:768, 312:512]
    )
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["tiles"] == m["tiles"]
    assert (out / "manifest.csv").read_text().count("\n") == len(m["tiles"]) + 1
    # Re-run: same manifest, nothing rewritten.
    again = prepare(config, progress=False)
    assert again["tiles"] == m["tiles"] and again["written"] == 0
    # A different tile size removes the old tiles this command wrote, and nothing else.
    (out / "train" / "notes.txt").write_text("mine")
    prepare(PrepareConfig(src=str(src_dir), out=str(out), tile_width=256, tile_height=256), progress=False)
    files = sorted(p.name for p in (out / "train").iterdir())
    assert "notes.txt" in files and not any("_x00056" in f for f in files)


def test_min_policies(tmp_path, src_dir):
    kw = dict(src=str(src_dir), tile_width=300, tile_height=300)
    drop = prepare(PrepareConfig(out=str(tmp_path / "d"), min_policy="drop", **kw), progress=False)
    assert {t["source"] for t in drop["tiles"]} == {"big.png"}
    keep = prepare(PrepareConfig(out=str(tmp_path / "k"), min_policy="keep", **kw), progress=False)
    kept = [t for t in keep["tiles"] if t["source"] == "ic418.png"]
    assert len(kept) == 1 and kept[0]["box"] == [0, 0, 256, 256]
    pad = prepare(PrepareConfig(out=str(tmp_path / "p"), min_policy="pad", **kw), progress=False)
    padded = [t for t in pad["tiles"] if t["source"] == "ic418.png"]
    assert len(padded) == 1 and padded[0]["padded"]
    assert read_image(str(tmp_path / "p" / padded[0]["file"])).shape == (300, 300, 3)


def test_held_out_sources_are_in_no_split(tmp_path, src_dir):
    # sources.json as data.fetch writes it: one record flagged held_out, one with a Hubble credit, one not.
    records = [{"file": "ic418.png", "credit": "Digitized Sky Survey", "held_out": True},
               {"file": "big.png", "credit": "NASA, ESA and The Hubble Heritage Team (STScI/AURA)"},
               {"file": "broken.png", "credit": "Digitized Sky Survey"}]
    (src_dir / "sources.json").write_text(json.dumps(records))
    kw = dict(src=str(src_dir), tile_width=300, tile_height=300, min_policy="keep")
    m = prepare(PrepareConfig(out=str(tmp_path / "h"), **kw), progress=False)
    status = {s["source"]: s["status"] for s in m["sources"]}
    assert status["ic418.png"] == status["big.png"] == "held_out"
    assert not {"ic418.png", "big.png"} & {t["source"] for t in m["tiles"]}
    assert not any("ic418" in f or "big" in f for _, _, fs in os.walk(tmp_path / "h") for f in fs if f.endswith(".png"))
    assert len({t["source"] for t in m["tiles"]}) == 9  # the other sources, broken.png unreadable
    everything = prepare(PrepareConfig(out=str(tmp_path / "a"), hold_out=False, **kw), progress=False)
    assert {"ic418.png", "big.png"} <= {t["source"] for t in everything["tiles"]}
    (src_dir / "sources.json").write_text("{not json")
    with pytest.raises(ValueError, match="sources.json"):
        prepare(PrepareConfig(out=str(tmp_path / "b"), **kw), progress=False)


def test_prepare_rejects_bad_folders(tmp_path, src_dir):
    with pytest.raises(ValueError, match="does not exist"):
        prepare(PrepareConfig(src=str(tmp_path / "nope"), out=str(tmp_path / "o")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        prepare(PrepareConfig(src=str(tmp_path / "empty"), out=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="inside --src"):
        prepare(PrepareConfig(src=str(src_dir), out=str(src_dir / "tiles")))


def test_cli_exit_status_reports_bad_sources(tmp_path, src_dir):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(
        [sys.executable, "-m", "data.prepare", f"--src={src_dir}", f"--out={tmp_path / 'cli'}", "--min_policy=keep"],
        cwd=root, capture_output=True, text=True,
    )
    assert res.returncode == 1  # broken.png could not be read; the rest were prepared
    assert "broken.png" in res.stderr and "cannot decode" in res.stderr
    assert "12 sources (1 error, 11 ok)" in res.stdout and os.path.isfile(tmp_path / "cli" / "manifest.json")
