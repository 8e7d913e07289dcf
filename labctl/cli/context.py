"""Finding the lab a command is about: by name, by topology file, or the only one up."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LabctlError
from ..lifecycle import (
    LabHandle,
    LabState,
    RecordError,
    lab_from_model,
    recorded_model,
    structure_differences,
)
from ..naming import LABEL_TOPOLOGY, check_lab_name
from ..runtime import Runtime
from ..topology import Lab, load_lab


class CliError(LabctlError):
    """An error for the user: printed as one line, exit status 1 (or .status)."""


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
    """A running lab as `up` recorded it: the topology file is not read, so exec, show and
    status work while it is broken or an {env:} secret is unset. Its secrets are masked."""
    name = pick_lab_name(runtime, requested)
    record = LabState.of(name).read_record()
    if record is None or "model" not in record:
        # `up` never finished (or an older labctl made the lab): only the file describes it.
        return LabHandle.open(
            load_lab_as(_topology_file(runtime, name, record or {}), name), runtime
        )
    try:
        lab = lab_from_model(
            record["model"], Path(record["topology"]) if record.get("topology") else None
        )
    except RecordError as exc:
        raise CliError(f"lab {name}: {exc}; 'labctl down {name}' still works") from None
    return LabHandle.open(lab, runtime, secrets=False)


def open_lab_for_push(runtime: Runtime, name: str) -> tuple[LabHandle, list[str]]:
    """The running lab with its topology file read again (a push needs the file's
    secrets), and how the file's structure differs from what `up` built."""
    record = LabState.of(name).read_record() or {}
    lab = load_lab_as(_topology_file(runtime, name, record), name)
    differences = (
        structure_differences(record["model"], recorded_model(lab)) if "model" in record else []
    )
    return LabHandle.open(lab, runtime), differences


def _topology_file(runtime: Runtime, name: str, record: dict) -> str:
    topology = record.get("topology")
    if not topology:
        nodes = runtime.nodes(name)
        topology = nodes[0].labels.get(LABEL_TOPOLOGY) if nodes else None
    if not topology or not Path(topology).exists():
        raise CliError(
            f"lab {name}: its topology file {topology or '(unknown)'} is gone; "
            f"'labctl down {name}' still works"
        )
    return topology
