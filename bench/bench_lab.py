"""Benchmark: wall time of `labctl up` and `labctl down` for the seed lab, images cached.

Runs the real CLI as a subprocess (what a user waits for), several rounds, and writes
min/median/max to a JSON results file. Targets: up <= 10 s, down <= 3 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "topologies" / "nat-t-two-clients.yaml"


def timed(*args: str) -> float:
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "labctl", "-q", *args],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - start


def summary(values: list[float]) -> dict:
    return {
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "max": round(max(values), 3),
        "runs": [round(v, 3) for v in values],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lab.json")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    subprocess.run(
        [sys.executable, "-m", "labctl", "-q", "images", "build"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ups, downs = [], []
    name = f"bench-{secrets.token_hex(3)}"
    try:
        for _ in range(args.rounds):
            ups.append(timed("up", str(SEED), "--name", name))
            downs.append(timed("down", name))
    finally:
        subprocess.run(
            [sys.executable, "-m", "labctl", "-q", "down", name],
            cwd=ROOT,
            check=False,
            stdout=subprocess.DEVNULL,
        )
    results = {
        "benchmark": "seed lab up/down (images cached)",
        "topology": str(SEED.relative_to(ROOT)),
        "host": {"cpus": __import__("os").cpu_count(), "kernel": platform.release()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "up_seconds": summary(ups),
        "down_seconds": summary(downs),
        "targets": {"up_seconds": 10, "down_seconds": 3},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
