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
        return labctl("exec", "--lab", self.name, node, "--", *argv, check=check)

    def show_json(self, node: str, what: str):
        import json

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
