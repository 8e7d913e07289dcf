"""One labctl at a time per lab (issue 8: a second `up` tore down the first one's build)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.lifecycle import LabBusy, LabState, down, lab_lock
from labctl.lifecycle.lock import lock_file, lock_holder
from labctl.progress import Progress

from .fakes import FakeLab, seed_variant

ROOT = Path(__file__).resolve().parents[3]
lock_module = importlib.import_module("labctl.lifecycle.lock")

HOLDER = """
import sys, time
from labctl.lifecycle import lab_lock
with lab_lock(sys.argv[1], "labctl up"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def other_process_holds(fake_lab: FakeLab) -> Iterator[subprocess.Popen]:
    """Another labctl process in the middle of `up` of lab u-busy."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "u-busy"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_up_fails_busy_and_touches_nothing(
    fake_lab: FakeLab, other_process_holds: subprocess.Popen, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("LABCTL_LOCK_WAIT", "0.3")
    lab = seed_variant(tmp_path, "u-busy")
    with pytest.raises(LabBusy) as error:
        fake_lab.up(lab)
    assert str(error.value) == (
        f"lab u-busy is busy: `labctl up` (pid {other_process_holds.pid}) is running"
    )
    assert fake_lab.runtime.calls == []
    assert not LabState.of("u-busy").exists()


def test_down_fails_busy_too_and_removes_nothing(
    fake_lab: FakeLab, other_process_holds: subprocess.Popen, monkeypatch
) -> None:
    monkeypatch.setenv("LABCTL_LOCK_WAIT", "0.2")
    LabState.of("u-busy").create()  # what the other process's `up` has made so far
    with pytest.raises(LabBusy, match=r"^lab u-busy is busy: `labctl up` \(pid \d+\) is running$"):
        down("u-busy", fake_lab.runtime, Progress(quiet=True))
    assert fake_lab.runtime.calls == []
    assert LabState.of("u-busy").exists()


def test_the_lock_is_free_again_when_its_holder_dies(
    fake_lab: FakeLab, other_process_holds: subprocess.Popen
) -> None:
    holder = lock_holder("u-busy")
    assert holder is not None and holder.pid == other_process_holds.pid
    other_process_holds.kill()
    other_process_holds.wait()
    assert lock_holder("u-busy") is None
    with lab_lock("u-busy", "labctl up", wait=0):
        pass


def test_the_lock_is_re_entrant_within_one_process(fake_lab: FakeLab) -> None:
    with lab_lock("u-nest", "labctl up"), lab_lock("u-nest", "labctl down", wait=0):
        assert lock_file("u-nest").read_text().strip() == f"{os.getpid()} labctl up"
    assert lock_holder("u-nest") is None


def test_the_lock_file_lives_outside_the_state_dir_and_goes_with_the_lab(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    lab = seed_variant(tmp_path, "u-lockdir")
    fake_lab.up(lab)
    state = LabState.of("u-lockdir")
    assert state.directory not in lock_file("u-lockdir").parents
    assert lock_file("u-lockdir").exists(), "kept while the lab exists"
    down("u-lockdir", fake_lab.runtime, Progress(quiet=True))
    assert not state.exists()
    assert not lock_file("u-lockdir").exists()


TRY_LOCK = """
import sys
from labctl.lifecycle import LabBusy, lab_lock
try:
    with lab_lock(sys.argv[1], "labctl up", wait=0):
        print("got it")
except LabBusy as exc:
    print(exc)
"""


class _RemovedAfterOpen:
    """`os` for the lock module, where the first lock file opened is removed right after
    (as by a holder that released a lab that is gone, between our open and our flock)."""

    def __init__(self) -> None:
        self.removed = False

    def __getattr__(self, name: str):
        return getattr(os, name)

    def open(self, path, flags, mode=0o777):
        fd = os.open(path, flags, mode)
        if not self.removed and flags & os.O_CREAT:
            self.removed = True
            os.unlink(path)
        return fd


def test_a_lock_on_a_removed_lock_file_is_not_a_lock(
    fake_lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """We must end up holding the file at the path, or a third labctl could lock that one
    at the same time."""
    fake_os = _RemovedAfterOpen()
    monkeypatch.setattr(lock_module, "os", fake_os)
    with lab_lock("u-gone", "labctl up", wait=1):
        assert fake_os.removed
        third = subprocess.run(
            [sys.executable, "-c", TRY_LOCK, "u-gone"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert third.stdout.strip() == (
            f"lab u-gone is busy: `labctl up` (pid {os.getpid()}) is running"
        ), third
