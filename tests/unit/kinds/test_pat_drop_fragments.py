"""The PAT's `drop-fragments` option: a prerouting chain ahead of defragmentation."""

from __future__ import annotations

from pathlib import Path

from labctl.render import render_node
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]


def _nft(lab) -> str:
    config = render_node(lab, "pix")
    return next(f.content.decode() for f in config.files if f.path.endswith(".nft"))


def test_drop_fragments_renders_a_counted_rule_before_defragmentation() -> None:
    lab = load_lab(ROOT / "topologies" / "l2l-nat-t.yaml")
    text = _nft(lab)
    chain = text[text.index("chain fragments") :]
    chain = chain[: chain.index("}")]
    # conntrack reassembles at priority -400: the chain must see fragments before that
    assert "type filter hook prerouting priority -450" in chain
    rule = next(line.strip() for line in text.splitlines() if "fragment dropped" in line)
    # both directions; any fragment: more-fragments bit or an offset (0x3fff)
    assert rule.startswith('iifname { "inside", "outside" } ip frag-off & 0x3fff != 0')
    assert "counter drop" in rule


def test_without_the_option_no_fragment_rule() -> None:
    lab = load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml")
    assert "fragment" not in _nft(lab)
