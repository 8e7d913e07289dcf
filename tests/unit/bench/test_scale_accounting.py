"""bench_scale's accounting: stage lines with labctl's CPU, per-container host processes
(shims, fuse-overlayfs) whose CPU is counted even when they exit mid-action, the report's
per-client rows (issue 13)."""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.progress import Progress

ROOT = Path(__file__).resolve().parents[3]


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


scale = _load("bench_scale_under_test", "bench_scale.py")
report = _load("bench_report_for_scale", "report.py")


def test_stage_lines_carry_wall_and_labctl_cpu_and_the_bench_reads_both() -> None:
    out = io.StringIO()
    progress = Progress(out)
    with progress.stage("nodes (3 containers)"):
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:  # burn CPU: the stage's cpu figure counts it
            pass
    line = out.getvalue().splitlines()[-1]
    assert "nodes (3 containers) done in" in line and "(cpu " in line
    wall = scale.stages_of(out.getvalue())
    cpu = scale.stages_of(out.getvalue(), 3)
    assert set(wall) == set(cpu) == {"nodes"}
    assert cpu["nodes"] >= 0.04 and wall["nodes"] >= cpu["nodes"] - 0.01
    # lines of an older labctl (no cpu figure) still give wall times, and no cpu
    old = "[  4.53s] links (3 segments) done in 1.08s\n"
    assert scale.stages_of(old) == {"links": 1.08} and scale.stages_of(old, 3) == {}


def test_pids_by_name_reads_proc_without_children() -> None:
    before = os.times()
    found = scale.pids_by_name("python3", "no-such-command")
    after = os.times()
    assert found["no-such-command"] == []
    assert after.children_user + after.children_system == pytest.approx(
        before.children_user + before.children_system
    )  # no pgrep: nothing this bench polls with is counted as labctl's CPU


def test_host_processes_count_a_process_that_exits_during_the_action(monkeypatch, tmp_path) -> None:
    # a stand-in for a shim that works, then exits while the action is still running;
    # its own command name, so no other process on the machine is counted with it
    burner = tmp_path / "scaleburn"
    shutil.copy("/bin/sh", burner)
    flag = tmp_path / "running"
    flag.touch()
    monkeypatch.setattr(scale, "PER_CONTAINER", ("scaleburn",))
    with scale.HostProcesses(since=scale.uptime()) as host:
        worker = subprocess.Popen([str(burner), "-c", f'while [ -e "{flag}" ]; do :; done'])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and host.last.get(worker.pid, ("", 0.0))[1] < 0.2:
            time.sleep(0.1)  # burn until a poll has seen it use CPU
        flag.unlink()
        worker.wait(10)
        assert scale.process_cpu_all(worker.pid) == 0.0  # gone: only the poller knew
        time.sleep(0.6)
    assert worker.returncode == 0
    assert host.used()["scaleburn"] >= 0.2  # counted though gone before the action ended


def test_report_rows_for_quiet_bound_down_cpu_and_agent_memory() -> None:
    data = {
        "when": "2026-12-03T07:00:00Z",
        "load_average": [5.0, 5.0, 5.0],
        "runs": {
            "ours": [
                {
                    "clients": 10,
                    "up_seconds": 14.0,
                    "sessions": 10,
                    "up_cpu_seconds": {"labctl": 2.0, "vpn-client": 5.0},
                    "up_quiet_bound_seconds": 3.5,
                    "down_cpu_per_container": 0.09,
                    "client_memory_mib": 32.6,
                    "client_memory_detail_mib": {"agent_rss": 28.5},
                }
            ]
        },
    }
    rows = {row.what: row for row in report.scale_rows(data)}
    assert rows["CPU for `up` per client (labctl, Docker, containers), 10"].ours == 0.7
    assert rows["`up`'s CPU / cores (the wall time on an idle machine), 10 clients"].ours == 3.5
    assert rows["CPU for `down` per container, 10 clients"].ours == 0.09
    assert rows["the client agent's resident memory, 10 clients"].ours == 28.5
    # no reference ran: no row claims one
    assert all(row.reference_is == "" and row.reference is None for row in rows.values())
