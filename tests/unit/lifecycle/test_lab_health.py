"""`labctl status` says when a lab is not whole (issue 8: nodes showed "running" in a lab
whose fabric namespace was gone or whose `up` was killed)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from labctl.cli.main import main
from labctl.lifecycle import LabState

from .fakes import FakeLab, seed_variant

commands = importlib.import_module("labctl.cli.commands")
NAME = "u-health"
INCOMPLETE = f"incomplete: up did not finish (run labctl up again or labctl down {NAME})"


@pytest.fixture
def status(fake_lab: FakeLab, monkeypatch: pytest.MonkeyPatch, capsys):
    """Run `labctl status ARGS` on the fake lab; (exit status, stdout)."""
    monkeypatch.setattr(commands, "DockerRuntime", lambda: fake_lab.runtime)
    monkeypatch.setattr(commands, "list_named_netns", lambda: sorted(fake_lab.netns))

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["status", *args])
        return code, capsys.readouterr().out

    return run


@pytest.fixture
def running(fake_lab: FakeLab, tmp_path: Path):
    lab = seed_variant(tmp_path, NAME)
    fake_lab.up(lab)
    return lab


def lab_states(text: str) -> set[str]:
    return {row["lab_state"] for row in json.loads(text)}


def test_a_whole_lab_is_up(status, running) -> None:
    code, out = status(NAME, "--json")
    assert code == 0 and lab_states(out) == {"up"}
    assert f"lab {NAME}: up (6 nodes)" in status()[1]


def test_a_lab_without_its_fabric_namespace_is_broken(status, running, fake_lab) -> None:
    fake_lab.netns.clear()
    code, out = status(NAME, "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 6
    assert all(r["lab_state"].startswith("broken: fabric namespace missing") for r in rows)
    assert all(r["state"] == "running" for r in rows), "the containers themselves still run"
    assert f"lab {NAME}: broken: fabric namespace missing" in status()[1]


def test_a_lab_whose_up_did_not_finish_is_incomplete(status, running) -> None:
    LabState.of(NAME).record_file.unlink()  # `up` writes it last
    _, out = status(NAME, "--json")
    assert lab_states(out) == {INCOMPLETE}


def test_a_lab_with_a_missing_container_is_broken(status, running, fake_lab) -> None:
    del fake_lab.runtime.containers[(NAME, "pix")]
    _, out = status(NAME, "--json")
    assert lab_states(out) == {"broken: node container missing: pix"}


def test_leftovers_without_containers_are_listed(status, running, fake_lab) -> None:
    fake_lab.runtime.containers.clear()
    LabState.of(NAME).record_file.unlink()
    _, out = status("--json")
    rows = json.loads(out)
    assert rows == [
        {
            "lab": NAME,
            "lab_state": INCOMPLETE,
            "node": None,
            "kind": None,
            "state": None,
            "mgmt_ipv4": None,
            "container": None,
            "image": None,
        }
    ]
