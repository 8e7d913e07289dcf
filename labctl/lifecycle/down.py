"""`labctl down`: remove everything a lab made, found by labels and names.

Works from nothing but the lab name, so it also cleans up after a labctl that was
killed half-way through `up`.
"""

from __future__ import annotations

from ..naming import check_lab_name, fabric_netns
from ..progress import Progress
from ..runtime import Runtime
from ..wiring import list_named_netns, remove_fabric
from .labstate import LabState
from .lock import lab_lock


def down(lab_name: str, runtime: Runtime, progress: Progress) -> list[str]:
    check_lab_name(lab_name)  # a name that is not one never becomes a path to remove
    with lab_lock(lab_name, "labctl down"):
        return _down(lab_name, runtime, progress)


def plan_down(lab_name: str, runtime: Runtime) -> list[str]:
    """What `down` would remove, found the way _down finds it; changes nothing."""
    check_lab_name(lab_name)
    found = [f"container {node.name}" for node in runtime.nodes(lab_name)]
    if fabric_netns(lab_name) in list_named_netns():
        found.append(f"netns {fabric_netns(lab_name)} (its bridges and veths with it)")
    state = LabState.of(lab_name)
    if state.is_ours():
        found.append(f"state {state.directory}")
    return found


def _down(lab_name: str, runtime: Runtime, progress: Progress) -> list[str]:
    removed: list[str] = []
    with progress.stage(f"down {lab_name}"):
        # Containers first: their ends of the veths vanish with their namespaces.
        removed += runtime.remove_lab(lab_name)
        if remove_fabric(lab_name):
            removed.append(f"netns labctl-{lab_name}")
        state = LabState.of(lab_name)
        if state.remove():
            removed.append(f"state {state.directory}")
        elif state.exists():
            progress.say(f"  left {state.directory} alone: labctl did not make it")
    return removed
