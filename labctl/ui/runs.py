"""Test runs under the reports folder: live ones (events.jsonl still growing) and past
ones (their JUnit results and the artifacts failed cases left)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks.events import EVENTS_FILE, read_events

MAX_DEPTH = 3
ROOT_RUN = "-"  # the reports folder itself (`labctl test` writes there by default)


def run_folder(root: Path, run_id: str) -> Path:
    return root if run_id == ROOT_RUN else root / run_id


@dataclass
class RunSummary:
    run_id: str  # the folder, relative to the reports root ("." for the root itself)
    folder: Path
    live: bool
    started: float | None
    cases: list[str] = field(default_factory=list)
    passed: int = 0
    failed: int = 0


def find_runs(root: Path) -> list[RunSummary]:
    """Every folder under root (3 levels deep) with a JUnit file or an events file."""
    if not root.is_dir():
        return []
    folders = {root}
    for depth in range(1, MAX_DEPTH + 1):
        folders |= {p for p in root.glob("/".join(["*"] * depth)) if p.is_dir()}
    runs = []
    for folder in sorted(folders):
        events_file = folder / EVENTS_FILE
        junit = folder / "junit.xml"
        if not events_file.exists() and not junit.exists():
            continue
        runs.append(summarize_run(root, folder))
    return sorted(runs, key=lambda r: -(r.started or 0))


def summarize_run(root: Path, folder: Path) -> RunSummary:
    events = read_events(folder / EVENTS_FILE)
    start = next((e for e in events if e.get("type") == "run"), None)
    done = next((e for e in reversed(events) if e.get("type") == "run-done"), None)
    run_id = folder.relative_to(root).as_posix()
    run_id = ROOT_RUN if run_id == "." else run_id
    summary = RunSummary(
        run_id,
        folder,
        live=start is not None and done is None,
        started=start["time"] if start else _mtime(folder / "junit.xml"),
        cases=list(start.get("cases") or []) if start else [],
    )
    if done is not None:
        summary.passed, summary.failed = int(done.get("passed", 0)), int(done.get("failed", 0))
    else:
        results = junit_results(folder / "junit.xml")
        summary.passed = sum(r["ok"] for r in results)
        summary.failed = sum(not r["ok"] for r in results)
    return summary


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def junit_results(path: Path) -> list[dict[str, Any]]:
    """Test cases of a JUnit file: suite, name, ok, seconds, message, details, output."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return []
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    results = []
    for suite in suites:
        for case in suite.findall("testcase"):
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            output = case.find("system-out")
            results.append(
                {
                    "suite": suite.get("name", ""),
                    "name": case.get("name", ""),
                    "ok": failure is None,
                    "seconds": float(case.get("time") or 0),
                    "message": failure.get("message", "") if failure is not None else "",
                    "details": (failure.text or "") if failure is not None else "",
                    "output": (output.text or "") if output is not None else "",
                }
            )
    return results


def artifacts_of(folder: Path, suite: str, case: str) -> list[str]:
    """Files a failed case left (reports/artifacts/<topology>.<case>/...), relative paths."""
    directory = folder / "artifacts" / f"{suite}.{case}"
    if not directory.is_dir():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in directory.rglob("*") if p.is_file())


def live_view(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a run is: every case so far with its steps and expectations (expected, the
    latest observation, verdict), the current one last."""
    cases: list[dict[str, Any]] = []
    for event in events:
        kind = event.get("type")
        if kind == "case":
            cases.append(
                {
                    "id": f"{event['topology']}::{event['case']}",
                    "lab": event.get("lab"),
                    "steps": [],
                    "state": "running",
                    "message": "",
                }
            )
        elif not cases:
            continue
        elif kind == "step":
            cases[-1]["steps"].append(
                {"kind": event["kind"], "title": event["title"], "checks": [], "log": []}
            )
        elif kind == "log" and cases[-1]["steps"]:
            cases[-1]["steps"][-1]["log"].append(event["line"])
        elif kind == "expect" and cases[-1]["steps"]:
            cases[-1]["steps"][-1]["checks"].append(
                {
                    "title": event["title"],
                    "expected": event.get("expected", ""),
                    "observed": "",
                    "state": "waiting",
                }
            )
        elif kind in ("observed", "expect-done") and cases[-1]["steps"]:
            checks = cases[-1]["steps"][-1]["checks"]
            if checks:
                checks[-1]["observed"] = event.get("observed", "")
                checks[-1]["details"] = event.get("details", [])
                if kind == "expect-done":
                    checks[-1]["state"] = "ok" if event.get("ok") else "FAIL"
        elif kind == "case-done":
            cases[-1]["state"] = "PASS" if event.get("ok") else "FAIL"
            cases[-1]["message"] = event.get("message", "")
            cases[-1]["seconds"] = event.get("seconds")
    return {"cases": cases}
