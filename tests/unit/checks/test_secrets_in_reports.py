"""A scenario that changes a secret never writes it: not in JUnit, not in progress lines
(issue 8: `set` of a PSK wrote the new value in clear into junit.xml).

`labctl test` runs for real (CLI, runner, steps, JUnit); only the lab itself is faked:
`up` returns a handle without containers and `push` fails the way a bug would, with
the secret in its message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.checks import runner, steps
from labctl.cli import commands
from labctl.cli.main import main
from labctl.topology import Lab, TopologyError, load_lab_text
from labctl.topology.changes import apply_set

SEED = Path(__file__).resolve().parents[3] / "topologies" / "nat-t-two-clients.yaml"
NEW_PSK = "N3w-Rotated-Psk"
OTHER_PSK = "An0ther-Psk-Value"
PUSH_PSK = "Pushed-Psk-In-Error"

SCENARIOS = f"""
scenarios:
  rotate-psk:
    steps:
      - set: {{node: vpn3000, path: vpn.groups.ciscovpn.psk, value: {NEW_PSK}}}
      - wait: 0.01
  rotate-group:
    steps:
      - set:
          node: vpn3000
          path: vpn.groups.ciscovpn
          value: {{psk: {OTHER_PSK}, pool: 40.1.1.1-40.1.1.254}}
      - wait: 0.01
  rotate-and-push:
    steps:
      - set: {{node: vpn3000, path: vpn.groups.ciscovpn.psk, value: {PUSH_PSK}}}
      - push: vpn3000
"""


def seed_without_expect() -> str:
    text = SEED.read_text()
    return text[: text.index("\nexpect:")] + "\n"


class FakeHandle:
    def __init__(self, lab: Lab):
        self.lab = lab

    def close(self) -> None:
        pass


class NoCaptures:
    def __init__(self, *args) -> None:
        pass

    start = stop = discard = lambda self: None


def push_that_fails(handle, node):
    psk = handle.lab.nodes[node].vpn.groups["ciscovpn"].psk.get_secret_value()
    raise RuntimeError(f"agent rejected the configuration (psk={psk})")


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "DockerRuntime", lambda: object())
    monkeypatch.setattr(runner, "up", lambda lab, runtime, progress: FakeHandle(lab))
    monkeypatch.setattr(runner, "down", lambda name, runtime, progress: [])
    monkeypatch.setattr(runner, "Captures", NoCaptures)
    monkeypatch.setattr(runner, "save_failure_artifacts", lambda handle, directory: [])
    monkeypatch.setattr(steps, "push_node", push_that_fails)


def test_a_scenario_that_sets_secrets_leaves_no_secret_in_junit_or_progress(
    fake_lab: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topology = tmp_path / "lab.yaml"
    topology.write_text(seed_without_expect() + SCENARIOS)
    status = main(["test", str(topology), "--report-dir", str(tmp_path / "reports")])
    out, err = capsys.readouterr()
    assert (tmp_path / "reports" / "junit.xml").exists(), out + err
    junit = (tmp_path / "reports" / "junit.xml").read_text()

    assert status == 1  # rotate-and-push fails: its push raised
    assert junit.count("<testcase") == 3 and junit.count("<failure") == 1
    assert "vpn3000.vpn.groups.ciscovpn.psk = ********" in junit  # the step is described
    assert "RuntimeError: agent rejected the configuration (psk=********)" in junit
    for secret in (NEW_PSK, OTHER_PSK, PUSH_PSK, "cisco123"):
        assert secret not in junit
        assert secret not in out + err
    assert "Traceback" not in out + err  # the bug's traceback went to a file
    trace = tmp_path / "reports" / "artifacts" / "lab.rotate-and-push" / "traceback.txt"
    assert f"traceback: {trace}" in err and "push_that_fails" in trace.read_text()
    assert PUSH_PSK not in trace.read_text()


def test_a_set_of_a_secret_with_the_wrong_type_names_the_field_not_the_value() -> None:
    lab = load_lab_text(SEED.read_text())
    with pytest.raises(ValueError) as caught:
        apply_set(lab.spec, "vpn3000", "vpn.groups.ciscovpn.psk", 987654321)
    assert "vpn3000.vpn.groups.ciscovpn.psk: expected a string" in str(caught.value)
    assert "987654321" not in str(caught.value)
    result = apply_set(lab.spec, "vpn3000", "vpn.groups.ciscovpn.psk", NEW_PSK)
    assert result.secret and result.shown(NEW_PSK) == "********"
    assert result.spec.topology.nodes["vpn3000"].vpn.groups["ciscovpn"].psk.get_secret_value() == (
        NEW_PSK
    )


def test_validate_never_echoes_a_secret_of_the_wrong_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = SEED.read_text().replace("psk: cisco123", "psk: 987654321")
    with pytest.raises(TopologyError) as caught:
        load_lab_text(text, Path("lab.yaml"))
    message = str(caught.value)
    assert "topology.nodes.vpn3000.vpn.groups.ciscovpn.psk: expected a string" in message
    assert "got a number" in message and "987654321" not in message
