"""`labctl test --matrix`: combinations of implementations, and the not-applicable ones
reported apart (never run, never failed) in the summary and the JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from labctl.checks import CaseResult
from labctl.checks.junit import summary_table, write_junit
from labctl.checks.matrix import variants
from labctl.kinds import implementation_of

ROOT = Path(__file__).resolve().parents[3]


def by_label(name: str) -> dict:
    return {v.label: v for v in variants(ROOT / "topologies" / name)}


def test_every_gateway_and_client_combination_is_listed() -> None:
    found = by_label("interop-strongswan-vpnc.yaml")
    assert list(found) == [
        f"gw={gw} client={client}"
        for gw in ("ours", "strongswan")
        for client in ("ours", "strongswan", "vpnc")
    ]
    lab = found["gw=strongswan client=vpnc"].lab
    assert lab is not None
    chosen = {implementation_of(node).name for node in lab.nodes.values()}
    assert {"strongswan", "vpnc"} <= chosen and "ours" not in chosen


def test_a_combination_that_cannot_be_expressed_is_not_applicable_with_the_reason() -> None:
    found = by_label("ipsec-over-tcp.yaml")
    assert found["gw=ours client=ours"].lab is not None
    gateway = found["gw=strongswan client=ours"]
    assert gateway.lab is None
    assert "ipsec_over_tcp: implementation strongswan cannot express" in gateway.not_applicable
    client = found["gw=ours client=vpnc"]
    assert client.lab is None and "implementation vpnc" in client.not_applicable


def test_not_applicable_is_counted_apart_in_the_summary_and_junit(tmp_path: Path) -> None:
    results = [
        CaseResult("t/x.yaml", "expect [gw=ours client=ours]", True, 3.0),
        CaseResult(
            "t/x.yaml",
            "expect [gw=strongswan client=ours]",
            True,
            0.0,
            not_applicable="ipsec-over-tcp on strongswan",
        ),
    ]
    text = summary_table(results)
    assert "1/1 passed" in text and "1 not applicable" in text
    assert "n/a" in text and "ipsec-over-tcp on strongswan" in text
    write_junit(results, tmp_path / "junit.xml")
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.get("skipped") == "1" and root.get("failures") == "0"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    skipped = cases["expect [gw=strongswan client=ours]"].find("skipped")
    assert skipped is not None and "not applicable" in skipped.get("message", "")
    assert cases["expect [gw=ours client=ours]"].find("skipped") is None


def test_when_applies_a_step_only_to_the_implementations_it_names() -> None:
    from labctl.checks.steps import not_applying

    found = by_label("rekey-same-ports.yaml")
    ours = found["gw=ours client=ours"].lab
    vpnc = found["gw=strongswan client=vpnc"].lab
    assert ours is not None and vpnc is not None
    assert not_applying({"vpn3000": "ours"}, ours) is None
    assert not_applying({"vpn3000": ["ours", "strongswan"]}, vpnc) is None
    reason = not_applying({"vpn3000": "strongswan", "client1": ["ours", "strongswan"]}, vpnc)
    assert reason == "client1 runs vpnc; this is for ours or strongswan"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


def test_a_kind_inherited_from_a_group_or_the_defaults_is_varied_too(tmp_path: Path) -> None:
    data = (ROOT / "topologies" / "nat-t-two-clients.yaml").read_text()
    grouped = data.replace(
        "  nodes:\n", "  groups:\n    clients: {kind: vpn-client}\n  nodes:\n", 1
    ).replace("      kind: vpn-client\n", "      group: clients\n")
    assert "kind: vpn-client\n      interfaces" not in grouped
    found = {v.label: v for v in variants(_write(tmp_path, grouped))}
    lab = found["gw=ours client=vpnc"].lab
    assert lab is not None
    assert implementation_of(lab.node("client1")).name == "vpnc"


def test_case_names_come_from_the_file_even_when_it_is_invalid_as_written(
    tmp_path: Path,
) -> None:
    from labctl.checks.matrix import case_names

    text = (ROOT / "topologies" / "rekey-same-ports.yaml").read_text()
    # valid only where the gateway is ours: strongSwan cannot express nat-t off...
    broken = text.replace("nat-transparency: {nat-t: true}", "nat-transparency: {nat-t: false}")
    # ...and as written the file names an implementation the kind lacks
    broken = broken.replace(
        "    vpn3000:\n      kind: concentrator\n",
        "    vpn3000:\n      kind: concentrator\n      implementation: vpnc\n",
    )
    path = _write(tmp_path, broken)
    assert case_names(path) == ["rekey-under-traffic"]
    labels = {v.label: v for v in variants(path)}
    assert labels["gw=ours client=ours"].lab is not None
    assert labels["gw=strongswan client=ours"].lab is None


def _cases(name: str, label: str) -> dict:
    from labctl.checks.runner import TopologyRun
    from labctl.progress import Progress

    variant = by_label(name)[label]
    assert variant.lab is not None
    run = TopologyRun(
        ROOT / "topologies" / name, None, Path("/nonexistent"), Progress(quiet=True),
        lab=variant.lab, label=label,
    )  # fmt: skip
    return {case.name: case for case in run.cases()}


def test_a_scenario_declares_where_it_is_not_applicable_and_why() -> None:
    """`not-applicable: [{when, reason}]` on a scenario: the matching combinations are
    reported n/a with the reason (never run, never failed); the others run."""
    flush = "flush-conntrack [gw=strongswan client=ours]"
    case = _cases("keepalive-vs-pat-timeout.yaml", "gw=strongswan client=ours")[flush]
    assert case.not_applicable is not None and "kernel-libipsec" in case.not_applicable
    ours = _cases("keepalive-vs-pat-timeout.yaml", "gw=ours client=strongswan")
    assert all(c.not_applicable is None for c in ours.values())
    rekey = _cases("gateway-starts-rekey.yaml", "gw=strongswan client=vpnc")
    (reason,) = [c.not_applicable for c in rekey.values()]
    assert reason is not None and "nonce" in reason
    assert all(
        c.not_applicable is None
        for c in _cases("gateway-starts-rekey.yaml", "gw=ours client=vpnc").values()
    )


def test_a_not_applicable_case_is_reported_without_a_lab(tmp_path: Path) -> None:
    from labctl.checks.runner import TopologyRun
    from labctl.progress import Progress

    label = "gw=strongswan client=vpnc"
    variant = by_label("rekey-same-ports.yaml")[label]
    # no runtime: a case that tried to bring a lab up would fail on it
    run = TopologyRun(
        ROOT / "topologies" / "rekey-same-ports.yaml", None, tmp_path, Progress(quiet=True),
        lab=variant.lab, label=label,
    )  # fmt: skip
    (result,) = run.run()
    assert result.ok and result.not_applicable is not None and result.seconds == 0.0
    assert "n/a" in summary_table([result])


def test_a_not_applicable_entry_naming_an_unknown_node_or_implementation_is_refused() -> None:
    import pytest

    from labctl.topology import TopologyError, load_lab_text

    text = (ROOT / "topologies" / "gateway-starts-rekey.yaml").read_text()
    for wrong, message in (
        ("{vpn3000: strongswan, client1: vpnc}", "{vpn3000: strongswan, clientX: vpnc}"),
        ("{vpn3000: strongswan, client1: vpnc}", "{vpn3000: strongswam, client1: vpnc}"),
    ):
        with pytest.raises(TopologyError) as error:
            load_lab_text(text.replace(wrong, message), ROOT / "topologies" / "t.yaml")
        assert any("not-applicable" in str(i.field) for i in error.value.issues)
