"""Which input each output came from: one append-only manifest in `--output`.

`--skip_existing` must know that `a_colour_x4.png` was made from *this* `a.png`
(same real path, same size, same modification time), not just that a file of
that name exists; and when `--output` is the input folder, the tool's own
outputs must never be taken as inputs. Both read `.colourise-manifest.jsonl`:
one JSON object per line,

    {"output": "sub/a_colour_x4.png", "extra": ["sub/a_colour224.png"],
     "source": "/real/path/in/sub/a.png", "size": 1234, "mtime_ns": 1700000000000000000}

with paths relative to `--output` (so the folder can be moved). Lines are
appended with one `write` under an exclusive `flock`, after the output itself
was renamed into place: two runs on the same folder never lose each other's
lines, and a run killed mid-line leaves a partial last line that readers
ignore (its output is then simply made again). The last line for an output wins.
"""
from __future__ import annotations

import fcntl
import json
import os
from typing import Iterable, Optional

MANIFEST_NAME = ".colourise-manifest.jsonl"


def source_stamp(path: str) -> Optional[dict]:
    """`{"source", "size", "mtime_ns"}` of an input file (real path), or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"source": os.path.realpath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_manifest(output_dir: str) -> dict[str, dict]:
    """The manifest of `output_dir`: output path (absolute, real) -> its latest entry; {} when none.

    Entries gain `"extra_abs"`: the absolute real paths of the other files
    written with that output (intermediate, residual map).
    """
    path = os.path.join(output_dir, MANIFEST_NAME)
    root = os.path.realpath(output_dir)
    entries: dict[str, dict] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return entries
    for line in lines:
        try:
            entry = json.loads(line)
            out = os.path.join(root, entry["output"])
            entry["extra_abs"] = [os.path.join(root, e) for e in entry.get("extra", [])]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a killed run, or not ours
        entries[out] = entry
    return entries


def recorded_outputs(entries: dict[str, dict]) -> set[str]:
    """Every file (absolute real path) the manifest says this tool wrote."""
    files = set(entries)
    for entry in entries.values():
        files.update(entry["extra_abs"])
    return files


def is_up_to_date(output: str, source: str, entries: dict[str, dict]) -> bool:
    """True when `output` exists and the manifest says it was made from `source` as it is now."""
    entry = entries.get(os.path.realpath(output))
    now = source_stamp(source)
    if entry is None or now is None or not os.path.isfile(output):
        return False
    return all(entry.get(k) == now[k] for k in ("source", "size", "mtime_ns"))


def record(output_dir: str, items: Iterable[tuple[str, str, list]]) -> None:
    """Appends one line per `(source, output, extra_files)` just written (see the module docstring).

    Raises:
        OSError: the manifest cannot be written (the caller treats it like a failed output write).
    """
    root = os.path.realpath(output_dir)
    lines = []
    for source, output, extra in items:
        entry = source_stamp(source) or {"source": os.path.realpath(source)}
        entry["output"] = os.path.relpath(os.path.realpath(output), root)
        entry["extra"] = [os.path.relpath(os.path.realpath(e), root) for e in extra if e]
        lines.append(json.dumps(entry, ensure_ascii=True, sort_keys=True) + "\n")
    if not lines:
        return
    payload = "".join(lines).encode("ascii")
    fd = os.open(os.path.join(output_dir, MANIFEST_NAME), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, payload)
    finally:
        os.close(fd)  # also releases the lock
