"""Atomic file writes: readers never see a partial file, and a failed write leaves the old one.

Used by everything that writes user-visible files (data preparation, exports,
pipeline outputs, reports, training configs); nothing here trains or reads flags.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile


def _plain_file_mode() -> int:
    """0666 less the umask: what a plain open() would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_file(path: str):
    """Opens a temporary file beside `path` for binary writing; renames it over `path` on success.

    Readers never see a partial file: the data is flushed and fsynced, then the
    temporary file is renamed (atomic on POSIX). On any error the temporary file
    is removed and `path` is untouched.

    Yields:
        The open binary file object.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # The writer's pid is in the name, so clean-up of stale temporaries can
    # tell a killed run's leftovers from a concurrent run's live file.
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=os.path.basename(path), dir=directory)
    os.close(fd)
    try:
        # Opened by name so the file object's .name is a path (some writers need it).
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; give the result a plain file's permissions.
        os.chmod(tmp, _plain_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def temporary_owner_alive(name: str) -> bool:
    """Whether the process that made the `atomic_file` temporary `name` (`.tmp-<pid>-...`) still runs.

    False for a temporary without a pid (written before pids were recorded)
    or whose process is gone; True for this process and for a live one (also
    one of another user, which `os.kill(pid, 0)` reports as PermissionError).
    """
    match = re.match(r"\.tmp-(\d+)-", name)
    if not match:
        return False
    pid = int(match[1])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def atomic_write_bytes(path: str, payload: bytes) -> None:
    """Writes `payload` to `path` so that readers never see a partial file (see `atomic_file`)."""
    with atomic_file(path) as f:
        f.write(payload)


__all__ = ["atomic_file", "atomic_write_bytes", "temporary_owner_alive"]
