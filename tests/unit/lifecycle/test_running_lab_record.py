"""Commands on a running lab use what `up` recorded, not the topology file (issue 8: exec
and show failed while the file had an error or an {env:} secret was unset)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from labctl.cli.context import open_running_lab
from labctl.cli.main import main
from labctl.lifecycle import lab_from_model, recorded_model, structure_differences
from labctl.render import render_node

from .fakes import FakeLab, seed_variant

commands = importlib.import_module("labctl.cli.commands")
NAME = "u-record"
ENV = "LABCTL_UNIT_RECORD_PSK"


@pytest.fixture
def cli(fake_lab: FakeLab, monkeypatch: pytest.MonkeyPatch, capsysbinary):
    """Run labctl ARGS against the fake lab; (exit status, stdout, stderr)."""
    monkeypatch.setattr(commands, "DockerRuntime", lambda: fake_lab.runtime)

    def run(*args: str) -> tuple[int, str, str]:
        capsysbinary.readouterr()
        code = main(list(args))
        captured = capsysbinary.readouterr()
        return code, captured.out.decode(), captured.err.decode()

    return run


@pytest.fixture
def running(fake_lab: FakeLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The seed lab, its concentrator's PSK from an environment variable."""
    monkeypatch.setenv(ENV, "env-s3cret")
    lab = seed_variant(tmp_path, NAME, ("psk: cisco123", f"psk: {{env: {ENV}}}"))
    fake_lab.up(lab)
    return lab


@pytest.mark.parametrize("breakage", ["env-unset", "file-broken", "file-gone"])
def test_exec_and_show_work_from_the_record(
    cli, running, breakage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if breakage == "env-unset":
        monkeypatch.delenv(ENV)
    elif breakage == "file-broken":
        running.source.write_text("name: [unclosed\n")
    else:
        running.source.unlink()
    code, out, err = cli("exec", "--lab", NAME, "client1", "--", "echo", "hello from client1")
    assert (code, out, err) == (0, "hello from client1\n", "")
    code, out, err = cli("show", "--lab", NAME, "vpn3000")
    assert code == 0 and "sessions" in out, err


def test_push_reads_the_file_and_says_why_it_cannot(
    cli, running, monkeypatch: pytest.MonkeyPatch, fake_lab: FakeLab
) -> None:
    monkeypatch.delenv(ENV)
    fake_lab.forget_commands()
    code, _, err = cli("push", "--lab", NAME, "vpn3000")
    assert code == 1
    assert err.startswith(f"{running.source}:") and f"environment variable '{ENV}'" in err
    assert "Traceback" not in err
    assert fake_lab.commands("vpn3000") == []


def test_the_recorded_lab_has_masked_secrets(fake_lab: FakeLab, running) -> None:
    with open_running_lab(fake_lab.runtime, NAME) as handle:
        assert handle.secrets is False
        group = handle.lab.nodes["vpn3000"].vpn.groups["ciscovpn"]  # type: ignore[attr-defined]
        assert group.psk.get_secret_value() == "**********"
        assert set(handle.lab.nodes) == set(running.nodes)


def test_the_recorded_model_round_trips(running) -> None:
    model = recorded_model(running)
    again = lab_from_model(model)
    assert structure_differences(model, recorded_model(again)) == []
    assert render_node(again, "pix") == render_node(running, "pix")
    assert [s.endpoints for s in again.segments] == [s.endpoints for s in running.segments]
    assert "expect" not in model and "scenarios" not in model
