"""Shell completion candidates, `-q` after the subcommand, the completion scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.cli import complete
from labctl.cli.main import build_parser, main

SEED = Path(__file__).resolve().parents[3] / "topologies" / "nat-t-two-clients.yaml"


@pytest.fixture
def recorded_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A lab as `up` records it, in a private state root."""
    from labctl.lifecycle import LabState, recorded_model
    from labctl.topology import load_lab

    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path))
    lab = load_lab(SEED)
    state = LabState.of("seedlab")
    state.create()
    state.write_record({"name": "seedlab", "model": recorded_model(lab)})
    return "seedlab"


def test_the_command_list_is_the_parsers() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(complete.COMMANDS) == sorted(sub.choices)


def test_candidates(recorded_lab: str) -> None:
    assert "capture" in complete.candidates(["ca"]) and "ui" in complete.candidates([""])
    assert complete.candidates(["down", ""]) == [recorded_lab]
    assert complete.candidates(["show", "--lab", ""]) == [recorded_lab]
    nodes = complete.candidates(["show", "--lab", recorded_lab, ""])
    assert nodes == ["client1", "client2", "pix", "router", "server", "vpn3000"]
    pix = complete.candidates(["show", "pix", ""])
    assert "xlate" in pix and "counters" in pix and "sessions" not in pix
    assert "administer" in complete.candidates(["show", "vpn3000", ""])
    assert "public" in complete.candidates(["capture", ""])
    assert "pix:inside" in complete.candidates(["capture", ""])
    assert "--dry-run" in complete.candidates(["up", "x.yaml", "--"])
    assert complete.candidates(["completion", ""]) == ["bash", "zsh"]


def test_complete_entry_point_filters_by_prefix(recorded_lab: str, capsys) -> None:
    assert main(["__complete", "show", "pi"]) == 0
    assert capsys.readouterr().out == "pix\n"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is Debian's default shell")
def test_the_bash_script_completes_through_labctl(recorded_lab: str, tmp_path: Path) -> None:
    script = tmp_path / "labctl.bash"
    main_script = subprocess.run(
        [sys.executable, "-m", "labctl", "completion", "bash"], capture_output=True, text=True
    ).stdout
    script.write_text(main_script)
    shim = tmp_path / "labctl"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m labctl "$@"\n')
    shim.chmod(0o755)
    probe = (
        f"source {script}; COMP_WORDS=(labctl show pi); COMP_CWORD=2; _labctl; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "LABCTL_STATE_DIR": str(tmp_path)}
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["pix"], out.stderr


def test_quiet_is_accepted_after_the_subcommand() -> None:
    parser = build_parser()
    assert parser.parse_args(["down", "x", "-q"]).quiet is True
    assert parser.parse_args(["-q", "down", "x"]).quiet is True
    assert parser.parse_args(["down", "x"]).quiet is False
    assert parser.parse_args(["status", "--debug"]).debug is True


def test_zsh_script_is_a_compdef() -> None:
    text = complete.script("zsh")
    assert text.startswith("#compdef labctl") and "labctl __complete" in text
    json.dumps(text)
