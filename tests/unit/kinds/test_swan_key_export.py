"""The strongSwan kinds' lab-only key export (vpn.debug.export-keys): a second charon log at
the levels that dump keys, in a 0600 file of its own, only when the switch is on; the normal
log keeps its level (keys must never be in it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from labctl.kinds.third_party import KEYS_LOG, PREPARE_KEYS_LOG
from labctl.render import render_node
from labctl.topology import load_lab_text

ROOT = Path(__file__).resolve().parents[3]
INTEROP = ROOT / "topologies" / "interop-strongswan-vpnc.yaml"
SITE = ROOT / "topologies" / "l2l-strongswan-site.yaml"
# (topology, node): a strongSwan concentrator, client and site
NODES = [(INTEROP, "swangw"), (INTEROP, "swanc"), (SITE, "site")]


def rendered(topology: Path, node: str, export_keys: bool):
    data = yaml.safe_load(topology.read_text())
    if export_keys:
        data["topology"]["nodes"][node]["vpn"]["debug"] = {"export-keys": True}
    lab = load_lab_text(yaml.safe_dump(data, sort_keys=False), topology)
    config = render_node(lab, node)
    files = {f.path: f for f in config.files}
    return config, files["/etc/strongswan.conf"]


def filelogs(conf: str) -> dict[str, dict[str, str]]:
    """filelog subsections -> their settings (the template's layout: one per line)."""
    body = conf[conf.index("filelog {") :]
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in body.splitlines()[1:]:
        if match := re.match(r"^\t\t(\w+) \{$", line):
            current = sections.setdefault(match[1], {})
        elif line.strip() == "}" and current is not None and line.startswith("\t\t}"):
            current = None
        elif line.strip() == "}":
            break
        elif current is not None and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value
    return sections


@pytest.mark.parametrize(("topology", "node"), NODES)
def test_export_keys_adds_a_key_log_of_its_own(topology: Path, node: str) -> None:
    config, conf = rendered(topology, node, export_keys=True)
    logs = filelogs(conf.content.decode())
    assert set(logs) == {"labctl", "keys"}
    keys = logs["keys"]
    assert keys["path"] == KEYS_LOG == "/var/log/labctl/keys/charon-keys.log"
    assert (keys["ike"], keys["chd"], keys["default"]) == ("4", "4", "-1")
    assert keys["ike_name"] == "yes" and keys["append"] == "yes"
    # the normal log stays at the topology's level (info: 1), far below the key dumps
    assert logs["labctl"]["default"] == "1" and set(logs["labctl"]) & {"ike", "chd"} == set()
    # the file is made 0600 in a 0700 directory before charon (re)starts and opens it
    assert config.reload_commands == (PREPARE_KEYS_LOG, "labctl-swan reload")
    assert "umask 077" in PREPARE_KEYS_LOG and "chmod 0600 " + KEYS_LOG in PREPARE_KEYS_LOG
    assert "chmod 0700 /var/log/labctl/keys" in PREPARE_KEYS_LOG


@pytest.mark.parametrize(("topology", "node"), NODES)
def test_no_key_log_and_no_key_levels_by_default(topology: Path, node: str) -> None:
    config, conf = rendered(topology, node, export_keys=False)
    text = conf.content.decode()
    assert set(filelogs(text)) == {"labctl"}
    assert "keys" not in text and not re.search(r"\b(ike|chd) = 4\b", text)
    assert config.reload_commands == ("labctl-swan reload",)
