"""The pipeline's stage overlap (`pipeline.overlap`): work really runs ahead, in order, errors kept."""
import errno
import threading

import pytest

from pipeline.overlap import OrderedWriter, Skipped, StageClock, prefetch


def test_prefetch_computes_the_next_item_while_this_one_is_used():
    started = [threading.Event() for _ in range(3)]

    def produce():
        for i in range(3):
            started[i].set()
            yield i

    got = []
    for item in prefetch(produce(), depth=1):
        if item == 0:
            # The consumer still holds item 0: the producer must already be on item 1.
            assert started[1].wait(timeout=10)
        got.append(item)
    assert got == [0, 1, 2]


def test_prefetch_raises_the_producers_error_at_its_place():
    def produce():
        yield 1
        raise ValueError("band 2 failed")

    it = prefetch(produce(), clock=StageClock(), stage="sr")
    assert next(it) == 1
    with pytest.raises(ValueError, match="band 2 failed"):
        next(it)


def test_ordered_writer_overlaps_and_reports_in_submission_order():
    release = threading.Event()
    running = threading.Event()

    def slow(key):
        running.set()
        assert release.wait(timeout=10)

    def fail(key):
        raise OSError(errno.ENOSPC, "No space left on device")

    clock = StageClock()
    with OrderedWriter(depth=4, clock=clock) as writer:
        assert writer.submit("a", slow, "a") == []  # returns at once: the caller computes on meanwhile
        assert running.wait(timeout=10)
        writer.submit("b", fail, "b")
        writer.submit("c", lambda k: None, "c")
        release.set()
        done = writer.drain()
    assert [k for k, _ in done] == ["a", "b", "c"]
    assert done[0][1] is None and isinstance(done[1][1], OSError) and done[2][1] is None
    assert clock.seconds["encode"] > 0


def test_writes_after_a_fatal_failure_are_skipped():
    written = []

    def write(key):
        if key == "b":
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(key)

    fatal = lambda e: isinstance(e, OSError) and e.errno == errno.ENOSPC  # noqa: E731
    done = []
    with OrderedWriter(depth=8, fatal=fatal) as writer:
        for key in "abcd":
            done += writer.submit(key, write, key)
        done += writer.drain()
    assert [k for k, _ in done] == list("abcd")
    assert written == ["a"]  # nothing reached the disk after the failed write
    assert isinstance(done[1][1], OSError) and all(isinstance(e, Skipped) for _, e in done[2:])
