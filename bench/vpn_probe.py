"""Runs INSIDE a vpn-client node (system python3, stdlib only): connect-to-first-reply timing.

Per run: disconnect the agent and wait, then at t0 ask it to connect (control socket, as
`vpn connect` does) and send an ICMP echo request to the target every ``interval`` seconds
from a raw socket until the first echo reply from the target arrives (t1). Everything is
timed here, in the node, so no management (SSH) latency is counted. Prints one JSON object.

Before the tunnel is up the requests go the normal way and die at the lab's router (it has
no route to the private net), so the first reply is the first packet through the tunnel.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, "/opt/labctl")
from labctl.agent.control import request  # the node's copy of labctl
from labctl.agent.inet import internet_checksum as checksum


def echo_request(ident: int, seq: int) -> bytes:
    payload = b"labctl-bench" * 4
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload


def wait_state(state: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = request("status")["status"]
        if status["state"] == state:
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"agent not {state} after {timeout}s: {status['state']}")
        time.sleep(0.02)


def one_run(target: str, interval: float, timeout: float) -> dict:
    request("disconnect")
    wait_state("disconnected")
    time.sleep(1.0)  # the concentrator processes our Delete; the PIX keeps its mappings
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    sent: dict[int, float] = {}
    seq = 0
    wall0, t0 = time.time(), time.monotonic()
    request("connect")
    next_send = t0
    try:
        while time.monotonic() - t0 < timeout:
            now = time.monotonic()
            if now >= next_send:
                seq += 1
                sent[seq] = now
                with contextlib.suppress(OSError):  # e.g. routes being replaced right now
                    sock.sendto(echo_request(ident, seq), (target, 0))
                next_send += interval
            ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
            if not ready:
                continue
            data, (source, _) = sock.recvfrom(4096)
            t1 = time.monotonic()
            ihl = (data[0] & 15) * 4
            kind, _, _, rid, rseq = struct.unpack_from("!BBHHH", data, ihl)
            if kind == 0 and rid == ident and source == target:
                status = wait_state("connected")
                return {
                    "first_reply_ms": round((t1 - t0) * 1e3, 2),
                    "tunnel_up_ms": round((status["connected_at"] - wall0) * 1e3, 2),
                    "probe_rtt_ms": round((t1 - sent[rseq]) * 1e3, 3),
                    "requests_sent": seq,
                }
    finally:
        sock.close()
    raise SystemExit(f"no echo reply from {target} within {timeout}s of connecting")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.002)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    runs = [one_run(args.target, args.interval, args.timeout) for _ in range(args.runs)]
    print(json.dumps({"runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
