"""Minimal concentrator for the interop tests: the sans-I/O Responder behind real UDP sockets.

Not the agent (that is the next issue): just enough I/O to let a real vpnc talk to the engine.
UDP 500 and the NAT-T port are bound on one address; on the NAT-T port the 4-byte non-ESP
marker is stripped from IKE, 1-byte 0xFF keepalives are dropped and everything else is ESP.
Every engine event is written as one JSON line (keys included: lab-only test harness).  With
``probe`` configured, each new child SA gets encrypted ICMP echo requests until the client
answers through the tunnel, which proves both directions' KEYMAT against the client.

Usage: python responder.py CONFIG.json   (SIGTERM stops it)
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import select
import signal
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from esp_probe import EspError, EspTunnel, icmp_echo, parse_icmp_reply

from labctl.ike import (
    AddressPool,
    ChildSaEstablished,
    GroupPolicy,
    ModeConfig,
    NattVersion,
    Phase1Established,
    Responder,
    ResponderPolicy,
    SimpleHooks,
    default_phase1,
    default_phase2,
    seed_phase1,
    seed_phase2,
)
from labctl.ike.constants import AuthMethod
from labctl.ike.keyexport import esp_sa_lines_for, ikev1_line_for


def to_json(value):
    if dataclasses.is_dataclass(value):
        out = {"type": type(value).__name__}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            out[f.name] = v.hex() if isinstance(v, bytes) else to_json(v)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv4Network)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def build_policy(cfg: dict) -> tuple[ResponderPolicy, SimpleHooks]:
    extra = ModeConfig(
        banner=cfg.get("banner"),
        save_password=cfg.get("save_password", False),
        pfs=False,
        split_include=tuple(ipaddress.IPv4Network(n) for n in cfg.get("split_include", [])),
        default_domain=cfg.get("default_domain"),
        dns=tuple(ipaddress.IPv4Address(a) for a in cfg.get("dns", [])),
        backup_servers=tuple(cfg.get("backup_servers", [])),
    )
    groups = {
        g["name"]: GroupPolicy(g["name"], g["psk"].encode(), xauth=g.get("xauth", True))
        for g in cfg["groups"]
    }
    if cfg.get("profile") == "seed":
        phase1 = seed_phase1() + tuple(
            dataclasses.replace(p, auth=AuthMethod.PSK) for p in seed_phase1()
        )
        phase2 = seed_phase2()
    else:
        phase1 = default_phase1() + default_phase1(AuthMethod.PSK)
        phase2 = default_phase2()
    passthrough = (
        "half_open_timeout",
        "xauth_max_attempts",
        "modecfg_push",
        "ike_lifetime",
        "ipsec_lifetime",
    )
    kwargs = {k: cfg[k] for k in passthrough if k in cfg}
    if "natt_versions" in cfg:
        kwargs["natt_versions"] = tuple(NattVersion(v) for v in cfg["natt_versions"])
    policy = ResponderPolicy(
        groups=groups,
        phase1=phase1,
        phase2=phase2,
        natt_enabled=cfg.get("natt_enabled", True),
        cisco_udp_port=cfg.get("cisco_udp_port"),
        dpd_idle=cfg.get("dpd_idle", 60.0),
        **kwargs,
    )
    pool = AddressPool(cfg["pool"][0], cfg["pool"][1])
    return policy, SimpleHooks(cfg["users"], pool, extra)


class Daemon:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.listen = cfg["listen"]
        policy, hooks = build_policy(cfg)
        self.natt_port = policy.natt_port
        self.engine = Responder(policy, hooks)
        self.events = open(cfg["events"], "a", buffering=1)  # noqa: SIM115
        self.keys = open(cfg["keys"], "a", buffering=1) if cfg.get("keys") else None  # noqa: SIM115
        self.socks: dict[int, socket.socket] = {}
        ports = [500, self.natt_port]
        if cfg.get("cisco_udp_port"):
            ports.append(cfg["cisco_udp_port"])
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.listen, port))
            self.socks[port] = s
        self.raw_esp = None
        if cfg.get("raw_esp", True):
            self.raw_esp = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
            self.raw_esp.bind((self.listen, 0))  # source address = the concentrator's
        self.tunnels: dict[int, tuple[EspTunnel, dict]] = {}
        self.probe = cfg.get("probe")
        self.running = True
        self.esp_counts: dict[str, int] = {"udp": 0, "raw": 0, "keepalive": 0}

    def log(self, record: dict) -> None:
        record.setdefault("t", time.monotonic())
        self.events.write(json.dumps(record) + "\n")

    def handle(self, out) -> None:
        for d in out.datagrams:
            self.socks[d.local_port].sendto(d.wire_bytes(), d.remote)
        for e in out.events:
            self.log(to_json(e))
            if self.keys is not None and isinstance(e, Phase1Established):
                self.keys.write("ikev1 " + ikev1_line_for(e) + "\n")
            if isinstance(e, ChildSaEstablished):
                if self.keys is not None:
                    for line in esp_sa_lines_for(e):
                        self.keys.write("esp " + line + "\n")
                if self.probe:
                    child = to_json(e)
                    state = {"event": child, "sent": 0, "next": time.monotonic(), "ok": False}
                    self.tunnels[e.inbound_spi] = (EspTunnel(child), state)

    def send_probes(self, now: float) -> None:
        for tunnel, state in self.tunnels.values():
            if state["ok"] or state["sent"] >= self.probe.get("count", 30) or now < state["next"]:
                continue
            child = state["event"]
            dst = child["remote_ts"].split("/")[0]
            packet = tunnel.seal(icmp_echo(self.probe["src"], dst, 0x4C42, state["sent"] + 1))
            state["sent"] += 1
            state["next"] = now + self.probe.get("interval", 1.0)
            peer = tuple(child["peer"])
            if child["encapsulation"].startswith("udp"):
                self.socks[child["local_port"]].sendto(packet, (peer[0], child["udp_port"]))
            elif child["encapsulation"] == "cisco-udp":
                # IPsec over UDP: the client's translated port is only known from its ESP
                dest = state.get("learned") or (peer[0], child["udp_port"])
                self.socks[child["local_port"]].sendto(packet, dest)
            elif self.raw_esp is not None:
                self.raw_esp.sendto(packet, (peer[0], 0))

    def esp_in(self, packet: bytes, how: str, source=None) -> None:
        self.esp_counts[how] += 1
        if len(packet) < 8:
            return
        spi = int.from_bytes(packet[:4], "big")
        entry = self.tunnels.get(spi)
        if entry is None:
            self.log({"type": "EspUnknownSpi", "spi": spi, "how": how})
            return
        tunnel, state = entry
        if source is not None:
            state["learned"] = source
        try:
            inner = tunnel.open(packet)
        except EspError as exc:
            self.log({"type": "EspError", "spi": spi, "reason": str(exc)})
            return
        reply = parse_icmp_reply(inner)
        if reply is not None:
            state["ok"] = True
            self.log(
                {
                    "type": "EspEchoReply",
                    "spi": spi,
                    "src": reply[0],
                    "dst": reply[1],
                    "seq": reply[3],
                    "how": how,
                }
            )
        else:
            self.log(
                {
                    "type": "EspInner",
                    "spi": spi,
                    "length": len(inner),
                    "how": how,
                    "protocol": inner[9] if len(inner) > 9 else None,
                }
            )

    def run(self) -> None:
        self.log({"type": "Ready", "listen": self.listen, "ports": sorted(self.socks)})
        fds = list(self.socks.values()) + ([self.raw_esp] if self.raw_esp else [])
        while self.running:
            now = time.monotonic()
            deadline = self.engine.next_deadline()
            timeout = 0.2 if deadline is None else min(0.2, max(0.0, deadline - now))
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                continue
            for s in ready:
                data, addr = s.recvfrom(65535)
                now = time.monotonic()
                if s is self.raw_esp:
                    ihl = (data[0] & 0x0F) * 4
                    self.esp_in(data[ihl:], "raw")
                    continue
                port = s.getsockname()[1]
                if port == self.natt_port:
                    if data == b"\xff":
                        self.esp_counts["keepalive"] += 1
                        continue
                    if data[:4] != b"\x00\x00\x00\x00":
                        self.esp_in(data, "udp", addr)
                        continue
                    data = data[4:]
                elif port != 500:
                    self.esp_in(data, "udp", addr)
                    continue
                self.handle(self.engine.receive(data, addr, (self.listen, port), now))
            now = time.monotonic()
            deadline = self.engine.next_deadline()
            if deadline is not None and deadline <= now:
                self.handle(self.engine.tick(now))
            if self.probe:
                self.send_probes(now)
        self.log({"type": "Stopped", "stats": dict(self.engine.stats), "esp": self.esp_counts})


def main() -> None:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    daemon = Daemon(cfg)

    def stop(*_):
        daemon.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    daemon.run()


if __name__ == "__main__":
    main()
