"""The seed topology in network namespaces, for interop tests.

    client1 10.10.10.2 ─┐
    client2 10.10.10.3 ─┤ br0 10.10.10.1 [nat] 171.69.89.78/23 ── 171.69.88.1/23 [server]
                                 nftables masquerade               172.16.172.50 (concentrator)

Every namespace name carries a random suffix; nothing is created in the root namespace (veth
pairs are born inside the lab namespaces), nothing is routed to the host's uplink.  ``close``
stops the processes this object started (by PID) and deletes the namespaces; it is safe to
call twice and is meant for finalizers.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

SERVER_IP = "172.16.172.50"
ROUTER_IP = "171.69.88.1"
NAT_OUTSIDE = "171.69.89.78"
CLIENT_IPS = ("10.10.10.2", "10.10.10.3")

REQUIRED_TOOLS = {
    "ip": "iproute2",
    "nft": "nftables",
    "vpnc": "vpnc",
    "tshark": "tshark",
    "tcpdump": "tcpdump",
}


def missing_prerequisites() -> list[str]:
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (network namespaces)")
    for tool, package in REQUIRED_TOOLS.items():
        if shutil.which(tool) is None:
            problems.append(f"'{tool}' not found: apt-get install {package}")
    if not Path("/dev/net/tun").exists():
        problems.append("/dev/net/tun missing (vpnc needs a TUN device)")
    return problems


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


class NetLab:
    def __init__(self, clients: int = 2) -> None:
        sfx = secrets.token_hex(3)
        self.ns = {
            "nat": f"ike-nat-{sfx}",
            "server": f"ike-srv-{sfx}",
            **{f"client{i + 1}": f"ike-cl{i + 1}-{sfx}" for i in range(clients)},
        }
        self.clients = clients
        self.procs: list[subprocess.Popen] = []
        self._created: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def create(self) -> NetLab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        for name in self.ns.values():
            _run("ip", "netns", "add", name)
            self._created.append(name)
            _run("ip", "-n", name, "link", "set", "lo", "up")
        nat, srv = self.ns["nat"], self.ns["server"]
        _run("ip", "-n", nat, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", nat, "addr", "add", "10.10.10.1/24", "dev", "br0")
        _run("ip", "-n", nat, "link", "set", "br0", "up")
        for i in range(self.clients):
            cl = self.ns[f"client{i + 1}"]
            port = f"vc{i + 1}"
            _run(
                "ip",
                "-n",
                nat,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                cl,
            )
            _run("ip", "-n", nat, "link", "set", port, "master", "br0", "up")
            _run("ip", "-n", cl, "addr", "add", f"{CLIENT_IPS[i]}/24", "dev", "eth0")
            _run("ip", "-n", cl, "link", "set", "eth0", "up")
            _run("ip", "-n", cl, "route", "add", "default", "via", "10.10.10.1")
        _run(
            "ip",
            "-n",
            nat,
            "link",
            "add",
            "out0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            srv,
        )
        _run("ip", "-n", nat, "addr", "add", f"{NAT_OUTSIDE}/23", "dev", "out0")
        _run("ip", "-n", nat, "link", "set", "out0", "up")
        _run("ip", "-n", nat, "route", "add", "default", "via", ROUTER_IP)
        _run("ip", "-n", srv, "addr", "add", f"{ROUTER_IP}/23", "dev", "eth0")
        _run("ip", "-n", srv, "addr", "add", f"{SERVER_IP}/32", "dev", "lo")
        _run("ip", "-n", srv, "link", "set", "eth0", "up")
        self.exec("nat", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ruleset = (
            "table ip labnat {\n"
            "  chain post { type nat hook postrouting priority srcnat; policy accept;\n"
            '    oifname "out0" masquerade\n'
            "  }\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", nat, "nft", "-f", "-"],
            input=ruleset,
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=5)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    proc.kill()
                    proc.wait(timeout=5)
        self.procs.clear()
        for name in reversed(self._created):
            _run("ip", "netns", "del", name, check=False)
        self._created.clear()

    # -- running things inside -----------------------------------------------------------------

    def exec(self, node: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run("ip", "netns", "exec", self.ns[node], *cmd, check=check)

    def spawn(self, node: str, *cmd: str, stdout=None, env=None) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[node], *cmd],
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10.0) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def conntrack_udp(self) -> str:
        """The NAT's connection table (the lab's "show xlate")."""
        return self.exec("nat", "cat", "/proc/net/nf_conntrack", check=False).stdout


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
