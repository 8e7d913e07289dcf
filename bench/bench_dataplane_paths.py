"""Per-packet cost of the data plane's four paths, in one process, no root:

    rx udp  UDP datagram -> _on_socket_readable -> open -> TUN        (NAT-T, Cisco UDP)
    rx tcp  TCP bytes -> StreamConnection -> deframe -> open -> TUN    (IPsec over TCP)
    tx udp  TUN -> _on_tun_readable -> seal -> sendto
    tx tcp  TUN -> _on_tun_readable -> seal -> cTCP record send

AES-128-CBC/HMAC-SHA1, bursts of 64 packets, fake TUN (an AF_UNIX seqpacket pair), real
kernel sockets on 127.0.0.1. Best and median microseconds per packet of --rounds bursts.
Run it with the nodes' interpreter too (/usr/bin/python3: cryptography 38):

    python bench/bench_dataplane_paths.py --out bench/results/dataplane_paths.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labctl import libcrypto  # noqa: E402
from labctl.agent.dataplane import Dataplane, Encap  # noqa: E402
from labctl.agent.loop import EventLoop  # noqa: E402
from labctl.agent.tcp_transport import StreamConnection  # noqa: E402
from labctl.esp import EspSa, frame_esp  # noqa: E402

BURST = 64
SUITE = ("aes128-cbc", "hmac-sha1-96")


class FakeTun:
    def __init__(self) -> None:
        self._ours, self.kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for sock in (self._ours, self.kernel):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._ours.setblocking(False)
        self.fd, self.name, self.mtu = self._ours.fileno(), "bench", 1400

    def drain(self) -> None:
        while select.select([self.kernel], [], [], 0)[0]:
            self.kernel.recv(65536)


def drain(sock: socket.socket) -> None:
    while select.select([sock], [], [], 0)[0]:
        sock.recv(1 << 20)


def inner_packet(size: int) -> bytes:
    packet = bytearray(size)
    packet[0], packet[9] = 0x45, 17
    packet[12:16] = packet[16:20] = bytes([10, 0, 0, 1])
    return bytes(packet)


def sas() -> tuple[EspSa, EspSa]:
    ek, ak = os.urandom(16), os.urandom(20)
    return (
        EspSa.outbound(0x1000, *SUITE, ek, ak),
        EspSa.inbound(0x1000, *SUITE, ek, ak, replay_window=0),
    )


def measure(path: str, size: int, rounds: int) -> list[float]:
    loop, tun = EventLoop(), FakeTun()
    out, inb = sas()
    packet = inner_packet(size)
    nets = ["10.0.0.0/8"]
    if path.endswith("udp"):
        own = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        own.bind(("127.0.0.1", 0))
        own.setblocking(False)
        own.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        dp = Dataplane(loop, tun, natt_socket=own)
        dp.add_tunnel(
            "t",
            encap=Encap.NATT,
            remote_networks=nets,
            peer=peer.getsockname(),
            outbound=out,
            inbound=[inb],
        )
    else:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        peer = socket.create_connection(listener.getsockname())
        own, _ = listener.accept()
        own.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        dp = Dataplane(loop, tun)
        conn = StreamConnection(
            loop,
            own,
            accepted=True,
            on_ike=lambda m, c: None,
            on_esp=dp.receive_stream_esp,
            on_closed=lambda c, r: None,
        )
        dp.add_tunnel(
            "t", encap=Encap.TCP, remote_networks=nets, outbound=out, inbound=[inb], stream=conn
        )
    wire = [bytes(out.seal(packet)) for _ in range(BURST)] if path.startswith("rx") else []
    blob = b"".join(frame_esp(w) for w in wire)
    times = []
    for _ in range(rounds):
        if path == "rx udp":
            for w in wire:
                peer.sendto(w, own.getsockname())
            start = time.perf_counter()
            # one call handles a batch of ~46 full-size datagrams (the receive buffer's
            # batch room): read on until the burst is through or nothing more comes
            counters = dp.tunnel("t").counters
            goal = counters.rx_packets + BURST
            while counters.rx_packets < goal:
                seen = counters.rx_packets
                dp._on_socket_readable(own, Encap.NATT)
                if counters.rx_packets == seen:
                    break
        elif path == "rx tcp":
            peer.sendall(blob)
            time.sleep(0.0005)
            start = time.perf_counter()
            conn._on_readable()
        else:
            for _ in range(BURST):
                tun.kernel.send(packet)
            start = time.perf_counter()
            dp._on_tun_readable()
        times.append((time.perf_counter() - start) / BURST * 1e6)
        tun.drain()
        drain(peer)
    counters = dp.tunnel("t").counters
    done = counters.rx_packets if path.startswith("rx") else counters.tx_packets
    if done < rounds * BURST - BURST:  # rx tcp may leave the last burst half read
        raise RuntimeError(f"{path}: only {done} of {rounds * BURST} packets went through")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--size", type=int, default=1300)
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for path in ("rx udp", "rx tcp", "tx udp", "tx tcp"):
        times = measure(path, args.size, args.rounds)
        rows.append(
            {
                "path": path,
                "packet_bytes": args.size,
                "best_us": round(min(times), 2),
                "median_us": round(statistics.median(times), 2),
            }
        )
        print(
            f"{path}  {args.size} B  best {min(times):6.2f} us  median "
            f"{statistics.median(times):6.2f} us"
        )
    report = {
        "python": platform.python_version(),
        # what does the CBC: libcrypto by ctypes, or the cryptography fallback
        "cipher_backend": "libcrypto" if libcrypto.load() is not None else "cryptography",
        "loadavg": os.getloadavg(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "paths": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
