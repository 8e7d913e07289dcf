"""Where a secret could slip out of the model: repr, dumps, scenario `set` values, the
graph, and the redaction every report passes through."""

from __future__ import annotations

from pathlib import Path

from labctl import graph
from labctl.topology import load_lab_text
from labctl.topology.secrets import MASK, redact, remember_secret

SEED = Path(__file__).resolve().parents[3] / "topologies" / "nat-t-two-clients.yaml"
SETS = """
scenarios:
  rotate:
    steps:
      - set: {node: vpn3000, path: vpn.groups.ciscovpn.psk, value: Zeta-Secret-9}
      - set:
          node: vpn3000
          path: vpn.groups.ciscovpn
          value: {psk: Zeta-Secret-8, pool: 40.1.1.1-40.1.1.9}
      - set: {node: vpn3000, path: vpn.nat-keepalive, value: 11}
"""


def seed_with_sets() -> str:
    text = SEED.read_text()
    return text[: text.index("\nexpect:")] + SETS


def test_scenario_set_values_of_secrets_stay_out_of_repr_and_json() -> None:
    lab = load_lab_text(seed_with_sets())
    for text in (repr(lab.spec), str(lab.spec), lab.spec.model_dump_json()):
        assert "Zeta-Secret" not in text
        assert "cisco123" not in text and "vpnclient1pw" not in text
    dumped = lab.spec.model_dump(mode="json", by_alias=True)
    steps = dumped["scenarios"]["rotate"]["steps"]
    assert steps[0]["set"]["value"] == MASK and steps[1]["set"]["value"] == MASK
    assert steps[2]["set"]["value"] == 11  # not a secret: shown
    # The model itself keeps the value: the test runner needs it.
    assert lab.spec.scenarios["rotate"].steps[0].set.value == "Zeta-Secret-9"


def test_the_graph_shows_no_secret() -> None:
    lab = load_lab_text(SEED.read_text())
    for render in (graph.to_dot, graph.to_mermaid):
        text = render(lab)
        assert "cisco123" not in text and "vpnclient1pw" not in text


def test_redact_replaces_every_secret_the_process_has_seen() -> None:
    secret = "Quoted'Psk\\x"  # repr() escapes the backslash: both forms are redacted
    load_lab_text(SEED.read_text().replace("psk: cisco123", 'psk: "Quoted\'Psk\\\\x"'))
    message = f"failed with psk {secret}, in a dict {{'psk': {secret!r}}} and cisco1234"
    assert redact(message) == f"failed with psk {MASK}, in a dict {{'psk': \"{MASK}\"}} and {MASK}4"
    remember_secret("abc")  # too short to redact in free text
    assert redact("abc") == "abc"
    remember_secret("**********")  # a mask from a dumped model is not a secret
    assert redact("**********") == "**********"
