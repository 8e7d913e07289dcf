"""Benchmark: `labctl up` / `labctl down` of N single-client containers, and where the time goes.

For each N (default 10 and 50) a topology of N VPN clients behind one PAT, a router and a
concentrator is generated and brought up and down through the
real CLI. Recorded per N: wall time of up and down, up's own stage timings (containers,
links, SSH, push) and labctl's CPU per stage, the CPU of `up` and `down` by party (labctl,
dockerd + containerd, the containerd shims, fuse-overlayfs, each kind of container) with
the CPU per client and the quiet-machine bound (CPU / cores), the memory of the client
containers (rss + mapped files, the median; and its parts: cgroup usage, rss, page cache,
the agent's resident set), and whether every client got a session (the concentrator's
`sessions`).

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
import threading
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
        nat-transparency: {{nat-t: true}}{limit}
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
    # Above the default Concurrent Sessions Limit (100) the concentrator needs a larger
    # one; a reference tree older than `max-sessions` cannot read that line (it had no
    # limit), so it is written only when needed.
    limit = f"\n        max-sessions: {n}" if n > 100 else ""
    return TOPOLOGY.format(
        name=name, clients=clients, users=users, endpoints=endpoints, limit=limit
    )


_STAGE = re.compile(r"\] (.+?) done in ([0-9.]+)s(?: \(cpu ([0-9.]+)s\))?$")


# Extra environment per tree run ("reference" with --reference-env): e.g. this tree with
# LABCTL_SHARED_FILES=0 as the reference, to measure one switch in the same run.
RUN_ENV: dict[str, str] = {}


def labctl(tree: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    python = tree / ".venv" / "bin" / "python"
    return subprocess.run(
        [str(python if python.exists() else sys.executable), "-m", "labctl", *args],
        cwd=tree,
        env={**os.environ, **RUN_ENV},
        check=check,
        capture_output=True,
        text=True,
    )


def stages_of(stderr: str, column: int = 2) -> dict[str, float]:
    """Up's stage timings from its progress lines ('nodes (53 containers)' -> 'nodes'):
    wall seconds (column 2) or labctl's own CPU seconds (column 3)."""
    found = {}
    for line in stderr.splitlines():
        match = _STAGE.search(line)
        if match and match.group(column) is not None:
            found[match.group(1).split(" (")[0]] = float(match.group(column))
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


def pids_by_name(*names: str) -> dict[str, list[int]]:
    """Processes by command name (15 characters at most, as the kernel keeps it), in one
    pass over /proc. Not pgrep: a pgrep child every poll would be counted as labctl's CPU
    (children of this process) and cost several CPU-s per run."""
    wanted = {name[:15]: name for name in names}
    found: dict[str, list[int]] = {name: [] for name in names}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                comm = Path(entry.path, "comm").read_text().strip()
            except OSError:
                continue
            if comm in wanted:
                found[wanted[comm]].append(int(entry.name))
    return found


def pids_of(name: str) -> list[int]:
    return pids_by_name(name)[name]


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


def process_cpu_all(pid: int) -> float:
    """CPU seconds of a process and of the children it has waited for (runc under a
    containerd shim, say); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICK


# Per-container host processes: one containerd shim (runc runs under it) and one
# fuse-overlayfs per mounted container file system (the storage driver here).
PER_CONTAINER = ("containerd-shim", "fuse-overlayfs")


class HostProcesses:
    """Polls the per-container host processes while an action runs, so the CPU of those
    that exit before it ends (a shim at `down`, a mount of the init layer) is counted."""

    def __init__(self, only: set[int] | None = None, since: float | None = None):
        self.only, self.since = only, since
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _scan(self) -> None:
        for name, pids in pids_by_name(*PER_CONTAINER).items():
            for pid in pids:
                if self.only is not None and pid not in self.only:
                    continue
                if self.since is not None and process_start(pid) < self.since - 0.5:
                    continue
                used = process_cpu_all(pid)
                if used or pid not in self.last:
                    self.first.setdefault(pid, used if self.since is None else 0.0)
                    self.last[pid] = (name, used)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._scan()

    def __enter__(self) -> HostProcesses:
        self._scan()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()

    def used(self) -> dict[str, float]:
        totals = dict.fromkeys(PER_CONTAINER, 0.0)
        for pid, (name, used) in self.last.items():
            totals[name] += max(0.0, used - self.first.get(pid, 0.0))
        return {name.replace("-", "_"): round(v, 2) for name, v in totals.items()}


def cpu_during(action, only: set[int] | None = None) -> tuple[object, dict[str, float]]:
    """Run action(); CPU seconds it cost labctl, the Docker daemons, the containerd shims
    and fuse-overlayfs (those started meanwhile, or `only` these pids). The daemons serve
    other work too: their share is approximate."""
    daemons = [pid for name in ("dockerd", "containerd") for pid in pids_of(name)]
    before = {pid: process_cpu_all(pid) for pid in daemons}
    children = os.times()
    with HostProcesses(only=only, since=None if only is not None else uptime()) as host:
        result = action()
    after = os.times()
    return result, {
        "labctl": round(
            after.children_user + after.children_system
            - children.children_user - children.children_system, 2
        ),
        "docker_daemons": round(sum(process_cpu_all(p) - before[p] for p in daemons), 2),
        **host.used(),
    }  # fmt: skip


def lab_host_pids(lab: str) -> set[int]:
    """The shims and fuse-overlayfs mounts of a lab's containers."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=labctl.lab={lab}"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    if not ids:
        return set()
    merged = subprocess.run(
        ["docker", "inspect", "--format", "{{.GraphDriver.Data.MergedDir}}", *ids],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    keys = set(ids) | {m.rsplit("/", 1)[0] for m in merged if m.startswith("/")}
    found = set()
    for name in PER_CONTAINER:
        for pid in pids_of(name):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if any(key in cmdline for key in keys):
                found.add(pid)
    return found


def client_memory_detail(lab: str) -> dict[str, float]:
    """Medians over the lab's client containers, MiB: the cgroup's usage, its rss and
    page cache (memory.stat, cgroup v1), and the agent's resident set alone."""
    listed = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=labctl.lab={lab}",
         "--filter", "label=labctl.kind=vpn-client"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    figures: dict[str, list[float]] = {}
    for container in listed:
        base = Path(f"/sys/fs/cgroup/memory/docker/{container}")
        if not base.exists():
            continue
        stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
        figures.setdefault("usage", []).append(int((base / "memory.usage_in_bytes").read_text()))
        figures.setdefault("rss", []).append(int(stat.get("total_rss", 0)))
        figures.setdefault("cache", []).append(int(stat.get("total_cache", 0)))
        for pid in (base / "cgroup.procs").read_text().split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
            what = "agent_rss" if b"labctl.agent.daemon" in cmdline else "other_rss"
            figures.setdefault(what, []).append(rss)
    return {k: round(statistics.median(v) / (1 << 20), 1) for k, v in figures.items() if v}


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
    result: dict = {"clients": n, "lab": lab, "load_before": [round(v, 1) for v in os.getloadavg()]}
    try:
        started = time.monotonic()
        shown, cpu = cpu_during(lambda: labctl(tree, "up", str(file), check=False))
        result["up_seconds"] = round(time.monotonic() - started, 2)
        assert isinstance(shown, subprocess.CompletedProcess)
        if shown.returncode != 0:
            result["error"] = shown.stderr.strip().splitlines()[-3:]
            return result
        result["up_stages"] = stages_of(shown.stderr)
        result["up_stages_labctl_cpu"] = stages_of(shown.stderr, 3)
        result["up_cpu_seconds"] = {**cpu, **container_cpu(lab)}
        total = sum(result["up_cpu_seconds"].values())
        # What `up` costs per client in CPU, all parties together (labctl, Docker, the
        # shims, fuse-overlayfs, every container), and the wall time that CPU needs on
        # this machine's cores with nothing else running: the figure other helpers' load
        # does not move much.
        result["up_cpu_per_client"] = round(total / n, 3)
        result["up_quiet_bound_seconds"] = round(total / (os.cpu_count() or 1), 1)
        result["sessions"], result["sessions_after_up_seconds"] = sessions(tree, lab, 60 + n)
        result["client_memory_mib"] = client_memory_mib(lab)
        result["client_memory_detail_mib"] = client_memory_detail(lab)
    finally:
        owned = lab_host_pids(lab)
        started = time.monotonic()
        _, cpu = cpu_during(lambda: labctl(tree, "-q", "down", lab, check=False), only=owned)
        result["down_seconds"] = round(time.monotonic() - started, 2)
        result["down_cpu_seconds"] = cpu
        down_total = sum(cpu.values())
        result["down_cpu_per_container"] = round(down_total / (n + 3), 3)
        result["down_quiet_bound_seconds"] = round(down_total / (os.cpu_count() or 1), 1)
        result["load_average"] = [round(v, 1) for v in os.getloadavg()]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 50])
    parser.add_argument(
        "--compare", type=Path, help="another labctl tree (with its .venv) to run alongside"
    )
    parser.add_argument(
        "--reference-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment for the reference's runs (e.g. --compare . --reference-env "
        "LABCTL_SHARED_FILES=0: this tree without the shared volumes)",
    )
    args = parser.parse_args()
    reference_env = dict(item.split("=", 1) for item in args.reference_env)
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
                RUN_ENV.clear()
                RUN_ENV.update(reference_env if name == "reference" else {})
                run = one_run(tree, n, Path(folder))
                print(name, json.dumps(run), file=sys.stderr, flush=True)
                runs[name].append(run)
    results = {
        "benchmark": "up/down of N single-client containers (images cached)",
        "host": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": os.getloadavg(),
        **({"reference_env": reference_env} if reference_env else {}),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
