"""`labctl test --shard K/N` and `--repeat N`, `labctl junit-merge`, and the live events a
run writes: on the real CLI, runner and JUnit writer with the lab faked (as in
test_secrets_in_reports)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.checks import steps
from labctl.checks.events import read_events
from labctl.checks.shard import ShardError, parse_shard, shard_of
from labctl.cli.main import main
from labctl.ui.runs import live_view

from .test_secrets_in_reports import fake_lab, seed_without_expect  # noqa: F401 (a fixture)

SCENARIOS = """
expect:
  - within: 0.01
    client: {node: client1, all: {state: connected}}
scenarios:
""" + "".join(f"  s{i}:\n    steps:\n      - wait: 0.01\n" for i in range(7))


@pytest.fixture
def flaky_lab(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The faked lab of test_secrets_in_reports, with a probe whose client is flaky."""
    request.getfixturevalue("fake_lab")

    class Probe:  # client1 is 'connected' in every other run: a flaky expectation
        runs = 0

        def __init__(self, handle) -> None:
            Probe.runs += 1
            self.connected = Probe.runs % 2 == 1

        def table(self, node: str, what: str):
            return [{"state": "connected" if self.connected else "connecting"}]

    monkeypatch.setattr(steps, "LabProbe", Probe)


def topology(folder: Path, name: str = "lab") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        seed_without_expect().replace("name: nat-t-two-clients", f"name: {name}") + SCENARIOS
    )
    return path


def cases_in(junit: Path) -> list[str]:
    root = ET.parse(junit).getroot()
    return [f"{s.get('name')}::{c.get('name')}" for s in root for c in s.findall("testcase")]


def test_shards_split_every_case_once_the_same_way_each_time(flaky_lab, tmp_path: Path) -> None:
    files = [str(topology(tmp_path, "alpha")), str(topology(tmp_path, "beta"))]
    seen: list[list[str]] = []
    for k in (1, 2, 3):
        reports = tmp_path / f"shard{k}"
        main(["-q", "test", *files, "--shard", f"{k}/3", "--report-dir", str(reports)])
        seen.append(cases_in(reports / "junit.xml"))
    everything = sorted(case for shard in seen for case in shard)
    assert len(everything) == 16 and len(set(everything)) == 16  # 2 x (expect + 7)
    assert sorted(len(shard) for shard in seen) == [5, 5, 6]
    # Discovery order does not matter: files given the other way round, same shard 2.
    main(["-q", "test", *reversed(files), "--shard", "2/3", "--report-dir", str(tmp_path / "r")])
    assert sorted(cases_in(tmp_path / "r" / "junit.xml")) == sorted(seen[1])
    # The merge of the shards is the whole suite.
    merged = tmp_path / "merged.xml"
    shards = [str(tmp_path / f"shard{k}" / "junit.xml") for k in (1, 2, 3)]
    assert main(["junit-merge", "-o", str(merged), *shards]) == 0
    root = ET.parse(merged).getroot()
    assert sorted(cases_in(merged)) == everything
    assert root.get("tests") == "16" and sorted(s.get("name") for s in root) == ["alpha", "beta"]
    assert int(root.get("failures")) == sum(
        int(ET.parse(p).getroot().get("failures")) for p in shards
    )


def test_an_empty_shard_passes_and_bad_shards_are_refused(flaky_lab, tmp_path, capsys) -> None:
    file = str(topology(tmp_path))
    assert main(["-q", "test", file, "--scenario", "s0", "--shard", "3/3"]) == 0
    assert "nothing to run" in capsys.readouterr().out
    for bad in ("0/3", "4/3", "x", "1/0"):
        assert main(["test", file, "--shard", bad]) == 2
        assert "--shard" in capsys.readouterr().err


def test_shard_of_is_round_robin_over_sorted_ids() -> None:
    ids = ["b::x", "a::y", "c::z", "a::x"]
    assert shard_of(ids, ids, 1, 2) == ["b::x", "a::x"]  # sorted: a::x a::y b::x c::z
    assert shard_of(ids, ids, 2, 2) == ["a::y", "c::z"]
    assert parse_shard(" 2 / 5 ") == (2, 5)
    with pytest.raises(ShardError, match="share an id"):
        shard_of([1, 2], ["a::x", "a::x"], 1, 2)


def test_repeat_runs_each_case_n_times_and_names_flaky_ones(flaky_lab, tmp_path, capsys) -> None:
    file = str(topology(tmp_path))
    reports = tmp_path / "reports"
    status = main(
        ["test", file, "--scenario", "none", "--repeat", "4", "--report-dir", str(reports)]
    )
    out = capsys.readouterr().out
    assert cases_in(reports / "junit.xml") == [
        "lab::expect",
        "lab::expect#2",
        "lab::expect#3",
        "lab::expect#4",
    ]
    assert status == 1  # the probe alternates: some runs fail
    assert "flaky: lab::expect passed 2 of 4 runs" in out


def test_a_run_writes_live_events_the_console_follows(flaky_lab, tmp_path) -> None:
    file = str(topology(tmp_path))
    reports = tmp_path / "reports"
    main(["-q", "test", file, "--scenario", "s1", "--report-dir", str(reports)])
    events = read_events(reports / "events.jsonl")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run" and kinds[-1] == "run-done"
    assert events[0]["cases"] == ["lab::expect", "lab::s1"]
    assert "observed" in kinds and "expect-done" in kinds
    view = live_view(events)
    assert [c["id"] for c in view["cases"]] == ["lab::expect", "lab::s1"]
    check = view["cases"][0]["steps"][0]["checks"][0]
    assert check["title"] == "client client1" and "connected" in check["expected"]
    assert check["state"] in ("ok", "FAIL") and check["observed"]
    assert view["cases"][1]["steps"][0]["kind"] == "wait"
    json.dumps(view)  # what the page renders is plain data


def test_a_run_of_only_not_applicable_cases_fails_and_a_shard_of_them_passes(
    flaky_lab, tmp_path, capsys
) -> None:
    """A scenario's `not-applicable` matching the lab: reported n/a with its reason, never
    run; nothing shown to work fails the run, a shard of such cases does not."""
    path = tmp_path / "lab.yaml"
    text = topology(tmp_path).read_text()
    na = "    not-applicable:\n      - {when: {vpn3000: ours}, reason: known limit X}\n"
    expect = SCENARIOS[: SCENARIOS.index("scenarios:")]
    path.write_text(text.replace(expect, "\n").replace("  s0:\n", "  s0:\n" + na))
    assert main(["test", str(path), "--scenario", "s0", "--report-dir", str(tmp_path / "a")]) == 1
    out = capsys.readouterr().out
    assert "n/a" in out and "known limit X" in out and "nothing ran" in out
    shard = ["--shard", "1/1", "--report-dir", str(tmp_path / "b")]
    assert main(["test", str(path), "--scenario", "s0", *shard]) == 0
    assert "nothing to run" in capsys.readouterr().out
    both = ["--scenario", "s0", "--scenario", "s1", "--report-dir", str(tmp_path / "c")]
    main(["test", str(path), *both])
    out = capsys.readouterr().out
    assert "1 not applicable" in out and "nothing ran" not in out
