"""Benchmark: `labctl up` / `labctl down` of N single-client containers, and where the time goes.

For each N (default 10 and 50) a topology of N VPN clients behind one PAT, a router and a
concentrator is generated and brought up and down through the
real CLI. Recorded per N: wall time of up and down, up's own stage timings (containers,
links, SSH, push), the memory of the client containers (cgroup memory.current, the
median: resident memory), and whether every client got a session (the concentrator's `sessions`).

Other programs load this machine: compare figures measured in one run (`--compare REF`
runs a second labctl tree, e.g. a `git worktree` of main, right after ours, N by N).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TOPOLOGY = """\
name: {name}
topology:
  kinds:
    vpn-client:
      routes: [default via 10.10.8.1]
      vpn:
        host: 172.16.172.50
        group: ciscovpn
        group-password: cisco123
        password: labpw
        transparent-tunneling: {{enabled: true, mode: nat-t}}
  nodes:
{clients}
    pix:
      kind: pat-firewall
      interfaces: {{inside: 10.10.8.1/22, outside: 171.69.89.78/23}}
      routes: [default via 171.69.88.1]
      pat: {{inside: [inside], outside: outside}}
    router:
      kind: router
      interfaces: {{eth1: 171.69.88.1/23, eth2: 172.16.172.1/24}}
    vpn3000:
      kind: concentrator
      interfaces: {{public: 172.16.172.50/24}}
      routes: [default via 172.16.172.1]
      vpn:
        public-interface: public
        nat-transparency: {{nat-t: true}}
        groups:
          ciscovpn: {{psk: cisco123, pool: 40.1.0.1-40.1.3.254}}
        users:
{users}
  links:
    - name: inside
      endpoints: [pix:inside, {endpoints}]
    - {{name: outside, endpoints: [pix:outside, router:eth1]}}
    - {{name: public, endpoints: [router:eth2, vpn3000:public]}}
"""


def topology(name: str, n: int) -> str:
    """Written out client by client (not with patterns), so an older labctl reads it too."""
    first = IPv4Address("10.10.8.2")
    clients = "\n".join(
        f"    client{k}: {{kind: vpn-client, interfaces: {{eth1: {first + k - 1}/22}}, "
        f"vpn: {{user: vpnclient{k}}}}}"
        for k in range(1, n + 1)
    )
    users = "\n".join(
        f"          vpnclient{k}: {{password: labpw, group: ciscovpn}}" for k in range(1, n + 1)
    )
    endpoints = ", ".join(f"client{k}:eth1" for k in range(1, n + 1))
    return TOPOLOGY.format(name=name, clients=clients, users=users, endpoints=endpoints)


_STAGE = re.compile(r"\] (.+?) done in ([0-9.]+)s$")


def labctl(tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    python = tree / ".venv" / "bin" / "python"
    return subprocess.run(
        [str(python if python.exists() else sys.executable), "-m", "labctl", *args],
        cwd=tree,
        check=check,
        capture_output=True,
        text=True,
    )


def stages_of(stderr: str) -> dict[str, float]:
    """Up's stage timings from its progress lines ('nodes (53 containers)' -> 'nodes')."""
    found = {}
    for line in stderr.splitlines():
        match = _STAGE.search(line)
        if match:
            found[match.group(1).split(" (")[0]] = float(match.group(2))
    return found


def client_memory_mib(lab: str) -> float | None:
    """Median memory of the lab's client containers, MiB."""
    listed = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=labctl.lab={lab}",
         "--filter", "label=labctl.kind=vpn-client"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    values = [v for v in (_container_memory(c) for c in listed) if v is not None]
    return round(statistics.median(values) / (1 << 20), 1) if values else None


def _container_memory(container: str) -> int | None:
    """Bytes a container uses: cgroup v2 memory.current, or v1's resident set (rss +
    mapped files; the page cache of the shared image files is not the container's)."""
    for path in (
        Path(f"/sys/fs/cgroup/system.slice/docker-{container}.scope/memory.current"),
        Path(f"/sys/fs/cgroup/docker/{container}/memory.current"),
    ):
        if path.exists():
            return int(path.read_text())
    stat = Path(f"/sys/fs/cgroup/memory/docker/{container}/memory.stat")
    if not stat.exists():
        return None
    fields = dict(line.split() for line in stat.read_text().splitlines())
    return int(fields.get("total_rss", 0)) + int(fields.get("total_mapped_file", 0))


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_start(pid: int) -> float:
    """When a process started, in clock ticks since boot."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]) / _TICK
    except OSError:
        return 0.0


def pids_of(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def container_cpu(lab: str) -> dict[str, float]:
    """CPU seconds each of the lab's containers has used (cgroup cpuacct), by kind."""
    listed = subprocess.run(
        ["docker", "ps", "--no-trunc", "--filter", f"label=labctl.lab={lab}",
         "--format", '{{.ID}} {{.Label "labctl.kind"}}'],
        capture_output=True, text=True, check=False,
    ).stdout.splitlines()  # fmt: skip
    used: dict[str, list[float]] = {}
    for line in listed:
        container, _, kind = line.partition(" ")
        for path in (
            Path(f"/sys/fs/cgroup/cpuacct/docker/{container}/cpuacct.usage"),
            Path(f"/sys/fs/cgroup/docker/{container}/cpu.stat"),
        ):
            if path.name == "cpuacct.usage" and path.exists():
                used.setdefault(kind, []).append(int(path.read_text()) / 1e9)
                break
            if path.exists():
                usage = dict(line.split() for line in path.read_text().splitlines())
                used.setdefault(kind, []).append(int(usage["usage_usec"]) / 1e6)
                break
    return {kind: round(sum(values), 2) for kind, values in used.items()}


def cpu_during(action) -> tuple[object, dict[str, float]]:
    """Run action(); CPU seconds it cost labctl, the Docker daemons and fuse-overlayfs
    (the storage driver's per-container processes started meanwhile). The daemons serve
    other work too: their share is approximate."""
    daemons = [pid for name in ("dockerd", "containerd") for pid in pids_of(name)]
    before = {pid: process_cpu(pid) for pid in daemons}
    children = os.times()
    started = uptime()
    result = action()
    after = os.times()
    fuse = [pid for pid in pids_of("fuse-overlayfs") if process_start(pid) >= started - 0.5]
    return result, {
        "labctl": round(
            after.children_user + after.children_system
            - children.children_user - children.children_system, 2
        ),
        "docker_daemons": round(sum(process_cpu(p) - before[p] for p in daemons), 2),
        "fuse_overlayfs": round(sum(process_cpu(p) for p in fuse), 2),
    }  # fmt: skip


def sessions(tree: Path, lab: str, deadline: float) -> tuple[int, float]:
    """(sessions on the concentrator, seconds waited) once all are up or the deadline passes."""
    started = time.monotonic()
    count = 0
    while True:
        shown = labctl(tree, "show", "--lab", lab, "vpn3000", "sessions", "--json", check=False)
        try:
            count = len(json.loads(shown.stdout))
        except ValueError:
            count = 0
        if count >= expected_sessions(lab) or time.monotonic() - started > deadline:
            return count, round(time.monotonic() - started, 2)
        time.sleep(2)


_EXPECTED: dict[str, int] = {}


def expected_sessions(lab: str) -> int:
    return _EXPECTED[lab]


def one_run(tree: Path, n: int, folder: Path) -> dict:
    lab = f"scale-{secrets.token_hex(2)}"
    _EXPECTED[lab] = n
    file = folder / f"{lab}.yaml"
    file.write_text(topology(lab, n))
    result: dict = {"clients": n, "lab": lab}
    try:
        started = time.monotonic()
        shown, cpu = cpu_during(lambda: labctl(tree, "up", str(file), check=False))
        result["up_seconds"] = round(time.monotonic() - started, 2)
        assert isinstance(shown, subprocess.CompletedProcess)
        if shown.returncode != 0:
            result["error"] = shown.stderr.strip().splitlines()[-3:]
            return result
        result["up_stages"] = stages_of(shown.stderr)
        result["up_cpu_seconds"] = {**cpu, **container_cpu(lab)}
        result["sessions"], result["sessions_after_up_seconds"] = sessions(tree, lab, 60 + n)
        result["client_memory_mib"] = client_memory_mib(lab)
    finally:
        started = time.monotonic()
        labctl(tree, "-q", "down", lab, check=False)
        result["down_seconds"] = round(time.monotonic() - started, 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    parser.add_argument(
        "--compare", type=Path, help="another labctl tree (with its .venv) to run alongside"
    )
    args = parser.parse_args()
    trees = {"ours": ROOT} | ({"reference": args.compare.resolve()} if args.compare else {})
    for tree in trees.values():
        labctl(tree, "-q", "images", "build")
    runs: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as folder:
        for index, n in enumerate(args.clients):
            # Interleaved, and the order swapped for every N: load from other work comes
            # and goes, and whoever runs second would otherwise always meet the same trend.
            order = list(trees.items())
            for name, tree in order if index % 2 == 0 else order[::-1]:
                run = one_run(tree, n, Path(folder))
                print(name, json.dumps(run), file=sys.stderr, flush=True)
                runs[name].append(run)
    results = {
        "benchmark": "up/down of N single-client containers (images cached)",
        "host": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
