"""`labctl down`: remove everything a lab made, found by labels and names.

Works from nothing but the lab name, so it also cleans up after a labctl that was
killed half-way through `up`.
"""

from __future__ import annotations

from ..progress import Progress
from ..runtime import Runtime
from ..wiring import remove_fabric
from .labstate import LabState


def down(lab_name: str, runtime: Runtime, progress: Progress) -> list[str]:
    removed: list[str] = []
    with progress.stage(f"down {lab_name}"):
        # Containers first: their ends of the veths vanish with their namespaces.
        removed += runtime.remove_lab(lab_name)
        if remove_fabric(lab_name):
            removed.append(f"netns labctl-{lab_name}")
        state = LabState.of(lab_name)
        if state.remove():
            removed.append(f"state {state.directory}")
    return removed
