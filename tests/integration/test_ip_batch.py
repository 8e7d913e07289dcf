"""run_ip_batch and gateway_towards against the real kernel, in a namespace of our own.

The client agent sets a tunnel's address and routes with one `ip -batch` process and finds
the concentrator's next hop in /proc/net/route; both must agree with what `ip` itself does.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
WORKTREE = Path(__file__).resolve().parents[2]

# Runs inside the namespace: the agent code on the nodes' interpreter.
PROBE = """
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from labctl.agent.kernel_routes import gateway_towards
from labctl.agent.tun import TunError, run_ip_batch
out = {}
run_ip_batch([
    ["addr", "replace", "40.1.1.7/32", "dev", "d0"],
    ["route", "replace", "0.0.0.0/1", "dev", "d0", "src", "40.1.1.7"],
    ["route", "replace", "128.0.0.0/1", "dev", "d0", "src", "40.1.1.7"],
    ["route", "replace", "172.16.172.50/32", "via", "10.10.10.1"],
])
out["routes"] = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True).stdout
out["gateway"] = gateway_towards("172.16.172.50")
out["gateway_lan"] = gateway_towards("10.10.10.9")
try:
    run_ip_batch([["route", "del", "198.51.100.0/24", "dev", "d0"]])
    out["error"] = None
except TunError as exc:
    out["error"] = str(exc)
run_ip_batch([
    ["route", "del", "198.51.100.0/24", "dev", "d0"],  # not there: ignored with force
    ["route", "del", "0.0.0.0/1", "dev", "d0"],
    ["route", "del", "128.0.0.0/1", "dev", "d0"],
    ["addr", "flush", "dev", "d0"],
    ["route", "del", "172.16.172.50/32"],
], force=True)
out["after"] = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True).stdout
print(json.dumps(out))
"""


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces)")
    name = f"ipb{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (
            # veth pairs with both ends inside (this kernel has no dummy links)
            ["ip", "link", "add", "e1", "type", "veth", "peer", "name", "e1p"],
            ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d0p"],
            ["ip", "addr", "add", "10.10.10.2/24", "dev", "e1"],
            *(["ip", "link", "set", link, "up"] for link in ("e1", "e1p", "d0", "d0p")),
            ["ip", "route", "add", "default", "via", "10.10.10.1"],
        ):
            subprocess.run(["ip", "netns", "exec", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_batch_sets_and_clears_a_tunnels_routes(netns: str) -> None:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "/usr/bin/python3", "-c", PROBE, str(WORKTREE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    routes = {
        (r["dst"], r.get("dev"), r.get("prefsrc"), r.get("gateway"))
        for r in json.loads(out["routes"])
    }
    assert ("0.0.0.0/1", "d0", "40.1.1.7", None) in routes
    assert ("128.0.0.0/1", "d0", "40.1.1.7", None) in routes
    assert ("172.16.172.50", "e1", None, "10.10.10.1") in routes
    # Both answers agree with the kernel: the /32 host route is longer than the /1.
    assert out["gateway"] == "10.10.10.1"
    assert out["gateway_lan"] is None
    assert out["error"] and "198.51.100.0/24" in out["error"], out["error"]
    after = {r["dst"] for r in json.loads(out["after"])}
    assert after == {"default", "10.10.10.0/24"}, after


def test_batch_refuses_arguments_that_would_split_lines() -> None:
    sys.path.insert(0, str(WORKTREE))
    from labctl.agent.tun import TunError, run_ip_batch

    for bad in ("10.0.0.0/8 dev eth0", "", "#x", "a\nroute flush all"):
        with pytest.raises(TunError):
            run_ip_batch([["route", "del", bad]])
