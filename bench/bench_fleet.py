"""Benchmark: N simulated VPN clients in one `vpn-fleet` container (issue 13).

For each N (default 1000) the lab of bench/topologies/thousand-clients.yaml, with its
user range cut to N, is brought up through the real CLI; then the fleet's connect storm
(`vpn fleet connect --wait`), three ping waves from every client to the server through the
concentrator (`vpn fleet ping`), and `down`. Recorded per N: wall time of up, the storm
and down; the storm's connect-time p50/p99 and IKE retransmissions; pings sent/answered;
the fleet agent's resident memory (per simulated client) and CPU; the concentrator agent's
memory and CPU with N sessions; both agents' CPU while N clients sit connected.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY = ROOT / "bench" / "topologies" / "thousand-clients.yaml"
LABCTL = [sys.executable, "-m", "labctl"]
IDLE_SECONDS = 20.0


def labctl(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*LABCTL, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def timed(*args: str, timeout: float = 900) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    result = labctl(*args, timeout=timeout)
    return round(time.monotonic() - start, 2), result


def topology_for(n: int, rate: float | None) -> str:
    text = TOPOLOGY.read_text().replace("{1..1000}", f"{{1..{n}}}")
    if rate is not None:
        text = re.sub(r"connect-rate: [0-9.]+", f"connect-rate: {rate:g}", text)
    return text.split("\nscenarios:")[0] + "\n"


def agent_figures(lab: str, node: str) -> dict:
    """Resident memory (MiB) and CPU seconds of the node's VPN agent process."""
    result = labctl(
        "exec", "--lab", lab, node, "--", "sh", "-c",
        "for p in /proc/[0-9]*; do grep -q labctl.agent.daemon $p/cmdline 2>/dev/null && "
        "{ grep VmRSS $p/status; cut -d' ' -f14,15 $p/stat; }; done",
    )  # fmt: skip
    rss = re.search(r"VmRSS:\s+(\d+)", result.stdout)
    ticks = re.search(r"^(\d+) (\d+)$", result.stdout, re.M)
    hertz = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mib": round(int(rss.group(1)) / 1024, 1) if rss else None,
        "cpu_seconds": round((int(ticks.group(1)) + int(ticks.group(2))) / hertz, 2)
        if ticks
        else None,
    }


def run_one(n: int, rate: float | None) -> dict:
    lab = f"fleetbench-{secrets.token_hex(2)}"
    figures: dict = {"clients": n, "lab": lab}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fleet.yaml"
        path.write_text(topology_for(n, rate))
        try:
            up_seconds, up = timed("-q", "up", "--name", lab, str(path))
            figures["up_seconds"] = up_seconds
            if up.returncode != 0:
                figures["error"] = "up: " + (up.stderr or up.stdout).strip()[-300:]
                return figures
            figures["concentrator_idle"] = agent_figures(lab, "vpn3000")
            storm_seconds, storm = timed(
                "exec", "--lab", lab, "fleet", "--", "vpn", "fleet", "connect", "--wait"
            )
            figures["connect_command_seconds"] = storm_seconds
            if storm.returncode != 0:
                figures["error"] = "connect: " + (storm.stderr or storm.stdout).strip()[-300:]
            ping = labctl(
                "exec", "--lab", lab, "fleet", "--", "vpn", "fleet", "ping", "192.168.2.10",
                "--waves", "3", "--interval", "2",
            )  # fmt: skip
            if ping.returncode != 0:
                figures["ping_error"] = (ping.stderr or ping.stdout).strip()[-300:]
            nodes = ("fleet", "vpn3000")
            before = {node: agent_figures(lab, node) for node in nodes}
            time.sleep(IDLE_SECONDS)  # connected and idle: keepalives, DPD, timers
            after = {node: agent_figures(lab, node) for node in nodes}
            for node, key in zip(nodes, ("fleet", "concentrator"), strict=True):
                if before[node]["cpu_seconds"] is not None and after[node]["cpu_seconds"]:
                    figures[f"{key}_idle_cpu_per_second"] = round(
                        (after[node]["cpu_seconds"] - before[node]["cpu_seconds"]) / IDLE_SECONDS,
                        3,
                    )
            summary = json.loads(
                labctl("exec", "--lab", lab, "fleet", "--", "vpn", "fleet", "--json").stdout
            )
            figures["fleet"] = summary
            figures["fleet_agent"] = agent_figures(lab, "fleet")
            figures["concentrator"] = agent_figures(lab, "vpn3000")
            sessions = labctl(
                "exec", "--lab", lab, "vpn3000", "--", "vpn", "show", "sessions", "--json"
            )
            try:
                figures["sessions"] = len(json.loads(sessions.stdout)["sessions"])
            except (ValueError, KeyError):
                figures["sessions"] = None
        finally:
            figures["down_seconds"], _ = timed("-q", "down", lab)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1000])
    parser.add_argument("--rate", type=float, help="connect rate (default: the topology's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fleet.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = []
    for n in args.clients:
        print(f"fleet of {n} ...", flush=True)
        figures = run_one(n, args.rate)
        summary = figures.get("fleet") or {}
        ping = summary.get("ping") or {}
        print(
            f"  up {figures.get('up_seconds')} s, storm {summary.get('storm_seconds')} s "
            f"(p50 {summary.get('connect_p50')} s, p99 {summary.get('connect_p99')} s, "
            f"{summary.get('ike_retransmits')} retransmissions), pings {ping.get('received')}/"
            f"{ping.get('sent')}, fleet {figures.get('fleet_agent')}, concentrator "
            f"{figures.get('concentrator')}, down {figures.get('down_seconds')} s"
            + (f" ERROR {figures['error']}" if "error" in figures else ""),
            flush=True,
        )
        runs.append(figures)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
