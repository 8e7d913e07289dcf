"""One labctl at a time per lab: an fcntl lock held by up, down, push and restart.

Without it a second `labctl up` of a lab being built saw it "incomplete" and tore it down.
The lock files live in <state root>/locks/ (beside the labs' state dirs, never inside the
directory `down` removes). The last holder removes the file when the lab is gone (no state
dir), still holding the lock; a waiter that then gets the lock on the removed file notices
(its inode is no longer the path's) and starts over, so two holders never exist. The holder
writes its pid and operation into the file so a waiting command can say who is busy.
Re-entrant within one process: `up` calls `down` and `push_node`, which take the same lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..naming import check_lab_name, lock_root, state_dir
from .errors import LabBusy

DEFAULT_WAIT = 5.0  # seconds; LABCTL_LOCK_WAIT overrides


@dataclass(frozen=True)
class LockHolder:
    pid: int | None
    operation: str

    def describe(self) -> str:
        return f"`{self.operation}` (pid {self.pid if self.pid else 'unknown'}) is running"


@dataclass
class _Held:
    fd: int
    depth: int


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


def lock_file(lab: str) -> Path:
    return lock_root() / f"{check_lab_name(lab)}.lock"


def _wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("LABCTL_LOCK_WAIT", DEFAULT_WAIT)))
    except ValueError:
        return DEFAULT_WAIT


def _read_holder(path: Path) -> LockHolder:
    try:
        pid_text, _, operation = path.read_text().strip().partition(" ")
        return LockHolder(int(pid_text), operation or "labctl")
    except (OSError, ValueError):
        return LockHolder(None, "labctl")  # the holder has not written its line yet


@contextlib.contextmanager
def lab_lock(lab: str, operation: str, wait: float | None = None) -> Iterator[None]:
    """Hold the lab's lock; wait up to `wait` seconds for it, then raise LabBusy."""
    with _held_guard:
        held = _held.get(lab)
        if held is not None:
            held.depth += 1
    if held is not None:
        try:
            yield
        finally:
            _release(lab)
        return
    path = lock_file(lab)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    deadline = time.monotonic() + (_wait_seconds() if wait is None else wait)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                holder = _read_holder(path)
                raise LabBusy(f"lab {lab} is busy: {holder.describe()}") from None
            time.sleep(0.1)
            continue
        if _is_current(fd, path):
            break
        os.close(fd)  # the holder before us removed this file: lock the new one
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {operation}\n".encode(), 0)
    with _held_guard:
        _held[lab] = _Held(fd, 1)
    try:
        yield
    finally:
        _release(lab)


def _release(lab: str) -> None:
    with _held_guard:
        held = _held[lab]
        held.depth -= 1
        if held.depth:
            return
        del _held[lab]
    os.ftruncate(held.fd, 0)
    if not state_dir(lab).exists():  # the lab is gone: so is its lock file (still held)
        with contextlib.suppress(FileNotFoundError):
            lock_file(lab).unlink()
    fcntl.flock(held.fd, fcntl.LOCK_UN)
    os.close(held.fd)


def _is_current(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def lock_holder(lab: str) -> LockHolder | None:
    """Who holds the lab's lock now (another process), or None when nobody does."""
    path = lock_file(lab)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path)
    finally:
        os.close(fd)  # closing drops the shared lock we may have taken
    return None
