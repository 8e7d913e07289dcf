"""Lab lifecycle: up, down, push, and handles on running labs."""

from .down import down, plan_down
from .errors import LabBusy, LabError, LabUpError, PushError
from .health import LabHealth, lab_health
from .labstate import LabState, LabStateError, known_state_labs
from .lock import lab_lock
from .push import plan_push, push_node
from .record import (
    RecordError,
    lab_from_model,
    recorded_model,
    structure_differences,
    summarize,
)
from .session import LabHandle, LabNotRunning
from .up import UpPlan, plan_up, structure_hash, up

__all__ = [
    "LabBusy",
    "LabError",
    "LabHandle",
    "LabHealth",
    "LabNotRunning",
    "LabState",
    "LabStateError",
    "LabUpError",
    "PushError",
    "RecordError",
    "UpPlan",
    "down",
    "known_state_labs",
    "lab_from_model",
    "lab_health",
    "lab_lock",
    "plan_down",
    "plan_push",
    "plan_up",
    "push_node",
    "recorded_model",
    "structure_differences",
    "structure_hash",
    "summarize",
    "up",
]
