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
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for topology, cases in by_file.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=Path(topology).stem,
            tests=str(len(cases)),
            failures=str(sum(not c.ok for c in cases)),
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


def summary_table(results: list[CaseResult]) -> str:
    header = ("TOPOLOGY", "CASE", "RESULT", "SECONDS")
    rows = [header] + [
        (Path(r.topology).stem, r.name, "pass" if r.ok else "FAIL", f"{r.seconds:.1f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    passed = sum(r.ok for r in results)
    lines.append(f"{passed}/{len(results)} passed in {sum(r.seconds for r in results):.1f}s")
    return "\n".join(lines) + "\n"
