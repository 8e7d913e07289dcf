"""The interop bench derives its lab from topologies/interop-strongswan-vpnc.yaml: whatever
clients that file has, the derived lab must load (a client added there once broke it)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from labctl.topology.load import load_lab_text

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import bench_interop


def test_the_bench_lab_loads_with_only_its_own_clients(tmp_path: Path) -> None:
    text = bench_interop.bench_topology("bench-ix-test", "3des-md5")
    path = tmp_path / "interop-bench.yaml"
    path.write_text(text)
    lab = load_lab_text(text, path)
    data = yaml.safe_load(text)
    clients = {n for n, spec in data["topology"]["nodes"].items() if spec["kind"] == "vpn-client"}
    expected = {bench_interop.node_name(i, g) for i, g in bench_interop.ALL_PAIRS}
    assert clients == expected
    assert lab is not None
