"""Issue 8, "Changes to a running lab", on real labs: a push the agent cannot apply changes
nothing, `up` re-pushes a changed secret, commands use what `up` recorded, one labctl at a
time per lab, and `status` says when a lab is not whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from .conftest import ROOT, SEED, CliResult, labctl, unique_lab_name
from .host_snapshot import lab_footprint

PSK_ENV = "LABCTL_E2E_RUNLAB_PSK"
OLD_PSK, NEW_PSK = "cisco123", "n3w-e2e-psk"


@dataclass
class FileLab:
    """A lab brought up from its own copy of the seed (tests edit that copy)."""

    name: str
    topology: Path
    original: str

    def cli(self, *args: str, check: bool = True) -> CliResult:
        return labctl(*args, check=check)

    def exec(self, node: str, *argv: str, check: bool = True) -> CliResult:
        return labctl("exec", "--lab", self.name, node, "--", *argv, check=check)

    def up(self, check: bool = True) -> CliResult:
        return labctl("up", str(self.topology), "--name", self.name, check=check)

    def edit(self, old: str, new: str) -> None:
        text = self.topology.read_text()
        assert old in text, old
        self.topology.write_text(text.replace(old, new))

    def restore(self) -> None:
        self.topology.write_text(self.original)


def psk_topology(folder: Path) -> str:
    """The seed with the concentrator's PSK and client1's group password from the
    environment; client2 keeps the inline one."""
    text = SEED.read_text()
    text = text.replace("psk: cisco123", f"psk: {{env: {PSK_ENV}}}")
    text = text.replace(
        "vpn: {user: vpnclient1, password: vpnclient1pw}",
        f"vpn: {{user: vpnclient1, password: vpnclient1pw, group-password: {{env: {PSK_ENV}}}}}",
    )
    assert text.count(PSK_ENV) == 2
    return text


@pytest.fixture(scope="module")
def file_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileLab]:
    folder = tmp_path_factory.mktemp("running-lab")
    topology = folder / "seed.yaml"
    text = psk_topology(folder)
    topology.write_text(text)
    os.environ[PSK_ENV] = OLD_PSK
    lab = FileLab(unique_lab_name("change"), topology, text)
    try:
        lab.up()
        yield lab
    finally:
        labctl("down", lab.name, check=False)
        os.environ.pop(PSK_ENV, None)


@pytest.fixture
def restored(file_lab: FileLab) -> Iterator[FileLab]:
    """Each test starts from the original file and PSK, and puts them back after."""
    file_lab.restore()
    os.environ[PSK_ENV] = OLD_PSK
    yield file_lab
    file_lab.restore()
    os.environ[PSK_ENV] = OLD_PSK
    file_lab.up()  # re-pushes whatever a test changed


def up_in_background(name: str, topology: Path = SEED) -> subprocess.Popen:
    """`labctl up` of the seed lab as another process (its stderr kept for a failure)."""
    return subprocess.Popen(
        [sys.executable, "-m", "labctl", "up", str(topology), "--name", name],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def connected(lab: FileLab, client: str, timeout: int = 60) -> CliResult:
    lab.exec(client, "vpn", "disconnect", check=False)
    return lab.exec(client, "vpn", "connect", "--wait", "--timeout", str(timeout), check=False)


def test_a_push_the_concentrator_cannot_apply_changes_nothing(restored: FileLab) -> None:
    lab = restored
    assert connected(lab, "client1").returncode == 0
    config_before = lab.exec("vpn3000", "cat", "/etc/labctl/vpn.json").stdout
    pid_before = lab.exec("vpn3000", "cat", "/run/labctl/vpn-agent.pid").stdout
    lab.edit("public: 172.16.172.50/24", "public: 172.16.172.99/24")

    result = lab.cli("push", "--lab", lab.name, "vpn3000", check=False)

    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    failure = [line for line in result.stderr.splitlines() if line.startswith("labctl: push")]
    assert failure == [
        "labctl: push vpn3000: /etc/labctl/vpn.json rejected by 'vpn service check FILE': "
        "vpn: /etc/labctl/vpn.json: IKE: cannot bind UDP 172.16.172.99:500: "
        "172.16.172.99 is not an address of this node; "
        "the node keeps its running configuration"
    ], result.stderr
    # The file on the node and the agent serving it are the old ones.
    assert lab.exec("vpn3000", "cat", "/etc/labctl/vpn.json").stdout == config_before
    assert lab.exec("vpn3000", "cat", "/run/labctl/vpn-agent.pid").stdout == pid_before
    assert "labctl-new" not in lab.exec("vpn3000", "ls", "-a", "/etc/labctl").stdout
    # client1 stayed connected through it; client2 connects to the old configuration.
    status = json.loads(lab.exec("client1", "vpn", "status", "--json").stdout)
    assert status["state"] == "connected", status
    ping = lab.exec("client1", "ping", "-c", "2", "-W", "2", "192.168.2.10", check=False)
    assert ping.returncode == 0, ping.stdout
    assert connected(lab, "client2").returncode == 0


def test_up_pushes_a_changed_psk_to_the_nodes_that_use_it(restored: FileLab) -> None:
    lab = restored
    os.environ[PSK_ENV] = NEW_PSK

    result = lab.up()

    assert "nothing to do" not in result.stderr
    assert "re-pushed vpn3000, client1 (configuration changed)" in result.stderr, result.stderr
    with_new = connected(lab, "client1")
    assert with_new.returncode == 0, with_new
    with_old = connected(lab, "client2", timeout=20)
    assert with_old.returncode == 1
    assert "HASH_R mismatch (wrong group password?)" in with_old.stderr, with_old
    # The record keeps digests, never the values.
    state = Path("/var/lib/labctl/labs") / lab.name
    for path in state.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert NEW_PSK.encode() not in data and OLD_PSK.encode() not in data, path


@pytest.mark.parametrize("breakage", ["secret unset", "file broken"])
def test_commands_on_the_running_lab_use_what_up_recorded(restored: FileLab, breakage: str) -> None:
    lab = restored
    if breakage == "secret unset":
        del os.environ[PSK_ENV]
    else:
        lab.topology.write_text("name: [this is not a topology\n")

    assert lab.exec("client1", "echo", "still here").stdout == "still here\n"
    sessions = json.loads(labctl("show", "--lab", lab.name, "vpn3000", "sessions", "--json").stdout)
    assert isinstance(sessions, list)
    rows = json.loads(labctl("status", lab.name, "--json").stdout)
    assert {r["lab_state"] for r in rows} == {"up"}

    pushed = labctl("push", "--lab", lab.name, "vpn3000", check=False)
    assert pushed.returncode == 1 and "Traceback" not in pushed.stderr
    assert pushed.stderr.startswith(f"{lab.topology}:"), pushed.stderr


def test_test_keep_runs_changed_checks_on_the_running_lab(
    restored: FileLab, tmp_path: Path
) -> None:
    """Only `expect` changed: the lab that is up is the same topology (it used to be
    "running with a different topology")."""
    lab = restored
    containers = lab.cli("status", lab.name, "--json").stdout
    text = lab.topology.read_text()
    lab.topology.write_text(
        text[: text.index("expect:")] + "expect:\n  - ping: {from: client1, to: 172.16.172.50}\n"
    )
    result = lab.cli(
        "test",
        str(lab.topology),
        "--keep",
        "--lab",
        lab.name,
        "--report-dir",
        str(tmp_path),
        check=False,
    )
    assert result.returncode == 0, result
    assert "1/1 passed" in result.stdout, result
    assert lab.cli("status", lab.name, "--json").stdout == containers


def test_a_second_up_of_a_lab_being_built_is_refused(tmp_path: Path) -> None:
    from labctl.lifecycle.lock import lock_holder

    name = unique_lab_name("busy")
    # The seed lab comes up in a few seconds, about the time the second `up` takes to
    # start: its server's command at the end keeps the first `up` (and its lock) for 8 s
    # more, so the second always meets a lab being built.
    seed = SEED.read_text()
    server = "      routes: [default via 192.168.2.251]\n"
    assert seed.count(server) == 1
    slow = tmp_path / SEED.name
    slow.write_text(seed.replace(server, server + '      exec: ["sleep 8"]\n'))
    first = up_in_background(name, slow)
    try:
        deadline = time.monotonic() + 60
        while lock_holder(name) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lock_holder(name) is not None, "the first up never took the lab's lock"
        env = {**os.environ, "LABCTL_LOCK_WAIT": "0.5"}
        second = subprocess.run(
            [sys.executable, "-m", "labctl", "up", str(slow), "--name", name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert first.poll() is None, "the first up finished before the second tried: no proof"
        assert second.returncode == 1
        assert second.stderr.strip() == (
            f"labctl: lab {name} is busy: `labctl up` (pid {first.pid}) is running"
        )
        first_stderr = first.communicate(timeout=300)[1]
        assert first.returncode == 0, first_stderr
        rows = json.loads(labctl("status", name, "--json").stdout)
        assert len(rows) == 6 and {r["lab_state"] for r in rows} == {"up"}
        ping = labctl("exec", "--lab", name, "client1", "--", "ping", "-c", "1", "172.16.172.50")
        assert ping.returncode == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        labctl("down", name, check=False)
    assert lab_footprint(name).empty


def test_status_says_when_a_lab_is_not_whole() -> None:
    name = unique_lab_name("whole")
    try:
        labctl("up", str(SEED), "--name", name)
        subprocess.run(["ip", "netns", "delete", f"labctl-{name}"], check=True)
        rows = json.loads(labctl("status", name, "--json").stdout)
        assert len(rows) == 6
        assert all(r["lab_state"].startswith("broken: fabric namespace missing") for r in rows)
        text = labctl("status", name).stdout
        assert f"lab {name}: broken: fabric namespace missing" in text, text
        # `up` again rebuilds it.
        again = labctl("up", str(SEED), "--name", name)
        assert "rebuilding it" in again.stderr
        rows = json.loads(labctl("status", name, "--json").stdout)
        assert {r["lab_state"] for r in rows} == {"up"}
    finally:
        labctl("down", name, check=False)
    assert lab_footprint(name).empty


def test_status_says_when_up_did_not_finish() -> None:
    name = unique_lab_name("killed")
    process = up_in_background(name)
    try:
        deadline = time.monotonic() + 120
        client = docker.from_env()
        # Kill it once every container exists: nodes made, configuration not yet pushed.
        while time.monotonic() < deadline and process.poll() is None:
            found = client.containers.list(
                all=True, filters={"label": f"labctl.lab={name}"}, sparse=True
            )
            if len(found) == 6:
                break
            time.sleep(0.05)
        assert process.poll() is None, "labctl up finished before it could be killed"
        process.kill()
        process.wait()
        rows = json.loads(labctl("status", name, "--json").stdout)
        assert rows and {r["lab_state"] for r in rows} == {
            f"incomplete: up did not finish (run labctl up again or labctl down {name})"
        }
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        labctl("down", name, check=False)
    assert lab_footprint(name).empty
