"""Finding the lab a command is about: by name, by topology file, or the only one up."""

from __future__ import annotations

import os
from pathlib import Path

from ..lifecycle import LabHandle, LabState
from ..naming import LABEL_TOPOLOGY, check_lab_name
from ..runtime import Runtime
from ..topology import Lab, load_lab


class CliError(Exception):
    """An error for the user: printed as one line, exit status 1 (or .status)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def load_lab_as(path: str | Path, name: str | None = None) -> Lab:
    """Load a topology, optionally under another lab name (to run two copies at once)."""
    lab = load_lab(path)
    if name and name != lab.name:
        check_lab_name(name, "--name")
        lab = Lab(spec=lab.spec.model_copy(update={"name": name}), source=lab.source)
    return lab


def running_lab_names(runtime: Runtime) -> list[str]:
    return sorted(runtime.labs())


def pick_lab_name(runtime: Runtime, requested: str | None) -> str:
    if not requested and os.environ.get("LABCTL_LAB"):
        requested = check_lab_name(os.environ["LABCTL_LAB"], "LABCTL_LAB")
    labs = running_lab_names(runtime)
    if requested:
        if requested not in labs:
            raise CliError(
                f"no lab named {requested!r} is up" + (f" (up: {', '.join(labs)})" if labs else "")
            )
        return requested
    if len(labs) == 1:
        return labs[0]
    if not labs:
        raise CliError("no lab is up; start one with 'labctl up FILE'")
    raise CliError(f"several labs are up ({', '.join(labs)}); choose one with --lab NAME")


def open_running_lab(runtime: Runtime, requested: str | None) -> LabHandle:
    name = pick_lab_name(runtime, requested)
    record = LabState.of(name).read_record() or {}
    topology = record.get("topology")
    if not topology:
        nodes = runtime.nodes(name)
        topology = nodes[0].labels.get(LABEL_TOPOLOGY) if nodes else None
    if not topology or not Path(topology).exists():
        raise CliError(
            f"lab {name}: its topology file {topology or '(unknown)'} is gone; "
            f"'labctl down {name}' still works"
        )
    return LabHandle.open(load_lab_as(topology, name), runtime)
