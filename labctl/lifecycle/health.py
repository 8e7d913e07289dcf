"""Is a lab whole? Read from what exists (containers, the fabric namespace, the record `up`
writes last, the lab's lock), never from what was configured."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ..naming import fabric_netns
from ..runtime import NodeInfo
from .labstate import LabState
from .lock import lock_holder


@dataclass(frozen=True)
class LabHealth:
    state: str  # up | busy | incomplete | broken | degraded
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "up"

    def text(self) -> str:
        return f"{self.state}: {self.detail}" if self.detail else self.state


def lab_health(lab: str, nodes: list[NodeInfo], named_netns: Collection[str]) -> LabHealth:
    """The lab's health as `status` shows it; `busy` while another labctl works on it."""
    holder = lock_holder(lab)
    if holder is not None:
        return LabHealth("busy", holder.describe())
    return assess(lab, nodes, LabState.of(lab).read_record(), fabric_netns(lab) in named_netns)


def assess(
    lab: str, nodes: list[NodeInfo], record: dict[str, Any] | None, fabric_present: bool
) -> LabHealth:
    if record is None:  # `up` writes the record last: without it, up never finished
        return LabHealth(
            "incomplete", f"up did not finish (run labctl up again or labctl down {lab})"
        )
    if not fabric_present:
        return LabHealth(
            "broken", f"fabric namespace missing (labctl down {lab}, then labctl up again)"
        )
    missing = sorted(set(record.get("nodes", {})) - {n.node for n in nodes})
    if missing:
        return LabHealth("broken", f"node container missing: {', '.join(missing)}")
    stopped = [f"{n.node} {n.state}" for n in nodes if n.state != "running"]
    if stopped:
        return LabHealth("degraded", ", ".join(sorted(stopped)))
    return LabHealth("up")
