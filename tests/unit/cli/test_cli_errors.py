"""The CLI never shows a traceback (issue 8): a bug is one line plus a report file with
no secret in it; non-root use is refused up front with the reason; unknown nodes and
tables list what exists; validate, schema and graph need no root."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from labctl.cli import commands
from labctl.cli.main import EX_SOFTWARE, main
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "topologies" / "nat-t-two-clients.yaml"
SECRET = "Crash-Report-Psk-42"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exc:
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def buggy_validate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`validate` that loads a lab with a secret, then hits a bug quoting that secret."""
    topology = tmp_path / "lab.yaml"
    topology.write_text(SEED.read_text().replace("psk: cisco123", "psk: {env: CRASH_PSK}"))
    monkeypatch.setenv("CRASH_PSK", SECRET)

    def cmd_validate(args) -> int:
        lab = load_lab(topology)
        psk = lab.nodes["vpn3000"].vpn.groups["ciscovpn"].psk.get_secret_value()
        raise KeyError(f"no such session for psk {psk}")

    monkeypatch.setattr(commands, "cmd_validate", cmd_validate)


def test_a_bug_prints_one_line_and_writes_a_private_report_without_secrets(
    buggy_validate: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    status, out, err = run(["validate", "x.yaml"], capsys)
    assert status == EX_SOFTWARE == 70
    assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("labctl: internal error: KeyError: 'no such session for psk ********'")
    reports = list((tmp_path / "state" / "crash").glob("labctl-crash-*.txt"))
    assert len(reports) == 1 and err.rstrip().endswith(f"; details in {reports[0]}")
    report = reports[0].read_text()
    assert "Traceback (most recent call last)" in report and "cmd_validate" in report
    assert SECRET not in report and SECRET not in err
    assert stat.S_IMODE(reports[0].stat().st_mode) == 0o600


def test_the_report_goes_to_the_temp_dir_when_the_state_dir_is_unusable(
    buggy_validate: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "not-a-dir"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    status, _, err = run(["validate", "x.yaml"], capsys)
    reports = list((tmp_path / "tmp").glob("labctl-crash-*.txt"))
    assert status == 70 and len(reports) == 1 and f"details in {reports[0]}" in err


class NoDocker:
    def __init__(self, *args, **kwargs) -> None:
        raise AssertionError("a command refused for lack of root reached Docker")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["up", str(SEED)], "it creates network namespaces"),
        (["down", "somelab"], "it removes network namespaces"),
        (["test", str(SEED)], "it brings labs up and down"),
        (["exec", "pix", "--", "true"], "SSH key"),
        (["show", "pix", "xlate"], "SSH key"),
        (["push", "pix"], "SSH key"),
        (["images", "build"], "debootstrap"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_commands_that_need_root_say_so_before_doing_anything(
    argv: list[str], reason: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(commands, "DockerRuntime", NoDocker)
    status, _, err = run(argv, capsys)
    assert status == 77
    assert err.startswith(f"labctl: labctl {argv[0]} needs root (") and reason in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [["validate", str(SEED)], ["schema"], ["graph", str(SEED), "--format", "mermaid"]],
    ids=["validate", "schema", "graph"],
)
def test_validate_schema_and_graph_need_no_root(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    status, out, err = run(argv, capsys)
    assert status == 0 and out and "root" not in err


SYSTEM_PYTHON = Path("/usr/bin/python3")
RUNUSER = shutil.which("runuser") or "runuser"


def _can_run_as_nobody() -> bool:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return (
        os.geteuid() == 0
        and shutil.which("runuser") is not None
        and SYSTEM_PYTHON.exists()
        and SYSTEM_PYTHON.resolve().name == version
    )


def _readable_copy(source: Path, target: Path) -> Path:
    """`source` under `target`, folders 0755, files hard-linked where possible (fast)."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o755)
    return target


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A folder `nobody` can enter: pytest's own tmp folders are root-only (0700) and
    shared with other pytest runs, so their modes are not ours to change."""
    folder = Path(tempfile.mkdtemp(prefix="labctl-nobody-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(not _can_run_as_nobody(), reason="needs root, runuser and a system python")
def test_as_a_real_unprivileged_user(nobody_dir: Path) -> None:
    tmp_path = nobody_dir
    """`nobody` runs labctl from this checkout (the venv's interpreter lives in root's home,
    so the system python of the same version with the venv's packages)."""
    # The checkout and its venv may sit under a root-only folder (CI clones into a 0700
    # temp dir): give `nobody` hard-linked copies in a folder it can enter.
    code = _readable_copy(ROOT / "labctl", tmp_path / "code" / "labctl")
    site = _readable_copy(Path(sysconfig.get_paths()["purelib"]), tmp_path / "site")
    seed = tmp_path / SEED.name
    shutil.copyfile(SEED, seed)
    seed.chmod(0o644)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{code.parent}:{site}",
        "LABCTL_STATE_DIR": str(tmp_path / "state"),
        "HOME": str(tmp_path),
    }

    def labctl(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [RUNUSER, "-u", "nobody", "--", str(SYSTEM_PYTHON), "-m", "labctl", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    validate = labctl("validate", str(seed))
    assert validate.returncode == 0, validate.stderr
    assert labctl("schema").returncode == 0
    assert labctl("graph", str(seed)).stdout.startswith("graph")
    up = labctl("up", str(seed), "--name", "badin-nobody")
    assert up.returncode == 77 and up.stderr.startswith("labctl: labctl up needs root")
    status = labctl("status")
    assert status.returncode == 77
    assert "permission denied on the Docker socket /var/run/docker.sock" in status.stderr
    for result in (validate, up, status):
        assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "state").exists()


class FakeHandle:
    def __init__(self) -> None:
        self.lab = load_lab(SEED)


@contextmanager
def fake_running_lab(runtime, requested):
    yield FakeHandle()


@pytest.fixture
def running_seed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    pushed: list[str] = []
    monkeypatch.setattr(commands, "DockerRuntime", lambda: object())
    monkeypatch.setattr(commands, "open_running_lab", fake_running_lab)
    monkeypatch.setattr(commands, "push_node", lambda handle, node: pushed.append(node) or [])
    return pushed


NODES = "(nodes: client1, client2, pix, router, vpn3000, server)"


def test_show_of_an_unknown_node_lists_the_nodes(running_seed, capsys) -> None:
    status, _, err = run(["show", "ghost", "xlate"], capsys)
    assert status == 2
    assert err == f"labctl: lab nat-t-two-clients has no node 'ghost' {NODES}\n"


def test_an_unknown_node_anywhere_is_one_line_listing_the_nodes(monkeypatch, capsys) -> None:
    """push/exec look nodes up with Lab.node() wherever they do it (cmd_push is being
    rewritten): the error is the lab's node list, exit 2, whichever command asks."""

    def cmd_push(args) -> int:
        load_lab(SEED).node(args.nodes[0])
        raise AssertionError("Lab.node() returned for an unknown node")

    monkeypatch.setattr(commands, "cmd_push", cmd_push)
    status, _, err = run(["push", "ghost"], capsys)
    assert status == 2
    assert err == f"labctl: lab nat-t-two-clients has no node 'ghost' {NODES}\n"


def test_show_of_an_unknown_table_lists_what_the_node_can_show(running_seed, capsys) -> None:
    status, _, err = run(["show", "pix", "sessions"], capsys)
    assert status == 1 and "Traceback" not in err
    assert err.startswith("labctl: cannot show 'sessions' on pix (pat-firewall); available: ")
    assert "xlate" in err and "counters" in err


def test_images_without_a_reachable_engine_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    status, _, err = run(["images", "list"], capsys)
    assert status == 1 and len(err.splitlines()) == 1
    assert err.startswith("labctl: docker: cannot reach the Docker engine")
