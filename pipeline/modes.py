"""The run's two modes, each a `process(batch)` that the one run loop (`pipeline.runner.drive`) drives.

A mode says how a run's jobs are batched, what processing a batch does (read,
compute, write the outputs atomically) and what it returns (one
`pipeline.outcome.Outcome` per job, in the order the run accounts for them),
which files a job writes (`ext`, `save_intermediate`) and what the run says at
its end. `process` is what a Dask task does on a worker; `steps` is the same
work in this process, with its stages overlapped:

* `Faithful` (the paper's sec. 5.2): batches of `--batch_size` frames; the
  next batch is decoded while this one runs through the models
  (`pipeline.inference.iter_loaded`), and its PNGs are encoded and written
  (with their manifest entries) in a writer thread while the next batch
  computes (`pipeline.overlap.OrderedWriter`).
* `Full` (full resolution): one frame a batch (`pipeline.full.process_full`,
  which runs the next band's tiled SR while this band is written).

Both modes write the same bytes through `steps` and `process`.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence

from pipeline.config import RunConfig, output_extension
from pipeline.outcome import Outcome, is_fatal, write_failure

#: What a mode's `steps` yields: (jobs finished processing, `(job, Outcome)`s to account for, in order).
Step = tuple[int, list]


class Faithful:
    """Faithful mode: every frame to the working size, colourised, then x`scale` (PNG outputs)."""

    name = "faithful"
    ext = ".png"
    rate = True  # the summary gives images per second

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.batch_size = max(1, config.batch_size)
        self.save_intermediate = config.save_intermediate

    def desc(self, scale: int) -> str:
        """The progress bar's label."""
        return "colourise+x%d" % scale

    def batches(self, jobs: Sequence) -> Iterator[list]:
        """Consecutive `batch_size` jobs (the same batches give the same pixels on every executor)."""
        from pipeline.inference import batched

        return batched(jobs, self.batch_size)

    def process(self, jobs: list, pipe, clock=None, progress=None) -> list[Outcome]:
        """One batch: read, one model call on the readable frames, then their PNGs written in turn.

        Returns:
            Outcomes in the order a run accounts for them: read failures first,
            then each write; after a write error that stops the run (disk full,
            read-only) the batch's remaining jobs get none.
        """
        from pipeline.inference import iter_loaded
        from pipeline.outcome import faithful_compute, faithful_written, write_faithful

        batch, loaded = next(iter_loaded([jobs], self.config.size, clock=clock))
        outcomes, ready = faithful_compute(batch, loaded, pipe, self.config, clock)
        for i, was_colour, c, u in ready:
            try:
                write_faithful(jobs[i], c, u)
            except OSError as e:
                outcomes.append(faithful_written(jobs[i], i, was_colour, e))
                if is_fatal(e):
                    break
                continue
            outcomes.append(faithful_written(jobs[i], i, was_colour))
        return outcomes

    def steps(self, jobs: Sequence, pipe, clock=None, progress=None) -> Iterator[Step]:
        """`process` over all `jobs` with decode, compute and writes overlapped (see the module docstring).

        A write's outcome is yielded once the writer thread has finished it
        (its manifest entry recorded there: `Outcome.recorded`); closing the
        generator drops the writes not yet started.
        """
        from pipeline.inference import iter_loaded
        from pipeline.outcome import faithful_compute, write_and_record
        from pipeline.overlap import OrderedWriter

        output = self.config.output
        with OrderedWriter(depth=2 * self.batch_size, clock=clock, fatal=is_fatal) as writer:
            for batch, loaded in iter_loaded(self.batches(jobs), self.config.size, clock=clock):
                failures, ready = faithful_compute(batch, loaded, pipe, self.config, clock)
                yield 0, [(batch[o.job], o) for o in failures]
                for i, was_colour, c, u in ready:
                    yield 0, _written(writer.submit((batch[i], i, was_colour), write_and_record, batch[i], c, u,
                                                    output))
                yield len(batch), []
            yield 0, _written(writer.drain())

    def closing_notes(self, colour_inputs: int) -> list[str]:
        """The run's notes at its end, given how many written or failed inputs were colour images."""
        from pipeline.outcome import colour_note

        return [colour_note(colour_inputs)] if colour_inputs else []


def _written(finished: list) -> list:
    """`(job, Outcome)` of the `OrderedWriter`'s finished `write_and_record`s (other errors than OSError raised)."""
    from pipeline.outcome import faithful_written

    done = []
    for (job, i, was_colour), error in finished:
        if error is not None and not isinstance(error, OSError):
            raise error
        done.append((job, faithful_written(job, i, was_colour, error, recorded=True)))
    return done


class Full:
    """Full-resolution mode: each whole frame in colour, x`scale`, in `options.output_format`."""

    name = "full"
    rate = False
    save_intermediate = False
    batch_size = 1

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.options = config.full
        self.ext = output_extension(self.options)

    def desc(self, scale: int) -> str:
        return "full x%d" % scale

    def batches(self, jobs: Sequence) -> Iterator[list]:
        """One frame a batch."""
        return ([job] for job in jobs)

    def process(self, jobs: list, pipe, clock=None,
                progress: Optional[Callable[[int, int], None]] = None) -> list[Outcome]:
        """Each frame of the batch colourised, super-resolved in tiles and streamed to its output.

        Args:
            progress: called with (tiles done, tiles total) of the frame being made.
        """
        import os

        from data.io import ImageReadError
        from pipeline.full import process_full

        outcomes = []
        for index, job in enumerate(jobs):
            try:
                fidelity, was_colour = process_full(job.source, job.output, pipe.colorizer, pipe.upscaler,
                                                    pipe.scale, self.options, progress, self.config.consistency,
                                                    clock)
            except ImageReadError as e:
                outcomes.append(Outcome(index, reason=e.reason))
                continue
            except OSError as e:
                outcomes.append(write_failure(index, e))
                if is_fatal(e):
                    break
                continue
            extra = ([os.path.splitext(job.output)[0] + "_residual.png"]
                     if self.options.report and self.options.residual_map else [])
            outcomes.append(Outcome(index, extra=extra, was_colour=was_colour, fidelity=fidelity))
        return outcomes

    def steps(self, jobs: Sequence, pipe, clock=None, progress=None) -> Iterator[Step]:
        """`process` frame by frame (each frame's band prefetch is its own overlap)."""
        for batch in self.batches(jobs):
            outcomes = self.process(batch, pipe, clock, progress)
            yield len(batch), [(batch[o.job], o) for o in outcomes]

    def closing_notes(self, colour_inputs: int) -> list[str]:
        return []  # each colour input has had its own note (`pipeline.outcome.account`)


def mode_of(config: RunConfig):
    """The `Faithful` or `Full` mode of a run."""
    return Full(config) if config.mode == "full" else Faithful(config)
