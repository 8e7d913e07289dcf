"""`labctl test`: run a topology's expectations and scenarios, each on a fresh lab.

A topology's top-level `expect` runs on a lab brought up for it; each scenario then gets
a lab of its own (scenarios change state: configs, NAT mappings, restarts). With
`keep=True` everything runs, in order, on the lab already up, which stays up.
"""

from __future__ import annotations

import re
import secrets
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..lifecycle import LabHandle, down, lab_lock, up
from ..progress import Progress
from ..runtime import Runtime
from ..topology import Lab, TopologyError, load_lab
from ..topology.checks_model import Step
from ..topology.files import MAX_TOPOLOGY_BYTES, FileReadError, decode_text, read_limited
from ..topology.secrets import redact
from .artifacts import Captures, save_failure_artifacts
from .events import RunEvents
from .steps import StepFailed, StepLog, not_applying, run_step


@dataclass
class CaseResult:
    topology: str
    name: str
    ok: bool
    seconds: float
    message: str = ""
    details: str = ""
    log: list[str] = field(default_factory=list)
    artifacts: str | None = None
    traceback: str = ""  # a labctl bug's traceback (JUnit carries it; the terminal does not)
    # --matrix: why this combination of implementations cannot run (ok, never run)
    not_applicable: str | None = None


def discover(paths: list[Path]) -> list[Path]:
    """Topology files to test: given files, and every *.yaml with checks in given folders."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for candidate in sorted(path.glob("*.yaml")):
                try:
                    text = decode_text(read_limited(candidate, MAX_TOPOLOGY_BYTES))
                except FileReadError:
                    found.append(candidate)  # its case reports why it cannot be read
                    continue
                if re.search(r"^(expect|scenarios):", text, re.MULTILINE):
                    found.append(candidate)
        else:
            found.append(path)
    return found


def _lab_name(lab: Lab, tag: str, prefix: str = "t") -> str:
    """A fresh lab's name: the prefix and a random part first (they must survive the
    24-character limit: two cases must never share a lab), then what it is for."""
    tag = re.sub(r"[^a-z0-9-]", "", tag.lower())  # 'rekey#2': a repeat's mark is no name part
    return f"{prefix}-{secrets.token_hex(2)}-{lab.name}-{tag}"[:24].rstrip("-")


@dataclass(frozen=True)
class Case:
    """One case of a topology: its top-level `expect`, or one scenario. A topology that
    cannot be run (invalid, nothing to check) is one case too, carrying its problem."""

    path: Path
    name: str
    steps: tuple[Step, ...] = ()
    problem: tuple[str, str] | None = None  # (message, details)
    # the scenario's `not-applicable` entry that matches the lab's implementations
    not_applicable: str | None = None

    @property
    def id(self) -> str:
        """Stable across machines and checkouts (no absolute path): what shards split."""
        return f"{self.path.stem}::{self.name}"


class TopologyRun:
    def __init__(
        self,
        path: Path,
        runtime: Runtime,
        report_dir: Path,
        progress: Progress,
        keep: bool = False,
        lab_name: str | None = None,
        only: list[str] | None = None,
        lab_prefix: str = "t",
        events: RunEvents | None = None,
        lab: Lab | None = None,
        label: str = "",
    ):
        self.path = path
        self.runtime = runtime
        self.report_dir = report_dir
        self.progress = progress
        self.keep = keep
        self.lab_name = lab_name
        self.only = only
        self.lab_prefix = lab_prefix
        self.events = events or RunEvents()
        self.results: list[CaseResult] = []
        # --matrix: the lab of one combination of implementations, named in every case
        self._preset = lab
        self.label = label
        self._lab: Lab | None = None

    def cases(self) -> list[Case]:
        """The cases this topology holds (after --scenario filtering), in file order."""
        try:
            self._lab = self._preset or load_lab(self.path)
        except TopologyError as exc:
            return [Case(self.path, "validate", problem=("invalid topology", str(exc)))]
        lab = self._lab
        cases: list[Case] = []
        if lab.spec.expect:
            cases.append(Case(self.path, self.case_name("expect"), (Step(expect=lab.spec.expect),)))
        for name, scenario in lab.spec.scenarios.items():
            if self.only and name not in self.only:
                continue
            reason = next(
                (n.reason for n in scenario.not_applicable if not_applying(n.when, lab) is None),
                None,
            )
            cases.append(
                Case(self.path, self.case_name(name), tuple(scenario.steps), not_applicable=reason)
            )
        if not cases:
            return [
                Case(self.path, "checks", problem=("the topology has no expect or scenarios", ""))
            ]
        return cases

    def case_name(self, name: str) -> str:
        return f"{name} [{self.label}]" if self.label else name

    def run(self, selected: list[Case] | None = None, repeat: int = 1) -> list[CaseResult]:
        """Run `selected` cases (default: all) `repeat` times each; a repeated case's
        results are named 'case#2', 'case#3' ... (the first keeps its name)."""
        cases = self.cases() if selected is None else selected
        runnable = []
        for case in cases:
            if case.not_applicable is not None:
                self.results.append(
                    CaseResult(
                        str(self.path), case.name, True, 0.0, not_applicable=case.not_applicable
                    )
                )
            elif case.problem is not None:
                message, details = case.problem
                self.results.append(
                    CaseResult(str(self.path), case.name, False, 0.0, message, details)
                )
            else:
                runnable += [(case, attempt) for attempt in range(1, repeat + 1)]
        if not runnable:
            return self.results
        assert self._lab is not None
        if self.keep:
            self._run_on_running_lab(self._lab, runnable)
        else:
            for case, attempt in runnable:
                self._run_on_fresh_lab(
                    self._lab, _attempt_name(case.name, attempt), list(case.steps)
                )
        return self.results

    def _run_on_fresh_lab(self, lab: Lab, case: str, steps: list[Step]) -> None:
        named = Lab(
            spec=lab.spec.model_copy(update={"name": _lab_name(lab, case[:6], self.lab_prefix)}),
            source=lab.source,
        )
        started = time.monotonic()
        handle = None
        try:
            handle = up(named, self.runtime, Progress(self.progress.stream, quiet=True))
            self._run_case(handle, case, steps, started)
        except Exception as exc:  # the lab did not come up: the case fails, others go on
            if handle is None:
                self.results.append(
                    CaseResult(
                        str(self.path),
                        case,
                        False,
                        time.monotonic() - started,
                        f"lab did not come up: {exc}",
                    )
                )
            else:
                raise
        finally:
            if handle is not None:
                handle.close()
            down(named.name, self.runtime, Progress(self.progress.stream, quiet=True))

    def _run_on_running_lab(self, lab: Lab, cases: list[tuple[Case, int]]) -> None:
        name = self.lab_name or lab.name
        named = Lab(spec=lab.spec.model_copy(update={"name": name}), source=lab.source)
        # Held through the scenarios too: their pushes and restarts must not interleave
        # with another labctl's up or down of this lab.
        with lab_lock(name, "labctl test --keep"):
            handle = up(named, self.runtime, Progress(self.progress.stream, quiet=True))
            try:
                for case, attempt in cases:
                    name = _attempt_name(case.name, attempt)
                    self._run_case(handle, name, list(case.steps), time.monotonic())
            finally:
                handle.close()

    def _run_case(self, handle: LabHandle, case: str, steps: list[Step], started: float) -> None:
        log = StepLog(events=self.events)
        case_dir = self.report_dir / "artifacts" / f"{self.path.stem}.{case}"
        captures = Captures(handle, case_dir / "captures")
        captures.start()
        self.progress.say(f"{self.path.name} :: {case} ...")
        self.events.emit(
            "case", topology=self.path.stem, case=case, lab=handle.lab.name, steps=len(steps)
        )
        try:
            for step in steps:
                run_step(step, handle, log)
        except StepFailed as exc:
            captures.stop()
            save_failure_artifacts(handle, case_dir)
            details = exc.outcome.text() if exc.outcome else ""
            result = CaseResult(
                str(self.path),
                case,
                False,
                time.monotonic() - started,
                str(exc),
                details,
                log.lines,
                str(case_dir),
            )
        except Exception as exc:
            captures.stop()
            save_failure_artifacts(handle, case_dir)
            # A bug, not a failed expectation: where it happened matters, in a file (and in
            # JUnit for CI), not on the terminal.
            trace = case_dir / "traceback.txt"
            case_dir.mkdir(parents=True, exist_ok=True)
            trace.write_text(redact(traceback.format_exc()))
            result = CaseResult(
                str(self.path),
                case,
                False,
                time.monotonic() - started,
                f"error: {type(exc).__name__}: {exc}",
                f"traceback: {trace}",
                log.lines,
                str(case_dir),
                traceback=trace.read_text(),
            )
        else:
            captures.discard()
            result = CaseResult(
                str(self.path), case, True, time.monotonic() - started, log=log.lines
            )
            _remove_if_empty(case_dir)
            _remove_if_empty(case_dir.parent)  # no failure so far: no artifacts folder
        verdict = "PASS" if result.ok else "FAIL"
        self.events.emit(
            "case-done",
            topology=self.path.stem,
            case=case,
            ok=result.ok,
            seconds=round(result.seconds, 1),
            message=result.message,
            artifacts=result.artifacts,
        )
        self.progress.say(f"{self.path.name} :: {case} {verdict} ({result.seconds:.1f}s)")
        if not result.ok:
            for line in redact(result.message + "\n" + result.details).strip().splitlines():
                self.progress.say(f"    {line}")
            if result.artifacts:
                self.progress.say(f"    artifacts: {result.artifacts}")
        self.results.append(result)


def _attempt_name(name: str, attempt: int) -> str:
    return name if attempt == 1 else f"{name}#{attempt}"


def _remove_if_empty(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True) if directory.exists() else []:
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if directory.exists() and not any(directory.iterdir()):
        directory.rmdir()
