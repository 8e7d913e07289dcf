"""JUnit XML for CI dashboards: a testsuite per topology file, a testcase per case."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from ..topology.secrets import redact
from .runner import CaseResult


def write_junit(results: list[CaseResult], path: Path) -> None:
    by_file: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_file[result.topology].append(result)
    root = ET.Element(
        "testsuites",
        name="labctl",
        tests=str(len(results)),
        failures=str(sum(not r.ok for r in results)),
        skipped=str(sum(r.not_applicable is not None for r in results)),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for topology, cases in by_file.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=Path(topology).stem,
            tests=str(len(cases)),
            failures=str(sum(not c.ok for c in cases)),
            skipped=str(sum(c.not_applicable is not None for c in cases)),
            time=f"{sum(c.seconds for c in cases):.3f}",
        )
        for case in cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=Path(topology).stem,
                name=case.name,
                time=f"{case.seconds:.3f}",
            )
            if case.not_applicable is not None:
                ET.SubElement(
                    element,
                    "skipped",
                    message=redact(f"not applicable: {case.not_applicable}"[:500]),
                )
            # Messages may quote anything a step or an exception said: no secret leaves.
            if not case.ok:
                failure = ET.SubElement(element, "failure", message=redact(case.message[:500]))
                failure.text = redact(
                    case.details
                    + (f"\nartifacts: {case.artifacts}" if case.artifacts else "")
                    + (f"\n{case.traceback}" if case.traceback else "")
                )
            if case.log:
                ET.SubElement(element, "system-out").text = redact("\n".join(case.log))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


class JunitMergeError(ValueError):
    pass


def merge_junit(paths: list[Path], out: Path) -> tuple[int, int]:
    """One JUnit file from several (the shards of a run): suites of the same name are
    joined, totals recomputed. Returns (tests, failures+errors)."""
    suites: dict[str, ET.Element] = {}
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise JunitMergeError(f"{path}: not a JUnit XML file ({exc})") from None
        found = [root] if root.tag == "testsuite" else root.findall("testsuite")
        if root.tag not in ("testsuite", "testsuites"):
            raise JunitMergeError(f"{path}: root element <{root.tag}>, not <testsuites>")
        for suite in found:
            name = suite.get("name", path.stem)
            merged = suites.setdefault(name, ET.Element("testsuite", name=name))
            merged.extend(suite.findall("testcase"))
    root = ET.Element("testsuites", name="labctl")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    for suite in suites.values():
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(c.find("failure") is not None for c in cases),
            "errors": sum(c.find("error") is not None for c in cases),
            "skipped": sum(c.find("skipped") is not None for c in cases),
            "time": sum(float(c.get("time") or 0) for c in cases),
        }
        for key, value in counts.items():
            suite.set(key, f"{value:.3f}" if key == "time" else str(value))
            totals[key] += value
        root.append(suite)
    for key, value in totals.items():
        root.set(key, f"{value:.3f}" if key == "time" else str(value))
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return int(totals["tests"]), int(totals["failures"] + totals["errors"])


def flaky_cases(results: list[CaseResult]) -> dict[str, tuple[int, int]]:
    """Cases run more than once (--repeat) that passed some times and failed others:
    '<topology>::<case>' -> (passed, runs)."""
    runs: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        runs[f"{Path(result.topology).stem}::{result.name.split('#')[0]}"].append(result.ok)
    return {
        case: (sum(oks), len(oks))
        for case, oks in runs.items()
        if len(oks) > 1 and len(set(oks)) > 1
    }


def _verdict(result: CaseResult) -> str:
    if result.not_applicable is not None:
        return "n/a"
    return "pass" if result.ok else "FAIL"


def summary_table(results: list[CaseResult]) -> str:
    header = ("TOPOLOGY", "CASE", "RESULT", "SECONDS")
    rows = [header] + [
        (Path(r.topology).stem, r.name, _verdict(r), f"{r.seconds:.1f}") for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    skipped = [r for r in results if r.not_applicable is not None]
    ran = [r for r in results if r.not_applicable is None]
    passed = sum(r.ok for r in ran)
    lines.append(f"{passed}/{len(ran)} passed in {sum(r.seconds for r in results):.1f}s")
    if skipped:
        lines.append(f"{len(skipped)} not applicable (counted apart, not run):")
        lines += [f"  {Path(r.topology).stem} :: {r.name}: {r.not_applicable}" for r in skipped]
    for case, (ok, runs) in sorted(flaky_cases(results).items()):
        lines.append(f"flaky: {case} passed {ok} of {runs} runs")
    return "\n".join(lines) + "\n"
