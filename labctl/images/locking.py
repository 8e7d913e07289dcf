"""File locks (fcntl.flock) so concurrent labctl processes build each image only once.

Two `labctl up` at once, or two test processes, may both find an image missing. Each takes
the image tag's lock; the first builds, the second waits, then re-checks and finds the
image there. flock locks die with their process, so a killed build never leaves a stale
lock behind. Lock files are never deleted: deleting one while another process waits on it
would let a third process lock a new file of the same name.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(
    path: Path, *, blocking: bool = True, on_wait: Callable[[], None] | None = None
) -> Iterator[bool]:
    """Hold an exclusive lock on `path` for the `with` block.

    Yields True once the lock is held. With blocking=False, yields False instead of
    waiting when another process holds it. `on_wait` is called once before a blocking wait
    (to tell the user why nothing moves).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                yield False
                return
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        # the holder's pid, for whoever wonders why a build waits
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield True
    finally:
        os.close(fd)


def lock_holder(path: Path) -> str | None:
    """The pid recorded by the last holder of a lock file (it may have exited since)."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def build_once(
    lock_path: Path,
    is_present: Callable[[], bool],
    build: Callable[[], None],
    on_wait: Callable[[], None] | None = None,
) -> bool:
    """Run `build` unless `is_present()`; under the lock, so only one process builds.

    Returns True if this call built. The presence check runs again after the lock is taken:
    the process we waited for has usually just built the same thing.
    """
    if is_present():
        return False
    with file_lock(lock_path, on_wait=on_wait):
        if is_present():
            return False
        build()
        return True
