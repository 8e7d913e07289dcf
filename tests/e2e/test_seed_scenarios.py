"""The seed's scenarios (topologies/*.yaml) under `labctl test`, each case on a fresh lab.

One test per topology file, so a failure names the scenario; JUnit XML is the contract
(what CI dashboards read). Then "broken on purpose" variants: the key expectation of a
scenario inverted must fail, saying what was expected and what was seen -- proof that
these scenarios can fail at all. Every lab a run brings up is torn down (checked, and
removed with a failure if one is left, also when the run itself failed or timed out).
"""

from __future__ import annotations

import secrets
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from .conftest import ROOT, CliResult, labctl

TOPOLOGIES = ROOT / "topologies"

# file -> the cases `labctl test` must report for it (the top-level expect is "expect").
SCENARIOS = {
    "nat-t-two-clients.yaml": {"expect"},
    "nat-t-disabled.yaml": {"expect", "enable-nat-t"},
    "keepalive-vs-pat-timeout.yaml": {"idle-past-the-timeout", "flush-conntrack"},
    "rekey-same-ports.yaml": {"rekey-under-traffic"},
    "gateway-starts-rekey.yaml": {"gateway-starts-rekey"},
    "ike-fragments-and-volume.yaml": {"expect", "fragments-logged", "volume-rekey"},
    "ipsec-over-udp.yaml": {"expect", "both-on", "preference"},
    "many-clients.yaml": {"all-at-once"},
    "concentrator-restart.yaml": {"restart-and-reconnect", "client-vanishes"},
    "no-nat-client.yaml": {"expect"},
    "l2l-nat-t.yaml": {"l2l-and-clients"},
    "l2l-nat-t-off.yaml": {"repair-nat-t"},
    "l2l-strongswan-site.yaml": {"expect"},
    "fragmentation-policy.yaml": {"three-policies"},
    "fleet-clients.yaml": {"fleet-of-fifty", "pool-exhaustion", "session-limit"},
    "certificate-auth.yaml": {"certificates"},
    "hybrid-auth.yaml": {"hybrid"},
    "ike-fragmentation.yaml": {"ike-fragmentation"},
    "interop-certificates.yaml": {"expect"},  # strongSwan clients: the strongswan image
    "interop-swan-gateway-certs.yaml": {"expect"},  # a strongSwan concentrator
    "nat-t-draft-01.yaml": {"expect"},  # IKE and marked ESP on one UDP 500 flow
    "interop-ike-fragmentation.yaml": {"ike-fragmentation-both-ways"},  # with strongSwan
}

# file -> the only scenarios CI runs of it (one lab): l2l-and-clients holds every check of
# l2l-nat-t, which a user can still run on its own.
ONLY = {"l2l-nat-t.yaml": ["l2l-and-clients"]}


# Scenarios that mostly wait on lifetimes and idle timeouts (a rekey at 60 s, a PAT timeout,
# DPD): they run one at a time in a background thread while the others run in the
# foreground, so CI spends their waiting on other work. Their test then only collects the
# result. Two labs at once at most: more made bring-up fail under load on 2 cores.
TIMER_BOUND = (
    "rekey-same-ports.yaml",
    "keepalive-vs-pat-timeout.yaml",
    "gateway-starts-rekey.yaml",
    "concentrator-restart.yaml",
)


def _labs_named(prefix: str) -> set[str]:
    client = docker.from_env()
    containers = client.containers.list(all=True, filters={"label": "labctl.lab"}, sparse=True)
    labs = {(c.attrs.get("Labels") or {}).get("labctl.lab", "") for c in containers}
    return {name for name in labs if name.startswith(prefix + "-")}


@pytest.fixture
def lab_prefix() -> Iterator[str]:
    """A prefix only this test's labs carry; afterwards none of them may be left."""
    prefix = f"e2es{secrets.token_hex(3)}"
    yield prefix
    leaked = sorted(_labs_named(prefix))
    for name in leaked:
        labctl("-q", "down", name, check=False)
    assert not leaked, f"labctl test left labs behind (now removed): {', '.join(leaked)}"


def run_test(path: Path, report: Path, prefix: str, *extra: str) -> CliResult:
    return labctl(
        "test",
        str(path),
        "--report-dir",
        str(report),
        "--lab-prefix",
        prefix,
        *extra,
        check=False,
        timeout=900,
    )


def junit_cases(report: Path) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in ET.parse(report / "junit.xml").getroot().iter("testcase")}


def failure_text(case: ET.Element) -> str:
    failure = case.find("failure")
    assert failure is not None, "the case passed"
    return f"{failure.get('message')}\n{failure.text}"


@dataclass
class BackgroundRun:
    """One `labctl test` run started ahead of its test, and its outcome once done."""

    report: Path
    done: threading.Event = field(default_factory=threading.Event)
    result: CliResult | None = None
    error: BaseException | None = None


def _run_in_background(runs: dict[str, BackgroundRun], prefix: str) -> None:
    for file, run in runs.items():
        try:
            run.result = run_test(TOPOLOGIES / file, run.report, prefix)
        except BaseException as exc:  # reported by the file's own test
            run.error = exc
        finally:
            run.done.set()


@pytest.fixture(scope="module")
def background_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, BackgroundRun]]:
    """Starts the selected timer-bound scenarios in a background thread, one at a time."""
    selected = {
        item.callspec.params.get("file")
        for item in request.session.items
        if item.originalname == "test_seed_scenario_passes" and hasattr(item, "callspec")
    }
    runs = {
        file: BackgroundRun(tmp_path_factory.mktemp(file.removesuffix(".yaml")))
        for file in TIMER_BOUND
        if file in selected
    }
    prefix = f"e2eb{secrets.token_hex(3)}"
    worker = threading.Thread(target=_run_in_background, args=(runs, prefix), daemon=True)
    worker.start()
    yield runs
    worker.join(timeout=len(runs) * 900)
    leaked = sorted(_labs_named(prefix))
    for name in leaked:
        labctl("-q", "down", name, check=False)
    assert not leaked, f"background labctl test runs left labs (now removed): {leaked}"


def _collected(run: BackgroundRun) -> tuple[CliResult, Path]:
    # Under pytest-timeout's 600 s per test; the runs before this one had their own tests.
    assert run.done.wait(timeout=560), "the background run did not finish in time"
    if run.error is not None:
        raise run.error
    assert run.result is not None
    return run.result, run.report


# The timer-bound ones last, in their background order: the foreground works meanwhile.
IN_ORDER = [file for file in sorted(SCENARIOS) if file not in TIMER_BOUND] + list(TIMER_BOUND)


@pytest.mark.parametrize("file", IN_ORDER)
def test_seed_scenario_passes(
    file: str, tmp_path: Path, lab_prefix: str, background_runs: dict[str, BackgroundRun]
) -> None:
    if file in background_runs:
        result, tmp_path = _collected(background_runs[file])
    else:
        only = [arg for name in ONLY.get(file, []) for arg in ("--scenario", name)]
        result = run_test(TOPOLOGIES / file, tmp_path, lab_prefix, *only)
    cases = junit_cases(tmp_path)
    failed = {name: failure_text(c) for name, c in cases.items() if c.find("failure") is not None}
    assert not failed, "\n\n".join(f"{n}:\n{t}" for n, t in failed.items()) + result.stderr
    assert set(cases) == SCENARIOS[file]
    assert result.returncode == 0
    assert f"{len(cases)}/{len(cases)} passed" in result.stdout
    # Passing cases keep no artifacts (captures are discarded).
    artifacts = tmp_path / "artifacts"
    assert not artifacts.exists() or not any(artifacts.iterdir())


def _broken(tmp_path: Path, file: str, replacements: list[tuple[str, str]]) -> Path:
    text = (TOPOLOGIES / file).read_text()
    for old, new in replacements:
        assert old in text, f"{file} no longer contains {old!r}: update this test"
        text = text.replace(old, new, 1)
    path = tmp_path / f"broken-{file}"
    path.write_text(text)
    return path


def test_broken_nat_t_disabled_expecting_data_names_the_zero_bytes(
    tmp_path: Path, lab_prefix: str
) -> None:
    """The note's point is that no data passes: expecting bytes must fail, showing 0."""
    broken = _broken(
        tmp_path,
        "nat-t-disabled.yaml",
        [
            (
                "      count: 2\n      all: {bytes_rx: 0, bytes_tx: 0}",
                '      count: 2\n      all: {bytes_rx: "> 0", bytes_tx: "> 0"}',
            ),
            (
                "  - name: the concentrator received and sent nothing",
                "  - within: 3\n    name: the concentrator received and sent nothing",
            ),
        ],
    )
    result = run_test(broken, tmp_path / "report", lab_prefix, "--scenario", "none")
    assert result.returncode == 1
    text = failure_text(junit_cases(tmp_path / "report")["expect"])
    assert "the concentrator received and sent nothing" in text
    assert "bytes_rx: expected > 0, observed 0" in text
    assert "bytes_tx: expected > 0, observed 0" in text
    assert 'observed row: {"bytes_rx": 0, "bytes_tx": 0}' in text
    assert "labctl show" in text
    artifacts = tmp_path / "report" / "artifacts" / f"{broken.stem}.expect"
    assert "IPsec" in (artifacts / "vpn3000" / "sessions.txt").read_text()
    assert (artifacts / "captures" / "inside.pcap").stat().st_size > 24


def test_broken_flush_expecting_the_old_ports_names_old_and_new(
    tmp_path: Path, lab_prefix: str
) -> None:
    """After the mappings are gone the PAT must pick new ports: expecting the old ones
    fails with the saved ports and the ones seen."""
    broken = _broken(
        tmp_path,
        "keepalive-vs-pat-timeout.yaml",
        [('all: {global_port: "!= $old_ports"}', 'all: {global_port: "== $old_ports"}')],
    )
    result = run_test(broken, tmp_path / "report", lab_prefix, "--scenario", "flush-conntrack")
    assert result.returncode == 1
    cases = junit_cases(tmp_path / "report")
    assert set(cases) == {"flush-conntrack"}
    text = failure_text(cases["flush-conntrack"])
    assert "two new translations, neither on an old port" in text
    assert "global_port: expected == $old_ports ([" in text
    assert "observed" in text


def test_broken_ipsec_over_udp_expecting_nat_t_names_the_protocol_seen(
    tmp_path: Path, lab_prefix: str
) -> None:
    broken = _broken(
        tmp_path,
        "ipsec-over-udp.yaml",
        [
            ("        protocol: IPsec/UDP\n", "        protocol: IPsec/NAT-T\n"),
            ("    within: 60\n    sessions:", "    within: 10\n    sessions:"),
        ],
    )
    result = run_test(broken, tmp_path / "report", lab_prefix, "--scenario", "none")
    assert result.returncode == 1
    text = failure_text(junit_cases(tmp_path / "report")["expect"])
    assert "two IPsec-over-UDP sessions from one public address" in text
    assert "protocol: expected 'IPsec/NAT-T', observed 'IPsec/UDP'" in text


def test_broken_restart_expecting_stale_sessions_fails_on_the_count(
    tmp_path: Path, lab_prefix: str
) -> None:
    """After the restart each client has exactly one session: a scenario expecting the
    old sessions next to the new ones (four) fails and shows the two there are."""
    broken = _broken(
        tmp_path,
        "concentrator-restart.yaml",
        [
            (
                "            within: 45\n            sessions:\n              node: vpn3000\n"
                "              count: 2\n",
                "            within: 3\n            sessions:\n              node: vpn3000\n"
                "              count: 4\n",
            )
        ],
    )
    # Only the case under test: client-vanishes (a second lab, DPD timers) is not broken.
    result = run_test(
        broken, tmp_path / "report", lab_prefix, "--scenario", "restart-and-reconnect"
    )
    assert result.returncode == 1
    cases = junit_cases(tmp_path / "report")
    assert set(cases) == {"restart-and-reconnect"}
    text = failure_text(cases["restart-and-reconnect"])
    assert "one session per client, no pool address twice" in text
    assert "count: expected 4, observed 2" in text
    assert text.count("observed row:") == 2
