"""Lab lifecycle: up, down, push, and handles on running labs."""

from .down import down
from .labstate import LabState, LabStateError, known_state_labs
from .push import push_node
from .session import LabHandle, LabNotRunning
from .up import LabUpError, topology_hash, up

__all__ = [
    "LabHandle",
    "LabNotRunning",
    "LabState",
    "LabStateError",
    "LabUpError",
    "down",
    "known_state_labs",
    "push_node",
    "topology_hash",
    "up",
]
