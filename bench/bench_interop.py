"""Benchmark: our VPN software next to strongSwan and vpnc, every pair in one lab.

One lab (topologies/interop-strongswan-vpnc.yaml grown to six clients behind the PIX):
clients {ours, strongswan, vpnc} x gateways {vpn3000 (ours), swangw (strongSwan)}, none
connecting by itself. For each pair in turn, inside the client node (no SSH latency):
(a) connect -> first ping reply from the server behind the gateway: the implementation's
    own connect command (what a scenario's `connect:` runs), then pings until one is
    answered (-W 0.1 and 20 ms apart: a lost one costs 0.1 s, not a second);
(b) iperf3 TCP for --seconds through the tunnel to that server;
then the client disconnects. Ratios are to the third-party pair vpnc -> strongSwan.

Suites (--suites, default aes128-sha1,aes256-sha1,3des-md5): one fresh lab per suite, every
node offering only that suite (IKE with modp1024), the pairs in the same order each time.
While iperf3 runs, the CPU the client's and the gateway's containers use (cgroup cpuacct:
the agent or charon/vpnc, plus whatever else runs there, which is idle) is recorded:
``agents_cpu_ms_per_mbit`` = (client + gateway CPU-ms) / Mbit carried -- the honest figure
on a machine whose 2 cores iperf3, the PAT and other work share. --pairs key runs only
ours -> ours and the reference (a quicker check).

Run as root with the venv's python: bench/bench_interop.py --out bench/results/interop.json
The host's load average is recorded: on a shared 2-core machine figures move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
sys.path.insert(0, str(ROOT))

from labctl.kinds import implementation_of  # noqa: E402
from labctl.lifecycle import LabHandle, down, up  # noqa: E402
from labctl.progress import Progress  # noqa: E402
from labctl.runtime import DockerRuntime  # noqa: E402
from labctl.topology import load_lab_text  # noqa: E402

TOPOLOGY = ROOT / "topologies" / "interop-strongswan-vpnc.yaml"
GATEWAYS = {  # gateway -> (address, group, psk, server behind it, implementation)
    "vpn3000": ("172.16.172.50", "ciscovpn", "cisco123", "192.168.2.10", "ours"),
    "swangw": ("172.16.172.60", "swangroup", "swan123", "192.168.3.10", "strongswan"),
}
CLIENTS = ("ours", "strongswan", "vpnc")
REFERENCE = ("vpnc", "strongswan")  # (client, gateway implementation)
SUITES = ("aes128-sha1", "aes256-sha1", "3des-md5")
ALL_PAIRS = tuple((i, g) for i in CLIENTS for g in GATEWAYS)
KEY_PAIRS = (("ours", "vpn3000"), ("vpnc", "swangw"))


def node_name(implementation: str, gateway: str) -> str:
    return f"{implementation[:4]}-{gateway[:4]}"


def bench_topology(
    name: str, suite: str = "aes128-sha1", pairs: tuple[tuple[str, str], ...] = ALL_PAIRS
) -> str:
    """One client per (implementation, gateway) pair, users on both gateways, one suite."""
    ike, esp = [f"{suite}-modp1024"], [suite]
    data = yaml.safe_load(TOPOLOGY.read_text())
    data["name"] = name
    data.pop("expect", None)
    nodes = data["topology"]["nodes"]
    # The bench's own clients replace the interop lab's, however many it has.
    for old in [n for n, spec in nodes.items() if spec.get("kind") == "vpn-client"]:
        del nodes[old]
    endpoints = ["pix:inside"]
    for g in GATEWAYS:
        for group in nodes[g]["vpn"]["groups"].values():
            group["ike-proposals"], group["ipsec-proposals"] = list(ike), list(esp)
    for index, (implementation, gateway) in enumerate(pairs):
        address, group, psk, _, _ = GATEWAYS[gateway]
        node = node_name(implementation, gateway)
        user = f"u{index}"
        nodes[node] = {
            "kind": "vpn-client",
            "implementation": implementation,
            "interfaces": {"eth1": f"10.10.10.{10 + index}/24"},
            "vpn": {
                "host": address,
                "group": group,
                "group-password": psk,
                "user": user,
                "password": f"{user}pw",
                "auto-connect": False,
                "ike-proposals": list(ike),
                "ipsec-proposals": list(esp),
            },
        }
        nodes[gateway]["vpn"]["users"][user] = {"password": f"{user}pw", "group": group}
        endpoints.append(f"{node}:eth1")
    for link in data["topology"]["links"]:
        if link["name"] == "inside":
            link["endpoints"] = endpoints
    return yaml.safe_dump(data, sort_keys=False)


def run(handle: LabHandle, node: str, command: str, timeout: float = 120) -> str:
    result = handle.session(node).run(command, timeout=timeout)
    if result.exit_status != 0:
        raise RuntimeError(f"{node}: {command}: {result.stdout}{result.stderr}")
    return result.stdout


def connect_to_reply_ms(handle: LabHandle, node: str, connect: str, server: str) -> float:
    script = (
        "s=$(date +%s%N); "
        f"{connect} >/dev/null || exit 1; "
        f"i=0; until ping -c 1 -W 0.1 {server} >/dev/null 2>&1; do i=$((i+1)); "
        "[ $i -gt 1500 ] && exit 2; sleep 0.02; done; "
        "echo $(( ($(date +%s%N) - s) / 1000000 ))"
    )
    return float(run(handle, node, f"sh -c '{script}'").strip())


def iperf_mbps(handle: LabHandle, node: str, server: str, seconds: float) -> tuple[float, int]:
    """iperf3 TCP Mbit/s and the sender's retransmits; a run that reports nothing (seen
    once under load: empty output, exit 0) or an error is retried twice before giving up."""
    problem = ""
    for _attempt in range(3):
        out = run(handle, node, f"iperf3 -c {server} -t {seconds} -J", timeout=seconds + 60)
        try:
            report = json.loads(out)
            end = report["end"]
            retransmits = int(end.get("sum_sent", {}).get("retransmits", 0))
            return end["sum_received"]["bits_per_second"] / 1e6, retransmits
        except (ValueError, KeyError) as exc:
            problem = f"{exc!r}: {out[:300]!r}"
            print(f"{node}: iperf3 gave no result ({problem}); again", file=sys.stderr)
            time.sleep(1)
    raise RuntimeError(f"{node}: iperf3 to {server} failed three times: {problem}")


def container_cpu_seconds(lab: str) -> dict[str, float]:
    """CPU seconds each node's container has used so far (cgroup v1 cpuacct or v2)."""
    listed = subprocess.run(
        ["docker", "ps", "--no-trunc", "--filter", f"label=labctl.lab={lab}",
         "--format", '{{.ID}} {{.Label "labctl.node"}}'],
        capture_output=True, text=True, check=False,
    ).stdout.splitlines()  # fmt: skip
    used: dict[str, float] = {}
    for line in listed:
        container, _, node = line.partition(" ")
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container}/cpuacct.usage")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{container}.scope/cpu.stat")
        if v1.exists():
            used[node] = int(v1.read_text()) / 1e9
        elif v2.exists():
            stat = dict(row.split() for row in v2.read_text().splitlines())
            used[node] = int(stat["usage_usec"]) / 1e6
    return used


def measure_pair(
    handle: LabHandle,
    lab: Any,
    name: str,
    suite: str,
    implementation: str,
    gateway: str,
    seconds: float,
) -> dict:
    node = node_name(implementation, gateway)
    _, _, _, server, gw_impl = GATEWAYS[gateway]
    commands = implementation_of(lab.node(node)).client
    assert commands is not None
    ms = connect_to_reply_ms(handle, node, commands.connect, server)
    before, load = container_cpu_seconds(name), os.getloadavg()[0]
    mbps, retransmits = iperf_mbps(handle, node, server, seconds)
    after = container_cpu_seconds(name)
    run(handle, node, commands.disconnect)
    cpu = {n: round(after[n] - before[n], 3) for n in (node, gateway) if n in after}
    megabits = mbps * seconds
    return {
        "suite": suite,
        "client": implementation,
        "gateway": gw_impl,
        "connect_to_reply_ms": ms,
        "iperf3_tcp_mbps": round(mbps, 2),
        "iperf3_retransmits": retransmits,
        "client_cpu_seconds": cpu.get(node),
        "gateway_cpu_seconds": cpu.get(gateway),
        "agents_cpu_ms_per_mbit": (
            round(1000 * sum(cpu.values()) / megabits, 3) if len(cpu) == 2 and megabits else None
        ),
        "load_average": round(load, 2),
    }


def median_pair(runs: list[dict]) -> dict:
    """One pair's figures over its rounds: medians, the single runs kept under ``rounds``."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    for key in ("connect_to_reply_ms", "iperf3_tcp_mbps", "agents_cpu_ms_per_mbit",
                "client_cpu_seconds", "gateway_cpu_seconds", "load_average"):  # fmt: skip
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = round(statistics.median(values), 3) if values else None
    out["iperf3_retransmits"] = sum(r["iperf3_retransmits"] for r in runs)
    out["rounds"] = runs
    return out


def run_suite(
    suite: str,
    pairs: tuple[tuple[str, str], ...],
    seconds: float,
    runtime: DockerRuntime,
    prefix: str = "bench-ix",
    rounds: int = 1,
) -> list[dict]:
    name = f"{prefix}-{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interop-bench.yaml"
        path.write_text(bench_topology(name, suite, pairs))
        lab = load_lab_text(path.read_text(), path)
    quiet = Progress(sys.stderr, quiet=True)
    handle = up(lab, runtime, quiet)
    try:
        run(handle, "server", "iperf3 -s -D --pidfile /run/labctl-iperf3.pid")
        measured: dict[tuple[str, str], list[dict]] = {}
        for r in range(rounds):  # pairs in turn, round after round: load drifts, and the
            # first slot after `up` meets the lab still settling: odd rounds go backwards
            for implementation, gateway in pairs if r % 2 == 0 else pairs[::-1]:
                one = measure_pair(handle, lab, name, suite, implementation, gateway, seconds)
                measured.setdefault((implementation, gateway), []).append(one)
                print(json.dumps(one), file=sys.stderr)
        results = [median_pair(runs) for runs in measured.values()]
    finally:
        handle.close()
        down(lab.name, runtime, quiet)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/interop.json")
    parser.add_argument("--seconds", type=float, default=5.0, help="iperf3 run length")
    parser.add_argument("--suites", default=",".join(SUITES))
    parser.add_argument("--pairs", choices=("all", "key"), default="all",
                        help="key: only ours -> ours and the reference")  # fmt: skip
    parser.add_argument("--lab-prefix", default="bench-ix", help="lab names: PREFIX-xxxx")
    parser.add_argument("--rounds", type=int, default=1,
                        help="each pair this many times, in turn; medians")  # fmt: skip
    args = parser.parse_args()
    pairs = ALL_PAIRS if args.pairs == "all" else KEY_PAIRS
    runtime = DockerRuntime()
    load_before = os.getloadavg()
    measured: list[dict] = []
    for suite in args.suites.split(","):
        measured += run_suite(suite, pairs, args.seconds, runtime, args.lab_prefix, args.rounds)
    for suite in args.suites.split(","):
        in_suite = [p for p in measured if p["suite"] == suite]
        reference = next(p for p in in_suite if (p["client"], p["gateway"]) == REFERENCE)
        for pair in in_suite:
            pair["connect_ratio_to_vpnc_strongswan"] = round(
                pair["connect_to_reply_ms"] / reference["connect_to_reply_ms"], 2
            )
            pair["iperf3_ratio_to_vpnc_strongswan"] = round(
                pair["iperf3_tcp_mbps"] / reference["iperf3_tcp_mbps"], 2
            )
    pairs_out = measured
    result = {
        "bench": "interop",
        "host": platform.node(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "iperf3_seconds": args.seconds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "reference": {"client": REFERENCE[0], "gateway": REFERENCE[1]},
        "suites": args.suites.split(","),
        "pairs": pairs_out,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for pair in pairs_out:
        print(
            f"{pair['suite']:12} {pair['client']:10} -> {pair['gateway']:10} connect->reply "
            f"{pair['connect_to_reply_ms']:7.0f} ms (x{pair['connect_ratio_to_vpnc_strongswan']})"
            f"  iperf3 {pair['iperf3_tcp_mbps']:7.1f} Mbit/s "
            f"(x{pair['iperf3_ratio_to_vpnc_strongswan']}) "
            f"agents {pair['agents_cpu_ms_per_mbit']} CPU-ms/Mbit"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
