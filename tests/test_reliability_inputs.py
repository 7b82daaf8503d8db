"""Reliability on hostile but realistic inputs (issue 20): outputs never over an input, names unique and
stable, --skip_existing that knows each output's input, camera formats, bombs, SIP, clear messages.

All data is generated here, tiny.
"""
import os

import numpy as np
import pytest

from data.io import read_image, write_png
from pipeline.inference import exclude_own_outputs, plan_jobs


def _grey(path, seed=0, size=(40, 48)):
    write_png(str(path), np.random.default_rng(seed).random(size + (1,), dtype=np.float32))
    return str(path)


def _config(inputs, out, models, **kw):
    from pipeline.runner import RunConfig

    return RunConfig(input=str(inputs), output=str(out), colorize_model=models["colorize"],
                     srgan_model=models["srgan"], batch_size=2, progress=False, **kw)


def _snapshot(folder):
    """{relative path: bytes} of every non-hidden file under `folder`."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            if not f.startswith("."):
                p = os.path.join(root, f)
                out[os.path.relpath(p, folder)] = open(p, "rb").read()
    return out


# 1. Output over input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("route", ["symlink", "dotdot"])
def test_output_reaching_the_input_folder_by_another_path_never_names_an_input(tmp_path, route):
    inp = tmp_path / "in"
    inp.mkdir()
    # An input that happens to be named like the output of another input.
    sources = [_grey(inp / "x.png"), _grey(inp / "x_colour_x4.png", 1), _grey(inp / "x_colour224.png", 2)]
    if route == "symlink":
        (tmp_path / "link").symlink_to(inp, target_is_directory=True)
        out = str(tmp_path / "link")
    else:
        (inp / "sub").mkdir()
        out = str(inp / "sub" / "..")
    jobs = plan_jobs(sources, str(inp), out, suffix="_colour_x4", save_intermediate=True)
    real_inputs = {os.path.realpath(s) for s in sources}
    written = [j.output for j in jobs] + [j.intermediate for j in jobs]
    assert not {os.path.realpath(p) for p in written} & real_inputs
    assert len({os.path.realpath(p) for p in written}) == len(written)


def test_existing_symlink_to_an_input_is_not_an_output_name(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    src = _grey(inp / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(src, out / "a_colour_x4.png")  # same file as the input under the output's name
    (job,) = plan_jobs([src], str(inp), str(out), suffix="_colour_x4", save_intermediate=False)
    assert os.path.basename(job.output) == "a.png_colour_x4.png"


def test_output_tree_inside_the_input_is_not_an_input(tmp_path):
    inp = tmp_path / "in"
    (inp / "out").mkdir(parents=True)
    keep = _grey(inp / "a.png")
    mine = _grey(inp / "out" / "a_colour_x4.png")
    kept, dropped = exclude_own_outputs([keep, mine], str(inp), str(inp / "out" / "."))
    assert (kept, dropped) == ([keep], [mine])
    # Output == input: only files the tool recorded are dropped.
    kept, dropped = exclude_own_outputs([keep, mine], str(inp), str(inp), recorded={os.path.realpath(mine)})
    assert (kept, dropped) == ([keep], [mine])


@pytest.mark.parametrize("where", ["same", "inside"])
def test_reruns_into_the_input_folder_never_process_their_own_outputs(tmp_path, tiny_exports, where):
    from pipeline.runner import run

    inp = tmp_path / "in"
    inp.mkdir()
    _grey(inp / "a.png")
    _grey(inp / "b.png", 1)
    before = _snapshot(inp)
    out = inp if where == "same" else inp / "results"
    first = run(_config(inp, out, tiny_exports, recursive=True))
    assert len(first.written) == 2 and not first.failed
    again = run(_config(inp, out, tiny_exports, recursive=True, skip_existing=True))
    assert not again.written and len(again.skipped) == 2
    third = run(_config(inp, out, tiny_exports, recursive=True))  # no --skip_existing: redone, not doubled
    assert sorted(third.written) == sorted(first.written)
    after = _snapshot(inp)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [k for k in after if "_colour_x4_colour" in k or k.count("colour_x4") > 1]
    assert len(after) == len(before) + 2


# 2. Unique, stable output names; --skip_existing knows each output's input ----------------------------------

def _fits(path, data=None, **header):
    from astropy.io import fits

    data = np.random.default_rng(3).random((24, 20)).astype(np.float32) if data is None else data
    hdu = fits.PrimaryHDU(data)
    for k, v in header.items():
        hdu.header[k] = v
    hdu.writeto(path)
    return str(path)


def test_names_depend_only_on_the_input_itself(tmp_path):
    from pipeline.inference import name_candidates

    root = str(tmp_path)
    # Non-ASCII and lossy names always carry a hash of their relative path: never "_" for everyone.
    assert name_candidates(os.path.join(root, "日本.png"), root) != name_candidates(os.path.join(root, "中国.png"), root)
    plain = name_candidates(os.path.join(root, "a.png"), root)
    assert plain[:2] == ["a", "a.png"] and plain[2].startswith("a.png-") and len(plain[2]) == len("a.png-") + 8
    alone = plan_jobs([os.path.join(root, "日本.png")], root, "/o", "_colour_x4", False)[0].output
    both = plan_jobs([os.path.join(root, n) for n in ("中国.png", "日本.png")], root, "/o", "_colour_x4", False)
    assert both[1].output == alone and both[0].output != alone
    assert all(os.path.basename(j.output).isascii() for j in both)


@pytest.mark.parametrize("first,added", [("a.png", "a.fits"), ("日本.png", "中国.png")])
def test_a_new_input_whose_name_collides_is_processed_not_skipped(tmp_path, tiny_exports, first, added):
    from pipeline.runner import run

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    _grey(inp / first)
    one = run(_config(inp, out, tiny_exports, skip_existing=True))
    (done,) = one.written
    stamp = os.stat(done).st_mtime_ns
    if added.endswith(".fits"):
        _fits(inp / added)
    else:
        _grey(inp / added, 5)
    two = run(_config(inp, out, tiny_exports, skip_existing=True))
    assert two.skipped == [str(inp / first)]
    assert len(two.written) == 1 and two.written[0] != done
    assert os.stat(done).st_mtime_ns == stamp  # the first output kept its name and was not redone
    if first == "a.png":
        # a.fits sorts before a.png, yet a.png keeps the plain name it was given first.
        assert os.path.basename(done) == "a_colour_x4.png"
        assert os.path.basename(two.written[0]) == "a.fits_colour_x4.png"
    assert not run(_config(inp, out, tiny_exports, skip_existing=True)).written


def test_skip_existing_redoes_a_changed_input_and_an_unrecorded_output(tmp_path, tiny_exports):
    from pipeline.manifest import MANIFEST_NAME
    from pipeline.runner import run

    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    _grey(inp / "a.png")
    _grey(inp / "b.png", 1)
    run(_config(inp, out, tiny_exports))
    _grey(inp / "a.png", 7)  # same name, new content
    os.utime(inp / "a.png", ns=(1, 1))  # a different mtime even on a coarse clock
    again = run(_config(inp, out, tiny_exports, skip_existing=True))
    assert [os.path.basename(p) for p in again.written] == ["a_colour_x4.png"]
    assert again.skipped == [str(inp / "b.png")]
    # An output file that no manifest line accounts for (e.g. another tool's) is not trusted.
    os.unlink(out / MANIFEST_NAME)
    third = run(_config(inp, out, tiny_exports, skip_existing=True))
    assert len(third.written) == 2 and not third.skipped


def test_manifest_lines_survive_a_cut_last_line(tmp_path):
    from pipeline import manifest

    src = _grey(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    target = str(out / "a_colour_x4.png")
    open(target, "wb").write(b"x")
    manifest.record(str(out), [(src, target, [])])
    with open(out / manifest.MANIFEST_NAME, "a") as f:
        f.write('{"output": "b_col')  # a run killed in the middle of its line
    entries = manifest.read_manifest(str(out))
    assert list(entries) == [os.path.realpath(target)]
    assert manifest.is_up_to_date(target, src, entries)
    assert not manifest.is_up_to_date(target, _grey(tmp_path / "other.png"), entries)
