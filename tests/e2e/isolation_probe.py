"""Runs INSIDE a lab node (its python3, standard library only): probes, or a listener.

    python3 -c "$(cat isolation_probe.py)" probe '<json>'   -> one JSON line of results
    python3 -c "$(cat isolation_probe.py)" listen PORT LOG   -> logs every TCP/UDP peer

probe input: {"routes": [[dst, via], ...], "targets": [[kind, address, port], ...]} with kind
"icmp", "tcp" or "udp". Routes are added first (as a root user of the node could) and removed
at the end. Each target is classified: "ok" (an answer came back: a TCP handshake completed,
a UDP reply or an ICMP echo reply arrived), "refused" (a TCP reset or ICMP port unreachable),
"icmp-error" (ping got an ICMP error), "unreachable" (EHOSTUNREACH/ENETUNREACH) or "timeout"
(no answer at all within TIMEOUT seconds).
"""

import errno
import json
import socket
import subprocess
import sys
import threading
import time

TIMEOUT = 1.5


def classify_error(exc):
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return "refused"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return f"error: {exc}"


def probe_tcp(address, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect((address, port))
        return "ok"
    except OSError as exc:
        return classify_error(exc)
    finally:
        sock.close()


def probe_udp(address, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect((address, port))
        sock.send(b"isolation-probe")
        sock.recv(2048)
        return "ok"
    except OSError as exc:
        return classify_error(exc)
    finally:
        sock.close()


def probe_icmp(address, _port):
    result = subprocess.run(
        ["ping", "-n", "-c", "1", "-W", str(int(TIMEOUT + 0.5)), address],
        capture_output=True,
        text=True,
    )
    if result.returncode == 0:
        return "ok"
    if "From " in result.stdout:  # an ICMP error came back (from someone)
        return "icmp-error"
    return "timeout"


PROBES = {"tcp": probe_tcp, "udp": probe_udp, "icmp": probe_icmp}


def ip(*argv):
    return subprocess.run(["ip", *argv], capture_output=True, text=True)


def probe(spec):
    routes = spec.get("routes", [])
    route_errors = {}
    for dst, via in routes:
        result = ip("route", "replace", dst, "via", via, "dev", "eth0", "onlink")
        if result.returncode != 0:
            route_errors[dst] = result.stderr.strip()
    results = {}

    def run(target):
        kind, address, port = target
        results[f"{kind} {address} {port}"] = PROBES[kind](address, port)

    threads = [threading.Thread(target=run, args=(t,)) for t in spec["targets"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for dst, _via in routes:
        ip("route", "del", dst)
    return {"results": results, "route_errors": route_errors}


def listen(port, log_path):
    """TCP and UDP on 0.0.0.0:port; every peer that gets through is logged, UDP is echoed."""
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", port))
    tcp.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", port))

    def serve_udp():
        while True:
            data, peer = udp.recvfrom(2048)
            log.write(f"udp {peer[0]}\n")
            udp.sendto(data, peer)

    threading.Thread(target=serve_udp, daemon=True).start()
    log.write(f"listening {port}\n")
    while True:
        conn, peer = tcp.accept()
        log.write(f"tcp {peer[0]}\n")
        conn.close()


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        started = time.monotonic()
        out = probe(json.loads(sys.argv[2]))
        out["seconds"] = round(time.monotonic() - started, 2)
        print(json.dumps(out))
    elif sys.argv[1] == "listen":
        listen(int(sys.argv[2]), sys.argv[3])
