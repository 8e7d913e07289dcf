"""What a failed test leaves for the person who has to understand it.

While a case runs, every link of the lab is captured on its fabric bridge. On failure the
captures are kept together with each node's logs and its tables (xlate, sessions, status);
on success they are deleted.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
from pathlib import Path

from ..lifecycle import LabHandle
from ..naming import bridge_name, fabric_netns
from ..state import collect, shows_for

MAX_PACKETS_PER_LINK = 200_000


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
            self.processes.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        fabric_netns(self.handle.lab.name),
                        "tcpdump",
                        # Deliver each packet as it comes, or the last second of a case is
                        # still in the kernel's buffer when the capture stops.
                        "--immediate-mode",
                        "-i",
                        bridge_name(segment.index),
                        "-U",
                        "-n",
                        "-s",
                        "0",
                        "-c",
                        str(MAX_PACKETS_PER_LINK),
                        "-w",
                        str(path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def discard(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


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
