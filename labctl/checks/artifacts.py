"""What a failed test leaves for the person who has to understand it.

While a case runs, every link of the lab is captured on its fabric bridge. On failure the
captures are kept together with each node's logs and its tables (xlate, sessions, status);
on success they are deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabctlError
from ..kinds.third_party import KEYS_LOG
from ..lifecycle import LabHandle
from ..naming import bridge_name, fabric_netns, fabric_port_name
from ..state import collect, shows_for
from ..state.charon_keys import parse_charon_keys
from ..topology import Lab

MAX_PACKETS_PER_LINK = 200_000


def tcpdump_command(lab: str, interface: str, output: str, count: int | None = None) -> list[str]:
    """tcpdump on an interface of the lab's fabric namespace (a link's bridge, or one
    endpoint's fabric port), writing pcap to `output` ('-': its standard output)."""
    command = ["ip", "netns", "exec", fabric_netns(lab), "tcpdump"]
    # Deliver each packet as it comes (-U flushes each one): without it libpcap hands
    # packets over in blocks with a 1 s timeout, and a capture stopped right after the
    # traffic, or piped into tshark live, misses the last second.
    command += ["--immediate-mode", "-U", "-n", "-s", "0", "-i", interface]
    # Stay root: Debian's tcpdump otherwise switches to user tcpdump, and a change of
    # credentials clears the parent-death signal that ends it with labctl.
    command += ["-Z", "root"]
    if count is not None:
        command += ["-c", str(count)]
    return [*command, "-w", output]


PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: no dlopen in a child


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when labctl dies, even by SIGKILL (tcpdump then
    flushes and exits; no capture outlives the command that started it)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


class Captures:
    """tcpdump on every fabric bridge of a lab, into one pcap file per link."""

    def __init__(self, handle: LabHandle, directory: Path):
        self.handle = handle
        self.directory = directory
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for segment in self.handle.lab.segments:
            path = self.directory / f"{segment.name}.pcap"
            command = tcpdump_command(
                self.handle.lab.name, bridge_name(segment.index), str(path), MAX_PACKETS_PER_LINK
            )
            self.processes.append(
                subprocess.Popen(
                    command,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,
                )
            )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            _reap(process)
        self.processes.clear()

    def discard(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _reap(process: subprocess.Popen, timeout: float = 5.0) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class CaptureError(LabctlError):
    """A capture could not start (unknown link, tcpdump refused)."""


@dataclass(frozen=True)
class CaptureTarget:
    """What to capture: a whole link (its bridge) or one endpoint (its fabric port)."""

    link: str
    interface: str  # in the fabric namespace
    endpoint: str | None = None  # "node:interface" for one side only

    def describe(self, lab: str) -> str:
        side = f" ({self.endpoint}'s side)" if self.endpoint else ""
        return f"link {self.link}{side}: {self.interface} in netns {fabric_netns(lab)}"


def capture_target(lab: Lab, text: str) -> CaptureTarget:
    """A link name, or NODE:INTERFACE, resolved against the lab's links."""
    for segment in lab.segments:
        if segment.name == text:
            return CaptureTarget(segment.name, bridge_name(segment.index))
        for position, endpoint in enumerate(segment.endpoints):
            if str(endpoint) == text:
                return CaptureTarget(
                    segment.name, fabric_port_name(segment.index, position), str(endpoint)
                )
    links = ", ".join(s.name for s in lab.segments)
    raise CaptureError(
        f"lab {lab.name} has no link or NODE:INTERFACE {text!r} (links: {links}; "
        "labctl inspect lists the interfaces)",
        status=2,
    )


class LinkCapture:
    """One live tcpdump of a link, its pcap written to a file descriptor (a file, a pipe,
    labctl's standard output). start() returns once tcpdump listens."""

    def __init__(self, lab: str, target: CaptureTarget, out_fd: int, count: int | None = None):
        self.lab = lab
        self.target = target
        self.out_fd = out_fd
        self.count = count
        self.process: subprocess.Popen | None = None
        self.messages: list[str] = []  # tcpdump's stderr, for its summary and errors
        self._reader: threading.Thread | None = None
        self._listening = threading.Event()

    def start(self, timeout: float = 10.0) -> LinkCapture:
        command = tcpdump_command(self.lab, self.target.interface, "-", self.count)
        self.process = subprocess.Popen(
            command,
            stdout=self.out_fd,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                said = " ".join(self.messages).strip() or "no message"
                raise CaptureError(f"tcpdump on {self.target.describe(self.lab)} failed: {said}")
        return self

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").strip()
            self.messages.append(line)
            if "listening on" in line:
                self._listening.set()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """tcpdump's exit status once it ends (count reached, reader gone), or None."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGINT (tcpdump flushes and says how many packets), then reap; idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        _reap(self.process)
        if self._reader is not None:
            self._reader.join(timeout=2)

    def summary(self) -> str:
        return "; ".join(m for m in self.messages if "packets" in m)


KEY_TABLES = ("ikev1_decryption_table", "esp_sa")
KEY_DIR = "/var/log/labctl/keys"  # where agents write them (labctl/agent/keylog.py)
CHARON_KEYS_LOG = KEYS_LOG.rsplit("/", 1)[-1]  # a strongSwan node's key dumps, in KEY_DIR
WIRESHARK_PREFERENCES = (
    "esp.enable_encryption_decode: TRUE\nesp.enable_authentication_check: TRUE\n"
)


def key_exporting_nodes(lab: Lab) -> list[str]:
    """VPN nodes with the lab-only `vpn.debug.export-keys` switch on."""
    found = []
    for name, node in lab.nodes.items():
        debug = getattr(getattr(node, "vpn", None), "debug", None)
        if debug is not None and getattr(debug, "export_keys", False):
            found.append(name)
    return found


def read_key_tables(handle: LabHandle) -> dict[str, str]:
    """The Wireshark key tables of every key-exporting node, joined (each line once): the
    tables our agent writes, and the ones made here from a strongSwan node's key log."""
    tables: dict[str, list[str]] = {name: [] for name in KEY_TABLES}
    for node in key_exporting_nodes(handle.lab):
        paths = " ".join(f"{KEY_DIR}/{name}" for name in (*KEY_TABLES, CHARON_KEYS_LOG))
        result = handle.session(node).run(
            f'for f in {paths}; do echo "== $f"; cat "$f" 2>/dev/null; done', timeout=20
        )
        sections: dict[str, list[str]] = {}
        current: list[str] = []
        for line in result.stdout.splitlines():
            if line.startswith("== "):
                current = sections.setdefault(line.rsplit("/", 1)[-1], [])
            else:
                current.append(line)
        charon = parse_charon_keys("\n".join(sections.get(CHARON_KEYS_LOG, [])))
        found = {
            "ikev1_decryption_table": sections.get("ikev1_decryption_table", []) + charon.ikev1,
            "esp_sa": sections.get("esp_sa", []) + charon.esp,
        }
        for name, lines in found.items():
            for line in lines:
                if line.strip() and line not in tables[name]:
                    tables[name].append(line)
    return {name: "".join(line + "\n" for line in lines) for name, lines in tables.items()}


def write_wireshark_keys(directory: Path, tables: dict[str, str]) -> None:
    """A Wireshark configuration folder (WIRESHARK_CONFIG_DIR) with the key tables as its
    UAT files and ESP decryption switched on. Root-only: the files hold live keys."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, text in {**tables, "preferences": WIRESHARK_PREFERENCES}.items():
        path = directory / name
        tmp = directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)  # a reader never sees half a table


def save_failure_artifacts(handle: LabHandle, directory: Path) -> list[Path]:
    """Logs and tables of every node; best effort, never raises."""
    directory.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    docker = getattr(handle.runtime, "client", None)
    for name, info in handle.nodes.items():
        node_dir = directory / name
        node_dir.mkdir(exist_ok=True)
        if docker is not None:
            with contextlib.suppress(Exception):
                logs = docker.containers.get(info.name).logs(tail=2000)
                (node_dir / "container.log").write_bytes(logs)
                saved.append(node_dir / "container.log")
        with contextlib.suppress(Exception):
            result = handle.session(name).run(
                'for f in /var/log/labctl/*.log; do [ -f "$f" ] && echo "== $f" && '
                'tail -n 2000 "$f"; done; true',
                timeout=20,
            )
            (node_dir / "agent.log").write_text(result.stdout)
            saved.append(node_dir / "agent.log")
        tables = shows_for(handle.lab.node(name))
        for what in ("xlate", "sessions", "status", "arp", "route"):
            if what not in tables:
                continue
            with contextlib.suppress(Exception):
                records, text = collect(handle, name, what, verbose=True)
                (node_dir / f"{what}.txt").write_text(text)
                (node_dir / f"{what}.json").write_text(json.dumps(records, indent=2, default=str))
                saved.append(node_dir / f"{what}.txt")
    return saved
