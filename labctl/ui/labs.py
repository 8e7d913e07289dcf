"""The running labs as the web console sees them, read the way the CLI reads them: the
lab model `up` recorded (LabHandle, secrets masked), the runtime's nodes, node tables
through `labctl.state.collect`, and the fabric bridges' counters for link traffic."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..cli.context import open_running_lab
from ..cli.inspect import describe_lab, inspect_labs, recorded_lab
from ..lifecycle import LabHandle, LabState, known_state_labs, lab_health
from ..mgmt.ssh import MgmtError
from ..naming import LAB_NAME_PATTERN, bridge_name, fabric_netns
from ..runtime import Runtime
from ..state import collect, shows_for
from ..wiring import list_named_netns
from ..wiring.netns import named_netns_path, open_netns


class UnknownLab(LookupError):
    pass


@dataclass
class LinkTraffic:
    """A fabric bridge's counters and the rate since the previous reading."""

    link: str
    bridge: str
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    bytes_per_second: float = 0.0
    packets_per_second: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class OpenLab:
    handle: LabHandle
    lock: threading.Lock = field(default_factory=threading.Lock)  # one SSH user at a time
    last_traffic: dict[str, tuple[float, int, int]] = field(default_factory=dict)


class LabRegistry:
    """Handles on running labs, opened on first use and kept; reopened after a failure."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._open: dict[str, OpenLab] = {}
        self._guard = threading.Lock()

    def names(self) -> list[str]:
        names = set(self.runtime.labs()) | known_state_labs()
        return sorted(n for n in names if re.fullmatch(LAB_NAME_PATTERN, n))

    def overview(self) -> list[dict[str, Any]]:
        return inspect_labs(self.runtime, self.names())

    def describe(self, name: str) -> dict[str, Any]:
        if name not in self.names():
            raise UnknownLab(name)
        nodes = self.runtime.nodes(name)
        state = lab_health(name, nodes, list_named_netns()).text()
        return describe_lab(name, recorded_lab(name), nodes, state, LabState.of(name).read_record())

    def lab(self, name: str) -> OpenLab:
        with self._guard:
            if name not in self._open:
                if name not in self.names():
                    raise UnknownLab(name)
                self._open[name] = OpenLab(open_running_lab(self.runtime, name))
            return self._open[name]

    def forget(self, name: str) -> None:
        with self._guard:
            opened = self._open.pop(name, None)
        if opened is not None:
            opened.handle.close()

    def close(self) -> None:
        for name in list(self._open):
            self.forget(name)

    def collect(self, lab: str, node: str, what: str, verbose: bool = False) -> tuple[Any, str]:
        """A node table through the CLI's collectors; a broken SSH session is reopened once."""
        for attempt in (1, 2):
            opened = self.lab(lab)
            try:
                with opened.lock:
                    return collect(opened.handle, node, what, verbose)
            except (MgmtError, OSError, EOFError):
                self.forget(lab)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def run(self, lab: str, node: str, command: str) -> tuple[int, str, str]:
        """A command on a node over the management session (the agent's own CLI)."""
        opened = self.lab(lab)
        with opened.lock:
            result = opened.handle.session(node).run(command, timeout=30)
        return result.exit_status, result.stdout, result.stderr

    def shows_for(self, lab: str, node: str) -> list[str]:
        return sorted(shows_for(self.lab(lab).handle.lab.node(node)))

    def traffic(self, lab: str) -> dict[str, LinkTraffic]:
        """Per link: the frames its nodes sent into it and the rates since the last call."""
        opened = self.lab(lab)
        segments = {bridge_name(s.index): s.name for s in opened.handle.lab.segments}
        result = {name: LinkTraffic(name, bridge) for bridge, name in segments.items()}
        try:
            ns = open_netns(named_netns_path(fabric_netns(lab)))
        except FileNotFoundError:  # its fabric is gone (a `down` under way): nothing to count
            return result
        try:
            _port_totals(ns, segments, result)
        finally:
            ns.close()
        now = time.monotonic()
        for name, traffic in result.items():
            before = opened.last_traffic.get(name)
            if before is not None and now > before[0]:
                seconds = now - before[0]
                traffic.bytes_per_second = max(0.0, (traffic.rx_bytes - before[1]) / seconds)
                traffic.packets_per_second = max(0.0, (traffic.rx_packets - before[2]) / seconds)
            opened.last_traffic[name] = (now, traffic.rx_bytes, traffic.rx_packets)
        return result


def _port_totals(ns, segments: dict[str, str], result: dict[str, LinkTraffic]) -> None:
    """Frames entering the bridge from its ports (each frame a node sent on the link once):
    the rx counters of the fabric ports (`s<i>p<j>`) that are enslaved to the bridge."""
    index_to_bridge = {}
    links = list(ns.get_links())
    for link in links:
        name = link.get_attr("IFLA_IFNAME")
        if name in segments:
            index_to_bridge[link["index"]] = name
    totals: dict[str, list[int]] = {}
    for link in links:
        master = link.get_attr("IFLA_MASTER")
        if master not in index_to_bridge:
            continue
        stats = link.get_attr("IFLA_STATS64") or {}
        entry = totals.setdefault(index_to_bridge[master], [0, 0, 0, 0])
        # a port's rx is what the node sent into the link; its tx what the link delivered
        entry[0] += int(stats.get("rx_packets", 0))
        entry[1] += int(stats.get("rx_bytes", 0))
        entry[2] += int(stats.get("tx_packets", 0))
        entry[3] += int(stats.get("tx_bytes", 0))
    for bridge, (rxp, rxb, txp, txb) in totals.items():
        traffic = result.get(segments[bridge])
        if traffic is not None:
            traffic.rx_packets, traffic.rx_bytes = rxp, rxb
            traffic.tx_packets, traffic.tx_bytes = txp, txb
