"""One root error type: whatever a user can cause or meet prints one line (with its hint)
and exits non-zero; a traceback only with --debug (issue 9: LabUpError, image build, wiring
and impairment errors used to escape as tracebacks)."""

from __future__ import annotations

import pytest

from labctl.cli import commands
from labctl.cli.main import main
from labctl.errors import LabctlError
from labctl.images.errors import ImageBuildError, ImageError
from labctl.lifecycle import LabNotRunning, LabStateError
from labctl.lifecycle.errors import LabBusy, LabUpError, PushError
from labctl.lifecycle.record import RecordError
from labctl.mgmt.ssh import MgmtError
from labctl.naming import LabNameError
from labctl.runtime import LabRuntimeError
from labctl.state import ShowError
from labctl.state.xlate import ConntrackParseError
from labctl.topology import TopologyError, UnknownNodeError
from labctl.wiring.fabric import WiringError
from labctl.wiring.impair import ImpairError
from labctl.wiring.mgmt import MgmtPlanError

USER_ERRORS = [
    ImageError,
    ImageBuildError,
    LabNotRunning,
    LabStateError,
    LabBusy,
    LabUpError,
    PushError,
    RecordError,
    MgmtError,
    LabNameError,
    LabRuntimeError,
    ShowError,
    ConntrackParseError,
    TopologyError,
    UnknownNodeError,
    WiringError,
    ImpairError,
    MgmtPlanError,
]


@pytest.mark.parametrize("error", USER_ERRORS, ids=lambda e: e.__name__)
def test_every_user_facing_error_has_the_one_root(error: type) -> None:
    assert issubclass(error, LabctlError)


def _status_raising(monkeypatch: pytest.MonkeyPatch, error: BaseException, argv: list[str]) -> int:
    def boom(args) -> int:
        raise error

    monkeypatch.setattr(commands, "cmd_validate", boom)
    return main(argv)


@pytest.mark.parametrize(
    "error",
    [
        WiringError("veth s0p1 could not be made: File exists"),
        ImpairError("link inside: nft refused the loss rule"),
        LabUpError("lab x is running with a different topology"),
        ImageBuildError("debootstrap", "exit 1", None),
    ],
    ids=lambda e: type(e).__name__,
)
def test_one_line_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, error: LabctlError
) -> None:
    status = _status_raising(monkeypatch, error, ["validate", "x.yaml"])
    err = capsys.readouterr().err
    assert status == 1
    assert err == f"labctl: {error}\n"
    assert "Traceback" not in err


def test_hint_and_status_are_printed_and_returned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    error = WiringError("bridge br0 is missing", hint="labctl down x && labctl up F", status=3)
    assert _status_raising(monkeypatch, error, ["validate", "x.yaml"]) == 3
    assert capsys.readouterr().err == (
        "labctl: bridge br0 is missing (hint: labctl down x && labctl up F)\n"
    )


def test_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    status = _status_raising(monkeypatch, WiringError("no bridge"), ["--debug", "validate", "x"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("labctl: no bridge")
