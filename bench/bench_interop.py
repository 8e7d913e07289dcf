"""Benchmark: our VPN software next to strongSwan and vpnc, every pair in one lab.

One lab (topologies/interop-strongswan-vpnc.yaml grown to six clients behind the PIX):
clients {ours, strongswan, vpnc} x gateways {vpn3000 (ours), swangw (strongSwan)}, none
connecting by itself. For each pair in turn, inside the client node (no SSH latency):
(a) connect -> first ping reply from the server behind the gateway: the implementation's
    own connect command (what a scenario's `connect:` runs), then pings until one is
    answered (-W 0.1 and 20 ms apart: a lost one costs 0.1 s, not a second);
(b) iperf3 TCP for --seconds through the tunnel to that server;
then the client disconnects. Ratios are to the third-party pair vpnc -> strongSwan.

Run as root with the venv's python: bench/bench_interop.py --out bench/results/interop.json
The host's load average is recorded: on a shared 2-core machine figures move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path

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


def bench_topology(name: str) -> str:
    """Six clients, one per (implementation, gateway), users on both gateways."""
    data = yaml.safe_load(TOPOLOGY.read_text())
    data["name"] = name
    data.pop("expect", None)
    nodes = data["topology"]["nodes"]
    for old in ("client1", "swanc", "vpncc"):
        del nodes[old]
    endpoints = ["pix:inside"]
    for index, (implementation, gateway) in enumerate((i, g) for i in CLIENTS for g in GATEWAYS):
        address, group, psk, _, _ = GATEWAYS[gateway]
        node = f"{implementation[:4]}-{gateway[:4]}"
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
                "ike-proposals": ["aes128-sha1-modp1024"],
                "ipsec-proposals": ["aes128-sha1"],
            },
        }
        gw = nodes[gateway]["vpn"]
        gw["users"][user] = {"password": f"{user}pw", "group": group}
        for g in gw["groups"].values():
            g["ike-proposals"] = ["aes128-sha1-modp1024"]
            g["ipsec-proposals"] = ["aes128-sha1"]
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


def iperf_mbps(handle: LabHandle, node: str, server: str, seconds: float) -> float:
    out = run(handle, node, f"iperf3 -c {server} -t {seconds} -J", timeout=seconds + 60)
    report = json.loads(out)
    return report["end"]["sum_received"]["bits_per_second"] / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/interop.json")
    parser.add_argument("--seconds", type=float, default=5.0, help="iperf3 run length")
    args = parser.parse_args()
    name = f"bench-ix-{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "interop-bench.yaml"
        path.write_text(bench_topology(name))
        lab = load_lab_text(path.read_text(), path)
    runtime = DockerRuntime()
    quiet = Progress(sys.stderr, quiet=True)
    load_before = os.getloadavg()
    pairs = []
    handle = up(lab, runtime, quiet)
    try:
        run(handle, "server", "iperf3 -s -D --pidfile /run/labctl-iperf3.pid")
        for implementation, gateway in ((i, g) for i in CLIENTS for g in GATEWAYS):
            node = f"{implementation[:4]}-{gateway[:4]}"
            _, _, _, server, gw_impl = GATEWAYS[gateway]
            commands = implementation_of(lab.node(node)).client
            assert commands is not None
            ms = connect_to_reply_ms(handle, node, commands.connect, server)
            mbps = iperf_mbps(handle, node, server, args.seconds)
            run(handle, node, commands.disconnect)
            pair = {"client": implementation, "gateway": gw_impl, "connect_to_reply_ms": ms,
                    "iperf3_tcp_mbps": round(mbps, 2)}  # fmt: skip
            pairs.append(pair)
            print(json.dumps(pair), file=sys.stderr)
    finally:
        handle.close()
        down(lab.name, runtime, quiet)
    reference = next(p for p in pairs if (p["client"], p["gateway"]) == REFERENCE)
    for pair in pairs:
        pair["connect_ratio_to_vpnc_strongswan"] = round(
            pair["connect_to_reply_ms"] / reference["connect_to_reply_ms"], 2
        )
        pair["iperf3_ratio_to_vpnc_strongswan"] = round(
            pair["iperf3_tcp_mbps"] / reference["iperf3_tcp_mbps"], 2
        )
    result = {
        "bench": "interop",
        "host": platform.node(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "iperf3_seconds": args.seconds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "reference": {"client": REFERENCE[0], "gateway": REFERENCE[1]},
        "pairs": pairs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for pair in pairs:
        print(
            f"{pair['client']:10} -> {pair['gateway']:10} connect->reply "
            f"{pair['connect_to_reply_ms']:7.0f} ms (x{pair['connect_ratio_to_vpnc_strongswan']})"
            f"  iperf3 {pair['iperf3_tcp_mbps']:7.1f} Mbit/s "
            f"(x{pair['iperf3_ratio_to_vpnc_strongswan']})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
