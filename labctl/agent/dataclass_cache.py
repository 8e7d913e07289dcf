"""Compiled dataclass methods, made once when the vpn image is built.

``@dataclass`` writes the source of each class's ``__init__``, ``__repr__``, ``__eq__``...
and compiles it when the class is defined: for an agent about 100 classes and 550
functions, and a lab of 200 clients starts 200 agents. With the table an agent's import
took ~80 vs ~115 ms of CPU on a node (process_time, three runs each). The vpn image's
build runs this module
(``python3 -m labctl.agent.dataclass_cache FILE``): it imports every agent role and keeps
the code each of those sources compiled to. An agent loads that file at its start
(``use``, from ``labctl.agent``'s ``__init__``) and dataclasses take a function's code from
it instead of compiling it. A source not in the file (a class the file does not know, or
another interpreter's file) is compiled as before, so a stale file costs time, not
correctness.

How: dataclasses (CPython 3.11) defines each method with ``exec(source, globals, ns)``,
calling ``exec`` by name, so a module-level ``exec`` in its namespace takes that call.
Nothing is done where dataclasses lacks ``_create_fn`` (another version's internals).
"""

from __future__ import annotations

import dataclasses
import marshal
import os
import sys
from collections.abc import Callable, Iterable
from types import CodeType
from typing import Any

CACHE_FILE = os.path.join(os.path.dirname(__file__), "dataclass-methods.marshal")

# every module an agent of any role imports at start (the image test imports each role)
AGENT_MODULES = (
    "labctl.agent.daemon",
    "labctl.agent.cli",
    "labctl.agent.client",
    "labctl.agent.site",
    "labctl.agent.concentrator",
    "labctl.agent.fleet",
)


# sources found in the table and sources compiled, while ``use`` is in force
counts = {"cached": 0, "compiled": 0}


def _supported() -> bool:
    return hasattr(dataclasses, "_create_fn") and "exec" not in vars(dataclasses)


def _install(exec_: Callable[..., Any]) -> None:
    dataclasses.exec = exec_  # type: ignore[attr-defined]


def release() -> None:
    """Back to the builtin exec; the table's code objects are freed."""
    vars(dataclasses).pop("exec", None)


def use(path: str = CACHE_FILE) -> bool:
    """Compile dataclass methods from ``path``'s table while it is installed (until
    ``release``). False (and nothing changed) when there is no usable table."""
    if not _supported():
        return False
    try:
        with open(path, "rb") as handle:  # marshal.load reads a file piece by piece: 5x slower
            version, table = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):
        return False
    if version != sys.version or not isinstance(table, dict):
        return False

    def cached_exec(source: Any, globals_: Any = None, locals_: Any = None) -> None:
        code = table.get(source) if isinstance(source, str) else None
        counts["compiled" if code is None else "cached"] += 1
        exec(source if code is None else code, globals_, locals_)

    _install(cached_exec)
    return True


def record(modules: Iterable[str]) -> dict[str, CodeType]:
    """Import ``modules`` (in a fresh interpreter: classes defined before this are not
    seen) and return each dataclass method source with the code it compiled to."""
    if not _supported():
        raise RuntimeError("this Python's dataclasses do not define methods by exec")
    table: dict[str, CodeType] = {}

    def recording_exec(source: Any, globals_: Any = None, locals_: Any = None) -> None:
        if isinstance(source, str):
            code = table.get(source)
            if code is None:
                code = table[source] = compile(source, "<string>", "exec")
            source = code
        exec(source, globals_, locals_)

    _install(recording_exec)
    try:
        for name in modules:
            __import__(name)
    finally:
        release()
    return table


def write(path: str, table: dict[str, CodeType]) -> None:
    with open(path, "wb") as handle:
        marshal.dump((sys.version, table), handle)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m labctl.agent.dataclass_cache FILE", file=sys.stderr)
        return 2
    table = record(AGENT_MODULES)
    write(argv[0], table)
    print(f"{len(table)} dataclass methods compiled into {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
