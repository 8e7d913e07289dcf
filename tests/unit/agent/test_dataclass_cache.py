"""The vpn image's table of compiled dataclass methods (labctl.agent.dataclass_cache): an
agent that loads it compiles none of its roles' methods and gets the very same code; a
table from another interpreter, or a damaged one, is not used. Each case runs in a new
interpreter: one that already defined the classes would show nothing."""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.agent.dataclass_cache import AGENT_MODULES

# For every dataclass of labctl's modules: the bytecode of each method dataclasses made
# (not marshal's bytes: those depend on reference counts).
METHOD_CODE = """
import dataclasses, hashlib, json, sys, types
def fingerprint(code):
    consts = [fingerprint(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return repr((code.co_code, code.co_names, code.co_varnames, code.co_freevars, consts))
out = {}
for name, module in sorted(sys.modules.items()):
    if not name.startswith("labctl."):
        continue
    for cls in vars(module).values():
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == name:
            for method in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__"):
                fn = vars(cls).get(method)
                code = getattr(fn, "__code__", None)
                if code is not None and code.co_filename == "<string>":
                    key = f"{name}.{cls.__qualname__}.{method}"
                    out[key] = hashlib.sha256(fingerprint(code).encode()).hexdigest()
"""


def run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def table_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dataclass-cache") / "methods.marshal"
    done = subprocess.run(
        [sys.executable, "-m", "labctl.agent.dataclass_cache", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "dataclass methods compiled into" in done.stdout
    return path


def imported_with(table: Path) -> dict:
    modules = "; ".join(f"import {m}" for m in AGENT_MODULES)
    return run(
        "from labctl.agent import dataclass_cache as c\n"
        f"used = c.use({str(table)!r})\n"
        f"{modules}\n"
        f"{METHOD_CODE}\n"
        "c.release()\n"
        "print(json.dumps({'used': used, 'counts': c.counts, 'code': out,"
        " 'released': 'exec' not in vars(dataclasses)}))"
    )


def test_an_agent_with_the_table_compiles_no_method_and_gets_the_same_code(
    table_file: Path,
) -> None:
    version, table = marshal.loads(table_file.read_bytes())
    assert version == sys.version and len(table) > 300
    cached = imported_with(table_file)
    plain = run(
        f"{'; '.join(f'import {m}' for m in AGENT_MODULES)}\n{METHOD_CODE}\n"
        "print(json.dumps({'code': out}))"
    )
    assert cached["used"] and cached["released"]
    assert cached["counts"]["compiled"] == 0
    assert cached["counts"]["cached"] >= len(table)  # classes with the same fields share sources
    assert len(plain["code"]) > 300
    assert cached["code"] == plain["code"]


def test_a_table_of_another_python_or_a_damaged_one_is_not_used(tmp_path: Path) -> None:
    other = tmp_path / "other.marshal"
    other.write_bytes(marshal.dumps(("2.7.18 (default)", {})))
    damaged = tmp_path / "damaged.marshal"
    damaged.write_bytes(b"\x00not marshal")
    for path in (other, damaged, tmp_path / "missing.marshal"):
        result = imported_with(path)
        assert not result["used"], path.name
        assert result["counts"] == {"cached": 0, "compiled": 0}
        assert len(result["code"]) > 300  # the agent imported all the same
