"""Run one ESP data plane with static SAs from a JSON file (integration tests, benchmarks).

Usage: python3 dp_runner.py CONFIG.json [--profile OUT.prof]

Until the IKE engine supplies keys, this is how a node's data plane is brought up by hand.
Config (keys are hex; this file is test-only key material):

    {"tun": {"name": "tunA", "mtu": 1400, "addresses": ["40.1.1.1/32"],
             "routes": [{"network": "192.168.2.0/24", "src": "40.1.1.1"}]},
     "bind_ip": "10.10.10.2", "encap": "udp-natt", "port": 4500,
     "keepalive_interval": 20, "control": "/tmp/x/a.sock",
     "tunnels": [{"name": "to-b", "remote_networks": ["192.168.2.0/24"],
                  "peer": ["172.16.172.50", 4500], "send_keepalives": true,
                  "outbound": {"spi": 1, "cipher": "aes128-cbc", "integrity": "hmac-sha1-96",
                               "enc_key": "...", "auth_key": "..."},
                  "inbound": [{...}]}]}

Control socket (Unix stream, one request line per connection):
    stats                 -> JSON of Dataplane.stats() plus "events"
    rekey {"tunnel": ..., "outbound": {...}, "inbound": [{...}], "grace": 5}  -> "ok"
                          (either part may be omitted: install inbound first, then switch)
Prints "READY" on stdout once the TUN and sockets are up; SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the worktree root

from labctl.agent.dataplane import Dataplane, Encap
from labctl.agent.esp_sockets import open_raw_esp, open_udp
from labctl.agent.loop import EventLoop
from labctl.agent.tun import TunDevice
from labctl.esp import EspSa


def make_sa(spec: dict[str, Any], direction: str) -> EspSa:
    return EspSa(
        int(spec["spi"]),
        spec["cipher"],
        spec["integrity"],
        bytes.fromhex(spec["enc_key"]),
        bytes.fromhex(spec["auth_key"]),
        direction=direction,
    )


def event_json(event: Any) -> dict[str, Any]:
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


class ControlServer:
    def __init__(self, loop: EventLoop, path: str, dp: Dataplane, events: list[dict]) -> None:
        self.loop, self.dp, self.events = loop, dp, events
        Path(path).unlink(missing_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.setblocking(False)
        loop.add_reader(self.sock, self._accept)

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(2)
            request = b""
            while not request.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                request += chunk
            conn.sendall(self._handle(request.decode().strip()).encode() + b"\n")

    def _handle(self, request: str) -> str:
        command, _, arg = request.partition(" ")
        if command == "stats":
            return json.dumps({**self.dp.stats(), "events": self.events})
        if command == "rekey":
            spec = json.loads(arg)
            out = spec.get("outbound")
            self.dp.install_sas(
                spec["tunnel"],
                outbound=make_sa(out, "out") if out else None,
                inbound=[make_sa(s, "in") for s in spec.get("inbound", [])],
                grace=spec.get("grace"),
            )
            return "ok"
        return json.dumps({"error": f"unknown command {command!r}"})


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--profile", help="write cProfile stats here on exit")
    args = parser.parse_args()
    cfg = json.loads(Path(args.config).read_text())
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )

    tcfg = cfg["tun"]
    tun = TunDevice.create(tcfg["name"], tcfg.get("mtu", 1400), txqueuelen=tcfg.get("txqueuelen"))
    for addr in tcfg.get("addresses", []):
        tun.add_address(addr)
    for route in tcfg.get("routes", []):
        tun.add_route(route["network"], src=route.get("src"))

    encap = Encap(cfg["encap"])
    sockets: dict[str, socket.socket] = {}
    if encap is Encap.ESP:
        sockets["raw_socket"] = open_raw_esp(cfg["bind_ip"])
    else:
        sock = open_udp(cfg["bind_ip"], cfg.get("port", 4500))
        sockets["natt_socket" if encap is Encap.NATT else "cisco_socket"] = sock

    loop = EventLoop()
    events: list[dict] = []

    def on_event(event: Any) -> None:
        record = event_json(event)
        events.append(record)
        print(json.dumps(record), file=sys.stderr, flush=True)

    dp = Dataplane(
        loop,
        tun,
        on_event=on_event,
        keepalive_interval=cfg.get("keepalive_interval", 20.0),
        **sockets,
    )
    for t in cfg["tunnels"]:
        dp.add_tunnel(
            t["name"],
            encap=encap,
            remote_networks=t["remote_networks"],
            peer=tuple(t["peer"]) if t.get("peer") else None,
            outbound=make_sa(t["outbound"], "out"),
            inbound=[make_sa(s, "in") for s in t["inbound"]],
            send_keepalives=t.get("send_keepalives", False),
        )
    control = ControlServer(loop, cfg["control"], dp, events) if cfg.get("control") else None
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    print("READY", flush=True)

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        loop.run()
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        dp.close()
        if control is not None:
            control.sock.close()
            Path(cfg["control"]).unlink(missing_ok=True)
        for sock in sockets.values():
            sock.close()
        tun.close()
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
