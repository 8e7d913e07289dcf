"""File locks across real processes: one builder at a time, locks die with their holder."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

from labctl.images.locking import build_once, file_lock, lock_holder

# fork keeps the test's sys.path; the children only touch files
_ctx = multiprocessing.get_context("fork")


def _contending_builder(lock: str, marker: str, builds: str, start_at: float) -> None:
    marker_path, builds_path = Path(marker), Path(builds)

    def build() -> None:
        time.sleep(0.3)  # long enough that the others reach the lock meanwhile
        with open(builds_path, "a") as out:
            out.write(f"{os.getpid()}\n")
        marker_path.write_text("built")

    while time.monotonic() < start_at:  # start together
        time.sleep(0.001)
    build_once(Path(lock), marker_path.exists, build)


def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    lock, marker, builds = tmp_path / "locks/x.lock", tmp_path / "marker", tmp_path / "builds"
    start_at = time.monotonic() + 0.3
    args = (str(lock), str(marker), str(builds), start_at)
    procs = [_ctx.Process(target=_contending_builder, args=args) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert len(builds.read_text().splitlines()) == 1
    assert marker.read_text() == "built"


def test_build_once_skips_when_present(tmp_path: Path) -> None:
    calls: list[str] = []
    built = build_once(tmp_path / "l.lock", lambda: True, lambda: calls.append("build"))
    assert built is False and calls == []
    built = build_once(tmp_path / "l.lock", lambda: False, lambda: calls.append("build"))
    assert built is True and calls == ["build"]


def _hold_lock(lock: str, ready, release) -> None:
    with file_lock(Path(lock)):
        ready.set()
        release.wait(30)


def test_nonblocking_lock_sees_a_holder_and_waiters_are_told(tmp_path: Path) -> None:
    lock = tmp_path / "held.lock"
    ready, release = _ctx.Event(), _ctx.Event()
    holder = _ctx.Process(target=_hold_lock, args=(str(lock), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        assert lock_holder(lock) == str(holder.pid)
        with file_lock(lock, blocking=False) as locked:
            assert locked is False
        waited: list[bool] = []
        _release_later(release, 0.2)
        started = time.monotonic()
        with file_lock(lock, on_wait=lambda: waited.append(True)) as locked:
            assert locked is True
            assert time.monotonic() - started >= 0.15
        assert waited == [True]
    finally:
        release.set()
        holder.join(10)


def _release_later(event, delay: float) -> None:
    import threading

    threading.Timer(delay, event.set).start()


def test_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    lock = tmp_path / "killed.lock"
    ready, release = _ctx.Event(), _ctx.Event()
    holder = _ctx.Process(target=_hold_lock, args=(str(lock), ready, release))
    holder.start()
    assert ready.wait(10)
    with file_lock(lock, blocking=False) as locked:
        assert locked is False
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    with file_lock(lock, blocking=False) as locked:
        assert locked is True
