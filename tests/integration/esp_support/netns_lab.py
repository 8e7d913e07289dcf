"""A four-namespace lab for the ESP data plane: client, PAT firewall, gateway, LAN host.

    [a] a0 10.10.10.2 --- n0 10.10.10.1 [nat] n1 172.16.172.1 --- b0 172.16.172.50 [b]
     tun: 40.1.1.1/32                    (nft masquerade random       b1 192.168.2.251
     route 192.168.2.0/24 -> tun          on n1 when nat=True)             |
                                                                  l0 192.168.2.10 [lan]

Every namespace name carries a random suffix; nothing touches the root namespace (veths are
created directly inside their namespaces). ``destroy()`` stops only the processes this lab
started (by PID) and deletes its namespaces, which removes their veths and TUNs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPPORT = Path(__file__).resolve().parent
WORKTREE = SUPPORT.parents[2]
RUNNER = SUPPORT / "dp_runner.py"
TCP_CHECK = SUPPORT / "tcp_check.py"
# The data plane runs on the nodes' interpreter: Debian's python3 + cryptography 38.
RUNNER_PYTHON = os.environ.get("ESP_RUNNER_PYTHON", "/usr/bin/python3")

A_OUTER, NAT_INSIDE, NAT_OUTSIDE, B_OUTER = (
    "10.10.10.2",
    "10.10.10.1",
    "172.16.172.1",
    "172.16.172.50",
)
CLIENT_INNER, B_LAN, LAN_HOST = "40.1.1.1", "192.168.2.251", "192.168.2.10"
LAN_NET = "192.168.2.0/24"


@dataclass
class Runner:
    role: str
    proc: subprocess.Popen
    control: str
    log: Path

    def request(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.control)
            s.sendall(line.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        return data.decode()

    def stats(self) -> dict[str, Any]:
        return json.loads(self.request("stats"))


class NetnsLab:
    def __init__(self, workdir: Path, nat: bool) -> None:
        suffix = secrets.token_hex(3)
        self.workdir = workdir
        self.nat = nat
        self.ns = {role: f"esp{suffix}-{role}" for role in ("a", "nat", "b", "lan")}
        self._procs: list[subprocess.Popen] = []
        self._created: list[str] = []

    # ------------------------------------------------------------------ plumbing
    def run(
        self,
        role: str,
        *cmd: str,
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns[role], *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"[{role}] `{' '.join(cmd)}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def spawn(self, role: str, *cmd: str, **kw: Any) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns[role], *cmd], **kw)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc in self._procs:
            self._procs.remove(proc)

    # ------------------------------------------------------------------ topology
    def build(self) -> NetnsLab:
        for role, name in self.ns.items():
            subprocess.run(["ip", "netns", "add", name], check=True)
            self._created.append(name)
            self.run(role, "ip", "link", "set", "lo", "up")
            self.run(role, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
            self.run(role, "sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0")
        self._veth("a", "a0", "nat", "n0")
        self._veth("nat", "n1", "b", "b0")
        self._veth("b", "b1", "lan", "l0")
        self._addr("a", "a0", f"{A_OUTER}/24")
        self._addr("nat", "n0", f"{NAT_INSIDE}/24")
        self._addr("nat", "n1", f"{NAT_OUTSIDE}/24")
        self._addr("b", "b0", f"{B_OUTER}/24")
        self._addr("b", "b1", f"{B_LAN}/24")
        self._addr("lan", "l0", f"{LAN_HOST}/24")
        self.run("a", "ip", "route", "add", "default", "via", NAT_INSIDE)
        self.run("lan", "ip", "route", "add", "default", "via", B_LAN)
        for role in ("nat", "b"):
            self.run(role, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if self.nat:
            ruleset = (
                "table ip labnat {\n chain post {\n"
                "  type nat hook postrouting priority srcnat; policy accept;\n"
                # random: every new mapping gets a new port, so a conntrack flush visibly
                # moves the client's endpoint (plain masquerade would re-pick 4500)
                '  oifname "n1" masquerade random\n }\n}\n'
            )
            self.run("nat", "nft", "-f", "-", input=ruleset)
        else:
            self.run("b", "ip", "route", "add", "10.10.10.0/24", "via", NAT_OUTSIDE)
        return self

    def _veth(self, role1: str, if1: str, role2: str, if2: str) -> None:
        subprocess.run(
            [
                "ip",
                "link",
                "add",
                if1,
                "netns",
                self.ns[role1],
                "type",
                "veth",
                "peer",
                "name",
                if2,
                "netns",
                self.ns[role2],
            ],
            check=True,
        )
        self.run(role1, "ip", "link", "set", if1, "up")
        self.run(role2, "ip", "link", "set", if2, "up")

    def _addr(self, role: str, ifname: str, cidr: str) -> None:
        self.run(role, "ip", "addr", "add", cidr, "dev", ifname)

    # ------------------------------------------------------------------ data planes
    def start_runner(
        self, role: str, config: dict[str, Any], profile: Path | None = None
    ) -> Runner:
        control = str(self.workdir / f"{role}.ctl")
        config = {**config, "control": control}
        cfg_path = self.workdir / f"{role}.json"
        cfg_path.write_text(json.dumps(config, indent=1))
        log = self.workdir / f"{role}.log"
        cmd = [RUNNER_PYTHON, str(RUNNER), str(cfg_path)]
        if profile is not None:
            cmd += ["--profile", str(profile)]
        proc = self.spawn(role, *cmd, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "READY":
            self.stop(proc)
            raise RuntimeError(f"{role} data plane did not start; log:\n{log.read_text()}")
        return Runner(role, proc, control, log)

    def tcp_transfer(self, nbytes: int, port: int = 5001) -> dict[str, Any]:
        """Byte-exact TCP both ways between the client's inner address and the LAN host."""
        server = self.spawn(
            "lan",
            sys.executable,
            str(TCP_CHECK),
            "server",
            LAN_HOST,
            str(port),
            str(nbytes),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            ready, _, _ = select.select([server.stdout], [], [], 10)
            assert ready and server.stdout.readline().strip() == "LISTENING"
            done = self.run(
                "a",
                sys.executable,
                str(TCP_CHECK),
                "client",
                LAN_HOST,
                str(port),
                str(nbytes),
                CLIENT_INNER,
                check=False,
                timeout=120,
            )
            server.wait(30)
        finally:
            self.stop(server)
        if done.returncode != 0 and not done.stdout.strip():
            raise RuntimeError(f"TCP client failed: {done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def ping(
        self, count: int, interval: float = 0.05, size: int = 56
    ) -> subprocess.CompletedProcess:
        return self.run(
            "a",
            "ping",
            "-n",
            "-q",
            "-c",
            str(count),
            "-i",
            str(interval),
            "-W",
            "2",
            "-s",
            str(size),
            "-I",
            CLIENT_INNER,
            LAN_HOST,
            check=False,
        )

    # ------------------------------------------------------------------ cleanup
    def destroy(self) -> None:
        for proc in list(self._procs):
            with contextlib.suppress(Exception):  # keep cleaning up the rest
                self.stop(proc)
        for name in self._created:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        self._created.clear()


def wait_for(predicate: Any, timeout: float = 10, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def sa_config(spi: int, cipher: str, integrity: str, enc_key: bytes, auth_key: bytes) -> dict:
    return {
        "spi": spi,
        "cipher": cipher,
        "integrity": integrity,
        "enc_key": enc_key.hex(),
        "auth_key": auth_key.hex(),
    }


def pair_configs(
    encap: str,
    cipher: str,
    integrity: str,
    port: int = 4500,
    keepalive_interval: float = 20.0,
    b_knows_peer: bool = False,
    nat: bool = True,
) -> tuple[dict, dict, dict]:
    """Runner configs for a (client) and b (gateway) plus the SA material for checks."""
    from labctl.esp import cipher_spec, integrity_spec

    c, i = cipher_spec(cipher), integrity_spec(integrity)
    keys = {d: (os.urandom(c.key_len), os.urandom(i.key_len)) for d in ("ab", "ba")}
    spi_ab, spi_ba = 0xA0000000 | secrets.randbits(16), 0xB0000000 | secrets.randbits(16)
    ab = sa_config(spi_ab, cipher, integrity, *keys["ab"])
    ba = sa_config(spi_ba, cipher, integrity, *keys["ba"])
    a = {
        "tun": {
            "name": "tunA",
            "mtu": 1400,
            "addresses": [f"{CLIENT_INNER}/32"],
            "routes": [{"network": LAN_NET, "src": CLIENT_INNER}],
        },
        "bind_ip": A_OUTER,
        "encap": encap,
        "port": port,
        "keepalive_interval": keepalive_interval,
        "tunnels": [
            {
                "name": "to-b",
                "remote_networks": [LAN_NET],
                "peer": [B_OUTER, port],
                "send_keepalives": nat,
                "outbound": ab,
                "inbound": [ba],
            }
        ],
    }
    b_peer = [A_OUTER, port] if b_knows_peer else None
    b = {
        "tun": {"name": "tunB", "mtu": 1400, "routes": [{"network": f"{CLIENT_INNER}/32"}]},
        "bind_ip": B_OUTER,
        "encap": encap,
        "port": port,
        "tunnels": [
            {
                "name": "client1",
                "remote_networks": [f"{CLIENT_INNER}/32"],
                "peer": b_peer,
                "outbound": ba,
                "inbound": [ab],
            }
        ],
    }
    return a, b, {"ab": ab, "ba": ba}
