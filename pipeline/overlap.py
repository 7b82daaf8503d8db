"""Overlapping the pipeline's stages: a clock per stage, a prefetching iterator, an ordered writer pool.

Decoding already runs ahead in `pipeline.inference.iter_loaded`'s threads. Here:

* `OrderedWriter` encodes and writes output N (PNG/FITS encoding and zlib
  release the GIL) while the main thread runs the models on N+1; results come
  back in submission order, so the caller records them (manifest, counts) from
  one thread.
* `prefetch` runs a generator (full mode's tiled SR bands) one step ahead in a
  thread while the caller encodes the previous item, bounded to `depth` items.
* `StageClock` adds up the seconds each stage spends (across threads), so a
  run can report each stage's share of its wall time. Stages that overlap add
  up to more than the wall time; that excess is the overlap won.
"""
from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Optional


class StageClock:
    """Seconds spent per named stage, summed over threads (thread-safe)."""

    def __init__(self) -> None:
        self.seconds: dict = collections.defaultdict(float)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    @contextlib.contextmanager
    def measure(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def shares(self, wall: float) -> dict:
        """Each stage's seconds divided by `wall` (a stage overlapped with others can exceed its slice)."""
        with self._lock:
            return {k: v / wall for k, v in self.seconds.items()} if wall > 0 else {}


@contextlib.contextmanager
def timed(clock: Optional[StageClock], stage: str):
    """`clock.measure(stage)`, or a no-op context when `clock` is None."""
    if clock is None:
        yield
    else:
        with clock.measure(stage):
            yield


class Skipped(Exception):
    """The result of a write not run because an earlier one failed fatally (see `OrderedWriter`)."""


class OrderedWriter:
    """A writer thread for outputs, at most `depth` queued, results in submission order.

    One thread by default, so writes happen in submission order and a fatal
    failure (disk full) is seen before the next write starts: every write queued
    after it is skipped (its result is `Skipped`), and nothing more reaches the disk.

    Args:
        workers: writer threads (more than 1 lets writes overlap each other, and
            then a write after a fatal one may already be running).
        depth: writes queued before `submit` waits for the oldest (bounds the
            outputs held in memory).
        clock: receives the writers' time as stage `encode`.
        fatal: says whether a write's exception stops all later writes.
    """

    def __init__(self, workers: int = 1, depth: int = 8, clock: Optional[StageClock] = None,
                 fatal: Optional[Callable[[BaseException], bool]] = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="encode")
        self._pending: "collections.deque[tuple[Any, Future]]" = collections.deque()
        self.depth = max(1, depth)
        self.clock = clock
        self._fatal = fatal or (lambda e: False)
        self._halted = threading.Event()

    def _call(self, fn: Callable, args: tuple) -> None:
        if self._halted.is_set():
            raise Skipped("not written: an earlier write failed")
        try:
            with timed(self.clock, "encode"):
                fn(*args)
        except BaseException as e:
            if self._fatal(e):
                self._halted.set()
            raise

    def submit(self, key: Any, fn: Callable, *args) -> list:
        """Queues `fn(*args)`; returns `(key, exception or None)` of the writes finished, oldest first."""
        self._pending.append((key, self._pool.submit(self._call, fn, args)))
        done = []
        while self._pending and (len(self._pending) > self.depth or self._pending[0][1].done()):
            done.append(self._result(*self._pending.popleft()))
        return done

    def drain(self) -> list:
        """Waits for every queued write; `(key, exception or None)` in submission order."""
        done = []
        while self._pending:
            done.append(self._result(*self._pending.popleft()))
        return done

    @staticmethod
    def _result(key: Any, future: Future) -> tuple:
        return key, future.exception()

    def close(self) -> None:
        """Drops writes not started and waits for those running (after a fatal error)."""
        for _, future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "OrderedWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_END = object()


def prefetch(items: Iterable, depth: int = 1, clock: Optional[StageClock] = None,
             stage: str = "produce") -> Iterator:
    """Yields `items`, produced in a background thread up to `depth` items ahead.

    An exception in the producer is raised here, at the item where it
    happened. When the consumer stops early the producer is told to stop too.

    Args:
        items: any iterable (typically a generator doing the heavy work).
        depth: items computed ahead (memory: `depth + 1` items alive at most).
        clock: receives the producer's time as `stage`, and the consumer's time
            spent waiting for items as `<stage>_wait`.
    """
    q: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                finally:
                    if clock is not None:
                        clock.add(stage, time.perf_counter() - t0)
                if not put((item, None)):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            put((_END, e))
            return
        put((_END, None))

    thread = threading.Thread(target=produce, name=f"prefetch-{stage}", daemon=True)
    thread.start()
    try:
        while True:
            t0 = time.perf_counter()
            item, error = q.get()
            if clock is not None:
                clock.add(f"{stage}_wait", time.perf_counter() - t0)
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()
