"""Cisco IKE fragments as an independent dissector sees them: tshark reads our fragments
(payload 132: fragment ID, number, last flag) and reassembles the message we fragmented."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labctl.ike.events import IkeFragments
from tests.integration.ike_support.pcap import udp_packet, write_pcap
from tests.integration.ike_support.session import tshark
from tests.unit.ike.builders import connect
from tests.unit.ike.test_ike_fragments import _fragmenting_lab

pytestmark = pytest.mark.integration


def test_tshark_dissects_and_reassembles_our_fragments(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.fail("tshark not found: apt-get install tshark")
    lab = _fragmenting_lab(client_fragments=True)
    connect(lab)
    (sent,) = [e for e in lab.events_of("server", IkeFragments) if e.sent]
    packets = []
    for t, f in lab.wire_view():
        payload = (bytes(4) + f.data) if f.marker else f.data
        packets.append((t, udp_packet(f.src, f.dst, payload)))
    pcap = tmp_path / "fragments.pcap"
    write_pcap(pcap, packets)
    fields = tshark(
        "-r", str(pcap), "-Y", "isakmp.frag.seq", "-T", "fields",
        "-e", "isakmp.frag.seq", "-e", "isakmp.frag.last", "-e", "isakmp.frag.packetid",
    )  # fmt: skip
    rows = [line.split("\t") for line in fields.splitlines()]
    assert [r[0] for r in rows] == [str(n) for n in range(1, sent.fragments + 1)]
    assert [r[1] for r in rows] == ["0"] * (sent.fragments - 1) + ["1"]
    assert len({r[2] for r in rows}) == 1  # one fragment ID
    whole = tshark("-r", str(pcap), "-Y", "isakmp.reassembled.length", "-V")
    assert f"[Reassembled ISAKMP length: {sent.size}]" in whole
    for payload in ("Security Association (1)", "Key Exchange (4)", "Hash (8)"):
        assert f"Payload: {payload}" in whole
    assert tshark("-r", str(pcap), "-Y", "_ws.malformed || _ws.expert.severity >= error") == ""
