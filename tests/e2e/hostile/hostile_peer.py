"""A hostile IKE peer, run INSIDE a lab node by tests/e2e/test_hostile_peers.py.

Standard library only (the node has Debian's python3, not labctl). Everything it sends goes
to one target address given on the command line -- the concentrator's public address, on
the lab's own link -- and every phase is bounded in count and by an overall deadline, so it
stops by itself. Phases, in this order (against UDP 500 / 4500 and the TCP port):

  inject     first messages whose group name carries newlines, CR, ANSI escapes and a
             forged event-log record
  random     random datagrams to 500 and 4500 (half of the 4500 ones with the non-ESP
             marker, so they reach IKE; the rest are ESP with unknown SPIs), a quarter of
             them well-formed headers with random cookies (no such SA)
  mutated    a valid aggressive-mode message 1 with bits flipped, bytes cut or appended
  flood      aggressive-mode first messages with random cookies, the lab's group: each
             valid one opens a half-open SA that is then abandoned
  tcp-junk   TCP connections sending random bytes (no cTCP trailer), and cTCP records
             carrying garbage IKE
  tcp-hold   idle TCP connections, held open for --hold seconds, then closed

It prints one JSON line with what it sent and what it saw (e.g. how many TCP connections
the concentrator closed at once), then "done".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import sys
import time

FORGED = "FORGED-RECORD"
IKE_PORT, NATT_PORT = 500, 4500
VIDS = [
    bytes.fromhex("09002689dfd6b712"),  # XAUTH
    bytes.fromhex("12f5f28c457168a9702d9fe274cc0100"),  # Cisco Unity
    bytes.fromhex("4a131c81070358455c5728f20e95452f"),  # RFC 3947
    bytes.fromhex("afcad71368a1f1c96b8696fc77570100"),  # DPD
]


def payload(next_type: int, body: bytes) -> bytes:
    return struct.pack("!BBH", next_type, 0, 4 + len(body)) + body


def aggressive_first(icookie: bytes, group: bytes) -> bytes:
    """SA (3DES/MD5/group 2/XAUTH-PSK), KE (128 random bytes), NONCE, ID (KEY_ID), VIDs."""
    attrs = b"".join(struct.pack("!HH", 0x8000 | t, v) for t, v in ((1, 5), (2, 1), (3, 65001)))
    attrs += struct.pack("!HHHH", 0x8004, 2, 0x800B, 1)  # group 2, life type seconds
    attrs += struct.pack("!HHI", 12, 4, 86400)  # life duration as a 4-byte TLV
    transform = payload(0, struct.pack("!BBH", 1, 1, 0) + attrs)
    proposal = payload(0, struct.pack("!BBBB", 1, 1, 0, 1) + transform)
    sa = struct.pack("!II", 1, 1) + proposal
    ke = os.urandom(128)
    nonce = os.urandom(20)
    ident = struct.pack("!BBH", 11, 17, 500) + group
    bodies = [(1, sa), (4, ke), (10, nonce), (5, ident)] + [(13, v) for v in VIDS]
    chain = b""
    for i, (_, body) in enumerate(bodies):
        nxt = bodies[i + 1][0] if i + 1 < len(bodies) else 0
        chain += payload(nxt, body)
    header = icookie + bytes(8) + struct.pack("!BBBBII", 1, 0x10, 4, 0, 0, 28 + len(chain))
    return header + chain


def cookie() -> bytes:
    return os.urandom(7) + b"\x01"  # never all zero


def ctcp_ike(message: bytes, seq: int) -> bytes:
    """An IKE message as a Cisco cTCP record (UDP header 500 -> 500, trailer)."""
    udp = struct.pack("!HHHH", 500, 500, 8 + len(message), 0)
    trailer = bytes(4) + struct.pack("!HH", seq, 0x4000) + b"\x21\x45\x6c\x69\x10\x11\x01\x00"
    return udp + message + trailer


class Peer:
    def __init__(self, target: str, deadline: float, pace: float) -> None:
        self.target = target
        self.deadline = deadline
        self.pace = pace
        self.udp = {}
        for port in (IKE_PORT, NATT_PORT):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", 0))
            sock.setblocking(False)
            self.udp[port] = sock
        self.sent: dict[str, int] = {}
        self.seen: dict[str, int] = {}

    def time_left(self) -> bool:
        return time.monotonic() < self.deadline

    def send(self, phase: str, port: int, data: bytes) -> None:
        try:
            self.udp[port].sendto(data, (self.target, port))
            self.sent[phase] = self.sent.get(phase, 0) + 1
        except (BlockingIOError, OSError):
            self.seen["udp_send_errors"] = self.seen.get("udp_send_errors", 0) + 1
        if self.pace:
            time.sleep(self.pace)
        self.drain()

    def drain(self) -> None:
        for sock in self.udp.values():
            while True:
                try:
                    sock.recv(65535)
                except (BlockingIOError, OSError):
                    break
                self.seen["udp_replies"] = self.seen.get("udp_replies", 0) + 1

    # -- phases ------------------------------------------------------------------------------

    def random_datagrams(self, count: int) -> None:
        for i in range(count):
            if not self.time_left():
                return
            data = os.urandom(random.randint(0, 600))
            if i % 4 == 1:  # a well-formed header for an SA that does not exist
                body = os.urandom(16 * random.randint(1, 20))
                fields = (8, 0x10, random.choice((5, 6, 32)), 1, random.getrandbits(32))
                data = cookie() + cookie() + struct.pack("!BBBBII", *fields, 28 + len(body))
                data += body
            if i % 2:
                self.send("random", IKE_PORT, data)
            else:
                marker = b"\0\0\0\0" if i % 4 == 0 else b""
                self.send("random", NATT_PORT, marker + data)

    def mutated(self, count: int, group: bytes) -> None:
        for i in range(count):
            if not self.time_left():
                return
            buf = bytearray(aggressive_first(cookie(), group))
            for _ in range(random.randint(1, 6)):
                kind = random.choice(("flip", "set", "cut", "extend"))
                if kind == "flip" and buf:
                    buf[random.randrange(len(buf))] ^= 1 << random.randrange(8)
                elif kind == "set" and buf:
                    buf[random.randrange(len(buf))] = random.randrange(256)
                elif kind == "cut":
                    del buf[random.randint(0, len(buf)) :]
                else:
                    buf += os.urandom(random.randint(1, 64))
            if i % 2:
                self.send("mutated", IKE_PORT, bytes(buf))
            else:
                self.send("mutated", NATT_PORT, b"\0\0\0\0" + bytes(buf))

    def flood(self, count: int, group: bytes) -> None:
        for _ in range(count):
            if not self.time_left():
                return
            self.send("flood", IKE_PORT, aggressive_first(cookie(), group))

    def inject(self, count: int) -> None:
        names = [
            f"ciscovpn\n2 2026-11-29 16:00:01.123 SEV=5 AUTH/5 10.0.0.1 {FORGED} admin",
            f"x\r\n{FORGED}\r\n",
            f"\x1b[2J\x1b[H{FORGED}\u2028{FORGED}",
        ]
        for i in range(count):
            if not self.time_left():
                return
            name = names[i % len(names)].encode()
            self.send("inject", IKE_PORT, aggressive_first(cookie(), name))

    def tcp_junk(self, port: int, count: int) -> None:
        for i in range(count):
            if not self.time_left():
                return
            try:
                with socket.create_connection((self.target, port), timeout=2) as sock:
                    if i % 2:
                        sock.sendall(os.urandom(20000))  # no trailer within 16 kB
                    else:
                        junk = os.urandom(random.randint(28, 300))
                        sock.sendall(ctcp_ike(junk, 1) + ctcp_ike(cookie() + os.urandom(40), 2))
                    self.sent["tcp-junk"] = self.sent.get("tcp-junk", 0) + 1
                    time.sleep(0.01)
            except OSError:
                self.seen["tcp_junk_errors"] = self.seen.get("tcp_junk_errors", 0) + 1

    def tcp_hold(self, port: int, count: int, hold: float) -> None:
        socks = []
        for _ in range(count):
            try:
                s = socket.create_connection((self.target, port), timeout=2)
                s.setblocking(False)
                socks.append(s)
            except OSError:
                self.seen["tcp_hold_connect_errors"] = (
                    self.seen.get("tcp_hold_connect_errors", 0) + 1
                )
        self.sent["tcp-hold"] = len(socks)
        print(json.dumps({"holding": len(socks)}), flush=True)
        time.sleep(min(2.0, hold))
        self.seen["tcp_hold_closed_by_server"] = sum(_closed(s) for s in socks)
        print(json.dumps({"closed_by_server": self.seen["tcp_hold_closed_by_server"]}), flush=True)
        end = min(self.deadline, time.monotonic() + hold)
        while time.monotonic() < end:
            time.sleep(0.2)
        for s in socks:
            s.close()


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--group", default="ciscovpn")
    parser.add_argument("--tcp-port", type=int, default=10000)
    parser.add_argument("--random", type=int, default=3000)
    parser.add_argument("--mutated", type=int, default=3000)
    parser.add_argument("--flood", type=int, default=3000)
    parser.add_argument("--inject", type=int, default=30)
    parser.add_argument("--tcp-junk", type=int, default=100)
    parser.add_argument("--tcp-hold", type=int, default=150)
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--deadline", type=float, default=120.0)
    parser.add_argument("--pace", type=float, default=0.0002)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args(argv)
    random.seed(args.seed)
    peer = Peer(args.target, time.monotonic() + args.deadline, args.pace)
    group = args.group.encode()
    started = time.monotonic()
    peer.inject(args.inject)  # first: later phases' failures would rate-limit its lines
    peer.random_datagrams(args.random)
    peer.mutated(args.mutated, group)
    peer.flood(args.flood, group)
    peer.tcp_junk(args.tcp_port, args.tcp_junk)
    peer.tcp_hold(args.tcp_port, args.tcp_hold, args.hold)
    peer.drain()
    result = {"sent": peer.sent, "seen": peer.seen, "seconds": round(time.monotonic() - started, 1)}
    print(json.dumps(result), flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
