"""The one run loop (`pipeline.runner.drive`) and the settings it runs on (`pipeline.config`)."""
import errno
import os

import pytest

from pipeline import manifest
from pipeline.config import FullOptions, RunConfig
from pipeline.inference import Job
from pipeline.modes import Faithful, Full, mode_of
from pipeline.outcome import Outcome
from pipeline.runner import Progress, RunResult, drive


def test_full_options_belong_to_full_mode():
    # Full mode without options gets the command's: working size and batch size carry over.
    assert RunConfig("in", "out", mode="full", size=64, batch_size=2).full == FullOptions(size=64, tile_batch=2)
    assert RunConfig("in", "out").full is None
    given = FullOptions(tile=96, tile_overlap=8)
    assert RunConfig("in", "out", mode="full", full=given).full is given
    with pytest.raises(ValueError, match="need mode 'full'"):
        RunConfig("in", "out", full=given)
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        RunConfig("in", "out", mode="fast")
    assert isinstance(mode_of(RunConfig("in", "out", mode="full")), Full)
    assert mode_of(RunConfig("in", "out", mode="full", full=FullOptions(output_format="fits"))).ext == ".fits"
    assert isinstance(mode_of(RunConfig("in", "out")), Faithful)


def test_the_loop_stops_at_a_full_disk_and_closes_the_work(tmp_path):
    sources = []
    for name in "abcd":
        (tmp_path / f"{name}.png").write_bytes(b"x")
        sources.append(str(tmp_path / f"{name}.png"))
    out = tmp_path / "out"
    out.mkdir()
    jobs = [Job(source=s, output=str(out / f"{n}_colour_x4.png")) for s, n in zip(sources, "abcd")]
    closed = []

    def steps():
        try:
            yield 1, [(jobs[0], Outcome(0, was_colour=True))]
            yield 1, [(jobs[1], Outcome(0, reason="cannot decode"))]
            yield 0, [(jobs[2], Outcome(0, reason="No space left on device", write_error=True, errno=errno.ENOSPC))]
            yield 1, [(jobs[3], Outcome(0))]  # never reached: the run stopped
        finally:
            closed.append(len(lines))  # how many lines were out when the work was closed

    config = RunConfig(str(tmp_path), str(out))
    lines: list = []
    result = RunResult()
    work = steps()  # held here, so only `drive` can close it before the end of the test
    drive(work, jobs, Faithful(config), config, result, lines.append, Progress(len(jobs), "test", False))
    # Closed at the stop, before the stop notice (the two error lines were out).
    assert closed == [2] and lines[2].startswith("error: stopped: the output cannot be written")
    assert result.written == [jobs[0].output]
    assert result.failed == [(sources[1], "cannot decode"),
                             (sources[2], f"cannot write {jobs[2].output}: No space left on device"),
                             (sources[3], "not processed: the run stopped on an output write error")]
    # Written outcomes are recorded in the manifest; the colour input is counted in faithful mode's note.
    assert set(manifest.read_manifest(str(out))) == {os.path.realpath(jobs[0].output)}
    assert result.notes == ["note: 1 input(s) were colour images; they were reduced to their luminance "
                            "first (this tool colourises grey frames)."]
    assert lines[-1].startswith("done: 1 written, 0 skipped (existing), 3 failed")
