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


KEEPALIVE_TEXT = (ROOT / "topologies" / "keepalive-vs-pat-timeout.yaml").read_text()


def _hook_priority(rules: str, chain: str) -> int:
    """The numeric priority of a base chain of the rendered ruleset."""
    names = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "srcnat": 100}
    block = rules[rules.index(f"chain {chain} {{") :]
    spec = block[block.index("priority ") + len("priority ") : block.index(";")].strip()
    return names[spec] if spec in names else int(spec)


def test_the_timeout_policy_chain_runs_after_conntrack_made_the_entry() -> None:
    # `ct state new ct timeout set` needs the flow's (unconfirmed) conntrack entry: a
    # chain at conntrack's own priority, -200, registered after it, runs before it and
    # never matches (seen: every translation on 120 s instead of `timeouts: {udp: 30}`).
    rules = _pix_rules(KEEPALIVE_TEXT)
    assert 'ct timeout set "udp-timeout"' in rules
    assert -200 < _hook_priority(rules, "timeouts") < -100  # after conntrack, before dstnat
