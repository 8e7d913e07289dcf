"""Helpers for the VPN end-to-end tests: topology variants, link captures, tshark with the
lab-only key tables, inner-packet checks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from labctl.naming import bridge_name, fabric_netns
from labctl.topology import load_lab

from .conftest import RunningLab

KEY_DIR = "/var/log/labctl/keys"
KEY_TABLES = ("ikev1_decryption_table", "esp_sa")


def topology_variant(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Write ``source`` with ``edit`` applied to its parsed YAML to ``target``."""
    data = yaml.safe_load(source.read_text())
    edit(data)
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def link_bridge(topology: Path, link: str) -> str:
    """The fabric bridge that carries the link named ``link``."""
    for segment in load_lab(topology).segments:
        if segment.name == link:
            return bridge_name(segment.index)
    raise KeyError(f"{topology}: no link named {link!r}")


class LinkCapture:
    """tcpdump on one link's bridge in the lab's fabric namespace (what a tap would see)."""

    def __init__(self, lab: RunningLab, link: str, path: Path, capture_filter: str = ""):
        self.lab = lab
        self.path = path
        self.capture_filter = capture_filter  # tcpdump's expression; "" takes everything
        self.bridge = link_bridge(lab.topology, link)
        self.process: subprocess.Popen | None = None

    def start(self) -> LinkCapture:
        command = ["ip", "netns", "exec", fabric_netns(self.lab.name)]
        # --immediate-mode: without it libpcap hands packets over in blocks with a 1 s
        # timeout, and the last second before SIGINT is lost.
        command += ["tcpdump", "-i", self.bridge, "--immediate-mode", "-U", "-n", "-s", "0"]
        command += ["-w", str(self.path)]
        if self.capture_filter:
            command.append(self.capture_filter)
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tcpdump says "listening on ..." once its socket is open; nothing before is seen.
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        os.set_blocking(fd, False)
        seen = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"listening on" not in seen:
            with contextlib.suppress(BlockingIOError):
                seen += os.read(fd, 4096)
            if self.process.poll() is not None:
                raise AssertionError(f"tcpdump on {self.bridge} exited: {seen.decode()}")
            time.sleep(0.02)
        if b"listening on" not in seen:
            self.stop()
            raise AssertionError(f"tcpdump on {self.bridge} did not start: {seen.decode()}")
        return self

    def stop(self, settle: float = 0.3) -> Path:
        if self.process is not None and self.process.poll() is None:
            time.sleep(settle)  # let the last packets pass the bridge
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        return self.path


def key_tables(lab: RunningLab, node: str) -> dict[str, str]:
    """The node's exported key tables, read over the management session."""
    return {name: lab.exec(node, "cat", f"{KEY_DIR}/{name}").stdout for name in KEY_TABLES}


def key_dir_listing(lab: RunningLab, node: str) -> list[str]:
    """Files in the node's key directory; [] when the directory does not exist."""
    result = lab.exec(node, "sh", "-c", f"ls -A {KEY_DIR} 2>/dev/null || true")
    return result.stdout.split()


@contextlib.contextmanager
def wireshark_profile(tables: dict[str, str]) -> Iterator[dict[str, str]]:
    """A throw-away Wireshark configuration directory holding the key tables as UAT files
    and the ESP decryption preferences; yields the environment tshark must run with. The
    directory (keys included) is deleted on exit, whatever happens."""
    home = tempfile.mkdtemp(prefix="labctl-wireshark-")
    try:
        os.chmod(home, 0o700)
        config = Path(home) / "wireshark"
        config.mkdir()
        for name, text in tables.items():
            (config / name).write_text(text)
        (config / "preferences").write_text(
            "esp.enable_encryption_decode: TRUE\nesp.enable_authentication_check: TRUE\n"
        )
        yield {**os.environ, "XDG_CONFIG_HOME": home, "HOME": home}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def tshark(env: dict[str, str] | None, *args: str) -> str:
    if shutil.which("tshark") is None:
        raise AssertionError("tshark not found: apt-get install tshark")
    proc = subprocess.run(
        ["tshark", "-n", *args], capture_output=True, text=True, timeout=120, env=env
    )
    if proc.returncode != 0:
        raise AssertionError(f"tshark {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def tshark_rows(env: dict[str, str] | None, pcap: Path, display: str, *fields: str) -> list:
    """One list of field values per frame matching ``display`` (multi-valued fields, e.g.
    the outer and inner ip.src, come back as lists)."""
    args = ["-r", str(pcap), "-Y", display, "-T", "fields", "-E", "separator=|"]
    args += ["-E", "occurrence=a", "-E", "aggregator=,"]
    for field in fields:
        args += ["-e", field]
    rows = []
    for line in tshark(env, *args).splitlines():
        rows.append([value.split(",") if value else [] for value in line.split("|")])
    return rows
