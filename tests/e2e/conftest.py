"""End-to-end fixtures: real labs in Docker, always torn down, never silently skipped."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "topologies" / "nat-t-two-clients.yaml"
# Overridable so two checkouts testing on one machine can tell their labs apart at a glance.
TEST_LAB_PREFIX = os.environ.get("LABCTL_E2E_PREFIX", "e2e-")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def docker_reachable() -> None:
    """The e2e suite fails loudly without Docker or root; it never skips."""
    if os.geteuid() != 0:
        pytest.fail("the e2e suite needs root (network namespaces, veths)", pytrace=False)
    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker is not reachable: {exc}", pytrace=False)


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def labctl(*args: str, check: bool = True, timeout: float = 600) -> CliResult:
    """Run the real CLI in a subprocess, as a user would."""
    command = [sys.executable, "-m", "labctl", *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    result = CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"labctl {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return result


# RunningLab.exec runs `labctl exec`'s own code in this process (the same lab record, the
# same SSH session into the node from the lab's management namespace, the same output and
# exit status), not in a new Python process: that start-up (~0.8 CPU-s of imports) was
# most of each call, and the e2e suite makes hundreds. The CLI wrapper itself is tested
# through labctl(); LABCTL_E2E_EXEC=cli puts every call back through it.
IN_PROCESS_EXEC = os.environ.get("LABCTL_E2E_EXEC", "") != "cli"


def exec_in_process(lab: str, node: str, argv: list[str], check: bool) -> CliResult:
    """What `labctl exec --lab LAB NODE -- ARGV` does (cli.commands.cmd_exec and the error
    handling of cli.main.main), with stdout and stderr collected. Thread-safe: nothing
    global is redirected."""
    import io
    import shlex

    from labctl.cli.context import open_running_lab
    from labctl.errors import LabctlError
    from labctl.runtime import DockerRuntime
    from labctl.topology.secrets import redact

    out, err = io.BytesIO(), io.BytesIO()
    try:
        with open_running_lab(DockerRuntime(), lab) as handle:
            returncode = handle.session(node).stream(
                shlex.join(argv) if len(argv) > 1 else argv[0], out, err, get_pty=False
            )
    except LabctlError as exc:
        err.write((redact(exc.user_message()) + "\n").encode())
        returncode = exc.status
    args = ["exec", "--lab", lab, node, "--", *argv]
    result = CliResult(
        args,
        returncode,
        out.getvalue().decode(errors="replace"),
        err.getvalue().decode(errors="replace"),
    )
    if check and returncode != 0:
        raise AssertionError(
            f"labctl {' '.join(args)} exited {returncode} (in process)\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def show_json_in_process(lab: str, node: str, what: str):
    """What `labctl show --lab LAB NODE WHAT --json` prints, parsed (cli.commands.cmd_show:
    the same collection, the same JSON encoding); a failure raises as labctl() would."""
    import json

    from labctl.cli.context import open_running_lab
    from labctl.errors import LabctlError
    from labctl.runtime import DockerRuntime
    from labctl.state import collect
    from labctl.topology.secrets import redact

    try:
        with open_running_lab(DockerRuntime(), lab) as handle:
            records, _ = collect(handle, node, what, False)
    except LabctlError as exc:
        raise AssertionError(
            f"labctl show --lab {lab} {node} {what} --json exited {exc.status} (in process)\n"
            f"stderr:\n{redact(exc.user_message())}"
        ) from None
    return json.loads(json.dumps(records, indent=2, default=str))


# Names this test session made: other sessions (other checkouts, CI jobs) may run their own
# e2e labs on the same machine at the same time, and theirs are not ours to remove.
SESSION_LABS: set[str] = set()


def unique_lab_name(tag: str) -> str:
    name = f"{TEST_LAB_PREFIX}{tag}-{secrets.token_hex(3)}"[:24]
    SESSION_LABS.add(name)
    return name


@pytest.fixture(scope="session", autouse=True)
def no_leaked_test_labs() -> Iterator[None]:
    """After the session, remove any lab of this session a crashed test left (and say so)."""
    yield
    client = docker.from_env()
    containers = client.containers.list(all=True, filters={"label": "labctl.lab"}, sparse=True)
    labs = {(c.attrs.get("Labels") or {}).get("labctl.lab", "") for c in containers}
    leaked = sorted(labs & SESSION_LABS)
    for name in leaked:
        labctl("-q", "down", name, check=False)
    if leaked:
        pytest.fail(f"tests left labs behind (now removed): {', '.join(leaked)}", pytrace=False)


@dataclass
class RunningLab:
    name: str
    topology: Path

    def cli(self, *args: str, check: bool = True) -> CliResult:
        return labctl(*args, check=check)

    def exec(self, node: str, *argv: str, check: bool = True) -> CliResult:
        if IN_PROCESS_EXEC:
            return exec_in_process(self.name, node, list(argv), check)
        return labctl("exec", "--lab", self.name, node, "--", *argv, check=check)

    def show_json(self, node: str, what: str):
        import json

        if IN_PROCESS_EXEC:
            return show_json_in_process(self.name, node, what)
        return json.loads(labctl("show", "--lab", self.name, node, what, "--json").stdout)


def bring_up(topology: Path, tag: str) -> RunningLab:
    name = unique_lab_name(tag)
    labctl("up", str(topology), "--name", name)
    return RunningLab(name, topology)


@pytest.fixture(scope="module")
def seed_lab() -> Iterator[RunningLab]:
    lab = None
    try:
        lab = bring_up(SEED, "seed")
        yield lab
    finally:
        name = lab.name if lab else None
        if name:
            labctl("down", name, check=False)


def kill_up_half_way(name: str) -> None:
    """Start `labctl up` of the seed lab and SIGKILL it as soon as its first container
    exists: a lab half-built, as a crash would leave it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl", "up", str(SEED), "--name", name],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = docker.from_env()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if client.containers.list(
                all=True, filters={"label": f"labctl.lab={name}"}, sparse=True
            ):
                break
            time.sleep(0.05)
        assert process.poll() is None, "labctl up finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
