"""Benchmark: iperf3 through the lab, IPsec over TCP against IPsec over NAT-T (UDP 4500).

Run as root from the project root (the vpn image is built from LABCTL_PROJECT_ROOT):

    .venv/bin/python bench/bench_tcp.py --seconds 5 --out bench/results/tcp.json

For each transport (tcp, nat-t) and cipher suite (the seed's 3DES/MD5, AES-128/SHA1) it
brings up topologies/ipsec-over-tcp.yaml under a unique name with the clients in that
mode, waits for client1's tunnel, runs bounded iperf3 TCP (--seconds) from client1 to the
private server and back (-R), reads the concentrator's drop counters, and takes the lab
down again (also on failure). Everything is the real lab: PIX masquerade, user-space ESP.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY = ROOT / "topologies" / "ipsec-over-tcp.yaml"
SERVER_IP = "192.168.2.10"
SUITES = {
    "3des-md5": ("3des-md5-modp1024", "3des-md5"),  # the seed's
    "aes128-sha1": ("aes128-sha1-modp1024", "aes128-sha1"),
}
TRANSPORTS = ("tcp", "nat-t")


def labctl(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "labctl", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"labctl {' '.join(args)}: {done.stderr or done.stdout}")
    return done.stdout


def variant(transport: str, suite: str, directory: Path) -> Path:
    spec = yaml.safe_load(TOPOLOGY.read_text())
    spec.pop("expect", None)
    spec.pop("scenarios", None)
    vpn = spec["topology"]["kinds"]["vpn-client"]["vpn"]
    vpn["transparent-tunneling"]["mode"] = transport
    ike, esp = SUITES[suite]
    vpn["ike-proposals"], vpn["ipsec-proposals"] = [ike], [esp]
    path = directory / f"bench-{transport}-{suite}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def wait_connected(lab: str, client: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(labctl("show", "--lab", lab, client, "status", "--json"))
        if status["state"] == "connected":
            return status
        time.sleep(0.5)
    raise RuntimeError(f"{client} of {lab} did not connect within {timeout:.0f}s")


def iperf(lab: str, seconds: float, reverse: bool) -> dict[str, Any]:
    labctl("exec", "--lab", lab, "server", "--", "iperf3", "-s", "-1", "-D")
    time.sleep(0.5)
    cmd = ["iperf3", "-c", SERVER_IP, "-t", str(seconds), "-J"] + (["-R"] if reverse else [])
    report = json.loads(labctl("exec", "--lab", lab, "client1", "--", *cmd, timeout=seconds + 60))
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    end = report["end"]
    return {
        "direction": "server->client" if reverse else "client->server",
        "mbit_s": round(end["sum_received"]["bits_per_second"] / 1e6, 1),
        "retransmits": end["sum_sent"].get("retransmits"),
        "seconds": seconds,
    }


def node_drops(lab: str, node: str) -> dict[str, Any]:
    """Drop counters of a VPN node's tunnels and TCP connections (only the non-empty)."""
    stats = json.loads(labctl("exec", "--lab", lab, node, "--", "vpn", "stats"))
    tunnels = stats["dataplane"]["tunnels"]
    out: dict[str, Any] = {name: t["drops"] for name, t in tunnels.items() if t["drops"]}
    for conn in (stats.get("tcp") or {}).get("connections", []):
        if conn["drops"] or conn["framing"]["errors"]:
            out[f"tcp {conn['peer']['port']}"] = {**conn["drops"], **conn["framing"]["errors"]}
    return out


def run_case(transport: str, suite: str, seconds: float, directory: Path) -> list[dict]:
    topology = variant(transport, suite, directory)
    lab = f"tcpb-{transport[:3]}-{secrets.token_hex(2)}"
    try:
        labctl("up", str(topology), "--name", lab, timeout=900)
        status = wait_connected(lab, "client1")
        rows = []
        for reverse in (False, True):
            row = iperf(lab, seconds, reverse)
            row.update(transport=transport, suite=suite, tunnel=status["transparent_tunneling"])
            rows.append(row)
            print(
                f"{transport:6s} {suite:12s} {row['direction']:15s} {row['mbit_s']:7.1f} Mbit/s"
                f"  retransmits {row['retransmits']}",
                flush=True,
            )
        rows[-1]["drops"] = {n: node_drops(lab, n) for n in ("client1", "vpn3000")}
        return rows
    finally:
        subprocess.run(
            [sys.executable, "-m", "labctl", "-q", "down", lab], cwd=ROOT, capture_output=True
        )


def medians(rows: list[dict]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for row in rows:
        key = f"{row['transport']} {row['suite']} {row['direction']}"
        groups.setdefault(key, []).append(row["mbit_s"])
    return {key: round(statistics.median(values), 1) for key, values in groups.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tcp.json")
    parser.add_argument("--seconds", type=float, default=5.0, help="each iperf3 run")
    parser.add_argument("--suite", choices=sorted(SUITES), action="append")
    parser.add_argument("--repeat", type=int, default=1, help="labs per case (shared machine)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (labs)")
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
        "iperf3": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-tcp-") as tmp:
        for run in range(args.repeat):
            for suite in args.suite or list(SUITES):
                for transport in TRANSPORTS:
                    for row in run_case(transport, suite, args.seconds, Path(tmp)):
                        report["iperf3"].append({**row, "run": run})
    report["median_mbit_s"] = medians(report["iperf3"])
    for key, value in report["median_mbit_s"].items():
        print(f"median {key:40s} {value:7.1f} Mbit/s")
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
