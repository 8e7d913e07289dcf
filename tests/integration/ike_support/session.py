"""Drive one interop scenario: capture on the server link, our responder, real vpnc clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .netlab import SERVER_IP, NetLab, wait_for

SUPPORT = Path(__file__).resolve().parent
RECORD_ENV = SUPPORT / "record-env.sh"
PYTHON = sys.executable


@dataclass
class VpncClient:
    node: str
    user: str
    workdir: Path
    proc: subprocess.Popen
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class InteropSession:
    def __init__(self, lab: NetLab, work: Path, responder_cfg: dict) -> None:
        self.lab = lab
        self.work = work
        self.events_path = work / "events.jsonl"
        self.keys_path = work / "keys.txt"
        self.capture = work / "server.pcap"
        cfg = {
            "listen": SERVER_IP,
            "groups": [{"name": "ciscovpn", "psk": "labsecret"}],
            "users": {"vpnclient1": "pw-one", "vpnclient2": "pw-two"},
            "pool": ["40.1.1.1", "40.1.1.20"],
            "events": str(self.events_path),
            "keys": str(self.keys_path),
            "probe": {"src": "192.168.2.251", "interval": 0.5, "count": 40},
            "dpd_idle": 300,
        }
        cfg.update(responder_cfg)
        self.cfg = cfg
        self.responder: subprocess.Popen | None = None
        self.tcpdump: subprocess.Popen | None = None
        self.clients: list[VpncClient] = []

    # -- start ---------------------------------------------------------------------------------

    def start(self) -> InteropSession:
        self.tcpdump = self.lab.spawn(
            "server",
            "tcpdump",
            "-i",
            "eth0",
            "-U",
            "-n",
            "-w",
            str(self.capture),
            stdout=open(self.work / "tcpdump.log", "w"),  # noqa: SIM115
        )
        wait_for(
            lambda: self.capture.exists() and self.capture.stat().st_size > 0,
            10,
            what="tcpdump to start",
        )
        (self.work / "responder.json").write_text(json.dumps(self.cfg, indent=1))
        self.responder = self.lab.spawn(
            "server",
            PYTHON,
            str(SUPPORT / "responder.py"),
            str(self.work / "responder.json"),
            stdout=open(self.work / "responder.log", "w"),  # noqa: SIM115
        )
        wait_for(
            lambda: any(e["type"] == "Ready" for e in self.events()),
            15,
            what="the responder to bind its sockets",
        )
        return self

    def start_vpnc(
        self,
        node: str,
        user: str,
        password: str,
        *,
        debug: int = 99,
        extra: dict[str, str] | None = None,
        psk: str = "labsecret",
    ) -> VpncClient:
        wd = self.work / node
        wd.mkdir(exist_ok=True)
        conf = {
            "IPSec gateway": SERVER_IP,
            "IPSec ID": "ciscovpn",
            "IPSec secret": psk,
            "Xauth username": user,
            "Xauth password": password,
            "NAT Traversal Mode": "natt",
            "IKE DH Group": "dh2",
            "Perfect Forward Secrecy": "nopfs",
            "Interface name": f"tunike{node[-1]}",
            "Script": str(RECORD_ENV),
            "Pidfile": str(wd / "vpnc.pid"),
            "DPD idle timeout (our side)": "0",
            "Debug": str(debug),
        }
        conf.update(extra or {})
        lines = [f"{k} {v}".rstrip() for k, v in conf.items()]
        lines += ["No Detach", "Noninteractive"]
        (wd / "vpnc.conf").write_text("\n".join(lines) + "\n")
        log = wd / "vpnc.log"
        env = dict(os.environ, IKE_TEST_OUT=str(wd))
        proc = self.lab.spawn(
            node,
            "vpnc",
            str(wd / "vpnc.conf"),
            stdout=open(log, "w"),  # noqa: SIM115
            env=env,
        )
        client = VpncClient(node, user, wd, proc, log)
        self.clients.append(client)
        return client

    def wait_connected(self, client: VpncClient, timeout: float = 30) -> dict[str, str]:
        env_file = client.workdir / "env.connect"

        def ready():
            if client.proc.poll() is not None:
                raise AssertionError(
                    f"vpnc on {client.node} exited ({client.proc.returncode}):\n"
                    + client.log_text()[-3000:]
                )
            return env_file.exists()

        wait_for(ready, timeout, what=f"vpnc on {client.node} to run its connect script")
        client.env = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        return client.env

    def configure_tunnel(self, client: VpncClient) -> None:
        """What a real vpnc-script would do, but only inside the client's namespace."""
        tun, addr = client.env["TUNDEV"], client.env["INTERNAL_IP4_ADDRESS"]
        self.lab.exec(client.node, "ip", "addr", "add", f"{addr}/32", "dev", tun)
        self.lab.exec(client.node, "ip", "link", "set", tun, "up")
        self.lab.exec(client.node, "ip", "route", "add", "192.168.2.0/24", "dev", tun)

    # -- observe -------------------------------------------------------------------------------

    def events(self) -> list[dict]:
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line still being written
        return out

    def events_of(self, kind: str) -> list[dict]:
        return [e for e in self.events() if e["type"] == kind]

    def wait_event(
        self, kind: str, predicate=lambda e: True, timeout: float = 20, count: int = 1
    ) -> list[dict]:
        def found():
            hits = [e for e in self.events_of(kind) if predicate(e)]
            return hits if len(hits) >= count else None

        return wait_for(found, timeout, what=f"{count} {kind} event(s)")

    def keys(self) -> tuple[list[str], list[str]]:
        ikev1, esp = [], []
        for line in self.keys_path.read_text().splitlines() if self.keys_path.exists() else []:
            kind, _, rest = line.partition(" ")
            (ikev1 if kind == "ikev1" else esp).append(rest)
        return ikev1, esp

    # -- stop ----------------------------------------------------------------------------------

    def stop_client(self, client: VpncClient) -> int:
        return self.lab.stop(client.proc)

    def stop(self) -> None:
        for c in self.clients:
            self.lab.stop(c.proc)
        time.sleep(0.5)
        if self.responder is not None:
            self.lab.stop(self.responder)
        if self.tcpdump is not None:
            time.sleep(0.3)
            self.lab.stop(self.tcpdump)


def tshark(*args: str) -> str:
    proc = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"tshark {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout
