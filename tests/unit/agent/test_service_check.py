"""`vpn service check FILE`: can the agent run with FILE? (labctl's push runs it on the
staged copy before it replaces the live one; issue 8.)"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.agent import service
from labctl.agent.cli import main as vpn_main
from labctl.agent.control import ControlError
from labctl.agent.preflight import PreflightError, check_settings_file
from labctl.render import vpn_agent_config
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "topologies" / "nat-t-two-clients.yaml"
NOT_HERE = "192.0.2.77"  # TEST-NET-1: never an address of this machine


def concentrator_file(tmp_path: Path, public: str, **nat: object) -> Path:
    config = vpn_agent_config(load_lab(SEED), "vpn3000")
    config["interfaces"]["public"] = f"{public}/24"
    config["vpn"]["nat_transparency"].update(nat)
    path = tmp_path / "vpn.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def agent_holds(monkeypatch: pytest.MonkeyPatch) -> Iterator[set]:
    """A running agent holding these sockets answers `vpn service check` (the daemon's
    handler, called in-process here); none unless a test adds some."""
    held: set[tuple[str, str, int]] = set()

    def request(command: str, args: dict, timeout: float) -> str:
        assert command == "check"
        try:
            return check_settings_file(args["path"], held)
        except PreflightError as exc:  # what the control server sends back
            raise ControlError(str(exc)) from None

    monkeypatch.setattr(service, "running", lambda: True)
    monkeypatch.setattr(service, "request", request)
    yield held


def test_without_a_running_agent_the_command_line_checks_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(service, "running", lambda: False)
    path = concentrator_file(tmp_path, NOT_HERE)
    code, _, err = run_check(path, capsys)
    assert code == 1 and f"{NOT_HERE} is not an address of this node" in err


@pytest.fixture
def busy_tcp_port() -> Iterator[int]:
    """A TCP port another program listens on (at 127.0.0.1)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


def run_check(path: Path, capsys) -> tuple[int, str, str]:
    code = vpn_main(["service", "check", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_public_address_the_node_does_not_have_is_refused(
    tmp_path: Path, agent_holds, capsys
) -> None:
    path = concentrator_file(tmp_path, NOT_HERE)
    code, out, err = run_check(path, capsys)
    assert code == 1 and out == ""
    assert err.strip() == (
        f"vpn: {path}: IKE: cannot bind UDP {NOT_HERE}:500: "
        f"{NOT_HERE} is not an address of this node"
    )


def test_a_port_another_program_holds_is_refused(
    tmp_path: Path, agent_holds, busy_tcp_port: int, capsys
) -> None:
    # The running agent holds IKE and NAT-T on this address: those are no conflict.
    agent_holds.update({("udp", "127.0.0.1", 500), ("udp", "127.0.0.1", 4500)})
    path = concentrator_file(
        tmp_path, "127.0.0.1", ipsec_over_tcp={"enabled": True, "port": busy_tcp_port}
    )
    code, _, err = run_check(path, capsys)
    assert code == 1
    assert err.strip() == (
        f"vpn: {path}: IPsec over TCP: TCP 127.0.0.1:{busy_tcp_port} is in use by another program"
    )


def test_sockets_the_running_agent_holds_pass(tmp_path: Path, agent_holds, capsys) -> None:
    agent_holds.update({("udp", "127.0.0.1", 500), ("udp", "127.0.0.1", 4500)})
    path = concentrator_file(tmp_path, "127.0.0.1")
    code, out, err = run_check(path, capsys)
    assert (code, err) == (0, "")
    assert out.startswith(
        f"{path}: ok (ConcentratorSettings; UDP 127.0.0.1:500, UDP 127.0.0.1:4500"
    )


def test_a_proposal_the_agent_cannot_use_is_refused(tmp_path: Path, agent_holds, capsys) -> None:
    agent_holds.update({("udp", "127.0.0.1", 500), ("udp", "127.0.0.1", 4500)})
    path = concentrator_file(tmp_path, "127.0.0.1")
    config = json.loads(path.read_text())
    config["vpn"]["groups"]["ciscovpn"]["ike_proposals"] = ["3des-md5-modp9999"]
    path.write_text(json.dumps(config))
    code, _, err = run_check(path, capsys)
    assert code == 1
    assert "unknown DH group 'modp9999'" in err and str(path) in err


def test_a_file_that_is_not_json_is_refused(tmp_path: Path, agent_holds, capsys) -> None:
    path = tmp_path / "vpn.json"
    path.write_text('{"kind": "concentrator", ')
    code, _, err = run_check(path, capsys)
    assert code == 1 and err.startswith(f"vpn: {path}: ")
