"""Golden files: what labctl renders for every node of every shipped topology.

Any change to a rendered file (nftables rules, the agents' vpn.json, a reload command, a
host sysctl) shows up here as a diff against tests/unit/render/golden/<topology>/<node>.txt.
When the change is intended, regenerate and review the diff like code:

    .venv/bin/python -m pytest tests/unit/render/test_golden.py --update-golden

Secrets are replaced by fixed test values first (`test-secret:<node>.<path>`), so the
golden files hold no secret of the topologies and do not change when one does.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from labctl.render import render_node
from labctl.topology import Lab, load_lab

ROOT = Path(__file__).resolve().parents[3]
TOPOLOGIES = sorted((ROOT / "topologies").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"
REGENERATE = ".venv/bin/python -m pytest tests/unit/render/test_golden.py --update-golden"


def _with_test_secrets(value: Any, path: tuple[str, ...]) -> Any:
    """`value` with every secret replaced by one named after where it sits."""
    if isinstance(value, SecretStr):
        return type(value)("test-secret:" + ".".join(path))
    if isinstance(value, BaseModel):
        updates = {}
        for name in type(value).model_fields:
            old = getattr(value, name)
            new = _with_test_secrets(old, (*path, name))
            if new is not old:
                updates[name] = new
        return value.model_copy(update=updates) if updates else value
    if isinstance(value, dict):
        items = {k: _with_test_secrets(v, (*path, str(k))) for k, v in value.items()}
        return items if any(items[k] is not value[k] for k in value) else value
    if isinstance(value, list):
        new_list = [_with_test_secrets(v, (*path, str(i))) for i, v in enumerate(value)]
        return new_list if any(a is not b for a, b in zip(new_list, value, strict=True)) else value
    return value


def lab_with_test_secrets(path: Path) -> Lab:
    lab = load_lab(path)
    nodes = {
        name: _with_test_secrets(node, (name,)) for name, node in lab.spec.topology.nodes.items()
    }
    topology = lab.spec.topology.model_copy(update={"nodes": nodes})
    return Lab(spec=lab.spec.model_copy(update={"topology": topology}), source=lab.source)


def golden_text(lab: Lab, node: str, topology: str) -> str:
    """One node's rendered configuration as one readable text."""
    config = render_node(lab, node)
    lines = [
        f"# {node} ({lab.node(node).kind}) of topologies/{topology}.yaml, with test secrets",
        f"# regenerate: {REGENERATE}",
    ]
    lines += [f"reload: {command}" for command in config.reload_commands]
    lines += [f"host sysctl: {key} = {value}" for key, value in config.host_sysctls.items()]
    for rendered in config.files:
        check = f", checked by: {rendered.check}" if rendered.check else ""
        lines.append(f"--- {rendered.path} (mode {rendered.mode:04o}{check})")
        text = rendered.content.decode()
        lines.append(text if text.endswith("\n") else text + "\n(no newline at the end)\n")
    return "\n".join(lines)


def rendered_golden(path: Path) -> dict[str, str]:
    lab = lab_with_test_secrets(path)
    return {f"{node}.txt": golden_text(lab, node, path.stem) for node in lab.nodes}


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_rendered_configuration_matches_the_golden_files(
    path: Path, request: pytest.FixtureRequest
) -> None:
    folder = GOLDEN / path.stem
    rendered = rendered_golden(path)
    if request.config.getoption("update_golden"):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in set(p.name for p in folder.glob("*.txt")) - set(rendered):
            (folder / stale).unlink()
        for name, text in rendered.items():
            (folder / name).write_text(text)
        return
    problems = []
    existing = {p.name for p in folder.glob("*.txt")} if folder.is_dir() else set()
    for name in sorted(existing - set(rendered)):
        problems.append(f"{folder / name}: no such node any more")
    for name, text in sorted(rendered.items()):
        golden = folder / name
        if name not in existing:
            problems.append(f"{golden}: missing")
            continue
        diff = list(
            difflib.unified_diff(
                golden.read_text().splitlines(), text.splitlines(), str(golden), "rendered", n=1
            )
        )
        if diff:
            problems.append("\n".join(diff[:40]))
    assert not problems, "\n".join(problems) + f"\nif the change is intended: {REGENERATE}"


def test_every_golden_folder_is_a_shipped_topology() -> None:
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == sorted(
        p.stem for p in TOPOLOGIES
    )


def test_golden_files_hold_test_secrets_only() -> None:
    lab = load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml")
    vpn3000 = (GOLDEN / "nat-t-two-clients" / "vpn3000.txt").read_text()
    client1 = (GOLDEN / "nat-t-two-clients" / "client1.txt").read_text()
    assert '"psk": "test-secret:vpn3000.vpn.groups.ciscovpn.psk"' in vpn3000
    assert '"password": "test-secret:client1.vpn.password"' in client1
    for path in GOLDEN.rglob("*.txt"):
        text = path.read_text()
        for secret in ("cisco123", "vpnclient1pw", "vpnclient2pw", "labpw"):
            assert secret not in text, (path, secret)
    assert lab.node("vpn3000").vpn.groups["ciscovpn"].psk.get_secret_value() == "cisco123"
