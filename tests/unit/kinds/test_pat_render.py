"""The PAT firewall's rendered nftables: port allocation and counted, named rules."""

from __future__ import annotations

from pathlib import Path

from labctl.render import render_node
from labctl.topology import load_lab_text

ROOT = Path(__file__).resolve().parents[3]
SEED_TEXT = (ROOT / "topologies" / "nat-t-two-clients.yaml").read_text()


def _pix_rules(text: str) -> str:
    config = render_node(load_lab_text(text, ROOT / "topologies" / "t.yaml"), "pix")
    return next(f.content.decode() for f in config.files if f.path.endswith(".nft"))


def test_default_masquerade_keeps_free_local_ports() -> None:
    rules = _pix_rules(SEED_TEXT)
    assert 'counter masquerade comment "PAT to 171.69.89.78"' in rules
    assert "fully-random" not in rules


def test_random_port_allocation_never_keeps_the_local_port() -> None:
    text = SEED_TEXT.replace(
        "outside: outside       #", "port-allocation: random\n        outside: outside  #"
    )
    assert "port-allocation: random" in text
    assert 'counter masquerade fully-random comment "PAT to 171.69.89.78"' in _pix_rules(text)


def test_every_counted_forward_rule_has_a_name() -> None:
    rules = _pix_rules(SEED_TEXT)
    forward = rules[rules.index("chain forward") : rules.index("chain postrouting")]
    for line in forward.splitlines():
        if " counter " in f" {line.strip()} ":
            assert "comment" in line, line
    assert 'comment "no PAT for this protocol"' in forward
