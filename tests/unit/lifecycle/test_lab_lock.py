"""One labctl at a time per lab (issue 8: a second `up` tore down the first one's build)."""

from __future__ import annotations

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


def test_the_lock_file_survives_down_outside_the_state_dir(
    fake_lab: FakeLab, tmp_path: Path
) -> None:
    lab = seed_variant(tmp_path, "u-lockdir")
    fake_lab.up(lab)
    state = LabState.of("u-lockdir")
    assert state.directory not in lock_file("u-lockdir").parents
    down("u-lockdir", fake_lab.runtime, Progress(quiet=True))
    assert not state.exists()
    assert lock_file("u-lockdir").exists()
