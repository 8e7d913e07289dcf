"""Byte-exact TCP transfer in both directions (run inside network namespaces).

server: python3 tcp_check.py server BIND_IP PORT NBYTES
    accepts one connection, reads NBYTES, replies with their SHA-256 (32 bytes), then sends
    NBYTES of its own deterministic stream and closes. Prints "LISTENING" when ready.
client: python3 tcp_check.py client SERVER_IP PORT NBYTES [SOURCE_IP]
    sends NBYTES (seeded stream), checks the server's digest, receives NBYTES and checks
    them against the expected stream. Prints a JSON result; exit 0 only if both match.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import sys
import time

CLIENT_SEED, SERVER_SEED = 1, 2
CHUNK = 64 * 1024


def stream(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def recv_exact(conn: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = conn.recv(min(CHUNK, n - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def server(bind_ip: str, port: int, n: int) -> int:
    listener = socket.create_server((bind_ip, port))
    listener.settimeout(60)
    print("LISTENING", flush=True)
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(60)
        data = recv_exact(conn, n)
        conn.sendall(hashlib.sha256(data).digest())
        conn.sendall(stream(SERVER_SEED, n))
    listener.close()
    return 0 if len(data) == n else 1


def client(server_ip: str, port: int, n: int, source_ip: str | None) -> int:
    outgoing = stream(CLIENT_SEED, n)
    expected_back = hashlib.sha256(stream(SERVER_SEED, n)).digest()
    start = time.monotonic()
    conn = socket.create_connection(
        (server_ip, port), timeout=60, source_address=(source_ip, 0) if source_ip else None
    )
    with conn:
        conn.sendall(outgoing)
        digest = recv_exact(conn, 32)
        back = recv_exact(conn, n)
    elapsed = time.monotonic() - start
    result = {
        "sent_ok": digest == hashlib.sha256(outgoing).digest(),
        "received_ok": hashlib.sha256(back).digest() == expected_back and len(back) == n,
        "received_bytes": len(back),
        "seconds": round(elapsed, 3),
        "mbit_per_s_both_ways": round(2 * n * 8 / elapsed / 1e6, 1),
    }
    print(json.dumps(result), flush=True)
    return 0 if result["sent_ok"] and result["received_ok"] else 1


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        sys.exit(server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    sys.exit(
        client(
            sys.argv[2],
            int(sys.argv[3]),
            int(sys.argv[4]),
            sys.argv[5] if len(sys.argv) > 5 else None,
        )
    )
