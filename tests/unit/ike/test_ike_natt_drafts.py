"""NAT-T drafts 00 and 01 (old clients): their vendor IDs, negotiated only where listed;
no float to 4500 (IKE stays on 500), NAT-D as payload 130, quick mode's UDP encapsulation
61443, and ESP on the IKE port (the engine's "udp-non-ike", which the agents' data plane
carries on their IKE socket: tests/unit/agent/test_nat_t_drafts_dataplane.py)."""

from __future__ import annotations

import pytest

from labctl.agent.childsa import encap_of
from labctl.ike import ChildSaEstablished, NattVersion, Phase1Established, decode_header
from labctl.ike.codec import Message, decode_message
from labctl.ike.constants import ExchangeType, PayloadType
from labctl.ike.vendor import NATT_VIDS, classify_vendor_ids
from tests.unit.ike.builders import add_client, connect, make_lab


def test_draft_00_and_01_vendor_ids() -> None:
    # MD5("draft-ietf-ipsec-nat-t-ike-00") / "-01", as vpnc and strongSwan list them
    assert NATT_VIDS[NattVersion.DRAFT_00].hex() == "4485152d18b6bbcd0be8a8469579ddcc"
    assert NATT_VIDS[NattVersion.DRAFT_01].hex() == "16f6ca16e4a4066d83821a0f0aeaa862"
    info = classify_vendor_ids([NATT_VIDS[NattVersion.DRAFT_01], NATT_VIDS[NattVersion.DRAFT_00]])
    assert info.natt_versions == (NattVersion.DRAFT_01, NattVersion.DRAFT_00) and not info.unknown
    assert not NattVersion.DRAFT_00.floats and NattVersion.DRAFT_02.floats


def test_by_default_a_draft_01_client_gets_no_nat_t() -> None:
    lab = make_lab()
    add_client(lab, natt_versions=(NattVersion.DRAFT_01,))
    connect(lab)
    (p1,) = lab.events_of("server", Phase1Established)
    assert p1.nat.natt_version is None  # not in the gateway's list: plain ESP


@pytest.mark.parametrize("version", [NattVersion.DRAFT_00, NattVersion.DRAFT_01])
def test_a_draft_00_01_session_stays_on_port_500(version) -> None:
    lab = make_lab(natt_versions=(NattVersion.RFC3947, version))
    add_client(lab, natt_versions=(version,))
    connect(lab)
    (p1,) = lab.events_of("server", Phase1Established)
    assert p1.nat.natt_version == version.value and p1.nat.remote_behind_nat
    assert not p1.nat.floated and p1.peer[1] == 500
    assert {f.dst[1] for f in lab.capture} == {500} and not any(f.marker for f in lab.capture)
    plain = [decode_message(f.data) for f in lab.capture if not decode_header(f.data).encrypted]
    natd = [
        p.payload_type
        for m in plain
        if isinstance(m, Message) and m.exchange == ExchangeType.AGGRESSIVE
        for p in m.payloads
        if p.payload_type in (PayloadType.NAT_D, PayloadType.NAT_D_DRAFT)
    ]
    assert natd and set(natd) == {PayloadType.NAT_D_DRAFT}  # 130
    (child,) = lab.events_of("server", ChildSaEstablished)
    assert child.encapsulation == "udp-non-ike" and child.udp_port == 500
    (client_child,) = lab.events_of("c1", ChildSaEstablished)
    assert client_child.encapsulation == "udp-non-ike"
    assert encap_of(child) == "udp-non-ike"  # the agents' IKE socket, never plain ESP
