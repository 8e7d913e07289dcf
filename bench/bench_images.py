"""Benchmark: image build times and sizes, and what Docker's fuse-overlayfs costs here.

Builds a throw-away copy of the recipes (a marker makes every tag new, so nothing is
reused) with its own, initially empty, debootstrap package cache:

  cold      base from an empty package cache, then node and vpn (no build cache: new parents)
  warm      base again with the package cache filled (a recipe change, same package set)
  vpn only  a node-side source change: only the vpn image is rebuilt
  no-change ensure_images with nothing changed (hash + tag lookups), several rounds

plus image sizes and fuse-overlayfs probes (container start, one build step, writes to the
container layer vs tmpfs, Python start-up from the image). Every image and container it
makes is removed again. Writes bench/results/images.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labctl.images import ConsoleProgress, ImageBuilder  # noqa: E402


def summary(values: list[float]) -> dict:
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "runs": [round(v, 3) for v in values],
    }


def mark(project: Path) -> None:
    """Give the base recipe a new hash (a comment in a hashed recipe file)."""
    with open(project / "images/base/cleanup.txt", "a") as out:
        out.write(f"# bench {uuid.uuid4().hex}\n")


def timed_run(client: docker.DockerClient, image: str, command: list[str]) -> float:
    started = time.monotonic()
    client.containers.run(image, command, network_mode="none", remove=True)
    return time.monotonic() - started


def on_host(script: str) -> str:
    """The same probe on the host's own file system, as a baseline."""
    return subprocess.run(
        ["/bin/sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()


def in_container(client: docker.DockerClient, image: str, script: str) -> str:
    out = client.containers.run(
        image, ["/bin/sh", "-c", script], network_mode="none", remove=True, shm_size="512m"
    )
    return out.decode().strip()


PY_TIMER = (
    'python3 -c "import time,subprocess;t=time.monotonic();'
    "subprocess.run(['python3','-c','{code}'],check=True);print(time.monotonic()-t)\""
)
WRITE_TIMER = (
    "python3 -c \"import os,time;t=time.monotonic();d='{dir}';os.makedirs(d,exist_ok=True)\n"
    "for i in range(2000): open(f'{{d}}/f{{i}}','w').write('x'*512)\n"
    'os.sync();print(time.monotonic()-t)"'
)
DD_TIMER = (
    "python3 -c \"import os,time;t=time.monotonic();f=open('{path}','wb')\n"
    "for i in range(256): f.write(b'\\\\0'*(1<<20))\n"
    'f.flush();os.fsync(f.fileno());print(time.monotonic()-t)"'
)


def fuse_overlay_probes(client: docker.DockerClient, tags: dict[str, str]) -> dict:
    base, node = tags["base"], tags["node"]
    probes: dict = {}
    probes["container_run_rm_true_s"] = summary(
        [timed_run(client, base, ["/bin/true"]) for _ in range(5)]
    )
    step_times = []
    for _ in range(3):
        dockerfile = f"FROM {node}\nLABEL bench.step={uuid.uuid4().hex}\n"
        started = time.monotonic()
        image, _ = client.images.build(
            fileobj=__import__("io").BytesIO(dockerfile.encode()), rm=True, nocache=True
        )
        step_times.append(time.monotonic() - started)
        client.images.remove(image.id)
    probes["build_one_label_step_s"] = summary(step_times)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as host_dir:
        probes["write_2000_small_files_s"] = {
            "container_layer": float(in_container(client, base, WRITE_TIMER.format(dir="/root/w"))),
            "tmpfs_dev_shm": float(
                in_container(client, base, WRITE_TIMER.format(dir="/dev/shm/w"))
            ),
            "host_var_tmp": float(on_host(WRITE_TIMER.format(dir=f"{host_dir}/w"))),
        }
        probes["write_256_MiB_fsync_s"] = {
            "container_layer": float(in_container(client, base, DD_TIMER.format(path="/root/big"))),
            "tmpfs_dev_shm": float(
                in_container(client, base, DD_TIMER.format(path="/dev/shm/big"))
            ),
            "host_var_tmp": float(on_host(DD_TIMER.format(path=f"{host_dir}/big"))),
        }
    code = "import cryptography.hazmat.primitives.ciphers.algorithms"
    script = "; ".join([PY_TIMER.format(code=code)] * 3)
    runs = [float(x) for x in in_container(client, base, script).split()]
    host_runs = [float(x) for x in on_host(script).split()]
    probes["python_import_cryptography_s"] = {
        "container": {"first": runs[0], "then": runs[1:]},
        "host": {"first": host_runs[0], "then": host_runs[1:]},
    }
    return probes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "images.json")
    parser.add_argument("--rounds", type=int, default=5, help="no-change ensure rounds")
    args = parser.parse_args()

    client = docker.from_env(timeout=900)
    scratch = Path(tempfile.mkdtemp(prefix="labctl-bench-images-", dir="/var/tmp"))
    project, cache = scratch / "project", scratch / "cache"
    shutil.copytree(ROOT / "images", project / "images")
    shutil.copytree(
        ROOT / "labctl", project / "labctl", ignore=shutil.ignore_patterns("__pycache__")
    )
    progress = ConsoleProgress(sys.stderr, tty=False, interval=15)
    made: list[str] = []
    results: dict = {
        "benchmark": "labctl image builds (debootstrap + docker import + classic build)",
        "host": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "storage_driver": client.info().get("Driver"),
            "docker": client.version().get("Version"),
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        builder = ImageBuilder(project, progress=progress, cache_dir=cache, client=client)

        mark(project)
        cold = builder.ensure()
        made += list(cold.tags.values())
        results["cold"] = {r: round(s, 2) for r, s in cold.build_seconds.items()}
        results["tags"] = dict(cold.tags)

        no_change = []
        for _ in range(args.rounds):
            started = time.monotonic()
            again = ImageBuilder(project, cache_dir=cache, client=client).ensure()
            no_change.append(time.monotonic() - started)
            assert again.built == (), again.built
        results["no_change_ensure_s"] = summary(no_change)

        mark(project)
        warm = builder.ensure()
        made += list(warm.tags.values())
        results["warm_package_cache"] = {r: round(s, 2) for r, s in warm.build_seconds.items()}

        with open(project / "labctl/__init__.py", "a") as out:
            out.write(f"# bench {uuid.uuid4().hex}\n")
        vpn_only = builder.ensure()
        made.append(vpn_only.tags["vpn"])
        results["vpn_source_change"] = {r: round(s, 2) for r, s in vpn_only.build_seconds.items()}

        sizes: dict = {}
        parent_size = 0
        for role, tag in warm.tags.items():  # base, node, vpn: each FROM the one before
            size = client.images.get(tag).attrs["Size"]
            sizes[role] = {"image_MB": round(size / 1e6, 1), "added_B": size - parent_size}
            parent_size = size
        log = (cache / "logs" / f"base-{warm.tags['base'].split(':')[1]}.log").read_text()
        sizes["base_rootfs_log_line"] = [ln for ln in log.splitlines() if ln.startswith("# deboot")]
        results["sizes"] = sizes
        results["fuse_overlayfs"] = fuse_overlay_probes(client, dict(warm.tags))
    finally:
        progress.close()
        for tag in reversed(made):  # children before parents
            try:
                client.images.remove(tag)
            except docker.errors.APIError as exc:
                print(f"could not remove {tag}: {exc}", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
