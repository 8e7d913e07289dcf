"""NAT-D in aggressive mode's message 3 after the initiator floated to 4500 (issue 12).

Our initiator and vpnc hash message 3's NAT-D over the port-500 endpoints of messages 1
and 2; strongSwan's charon hashes them over the ports it sends message 3 from and to
(4500). Before this fix the responder compared them with the port-500 endpoints only and
concluded "this end IS behind a NAT device" for a charon client behind a PAT. Either pair
now matches; a real NAT is still found (the client's own address never matches)."""

from __future__ import annotations

import pytest

from labctl.ike import Phase1Established
from labctl.ike.constants import NATT_PORT
from labctl.ike.exchanges import aggressive
from tests.unit.ike.builders import add_client, connect, make_lab


@pytest.fixture
def charon_message_3(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """The initiator hashes message 3's NAT-D over 4500 on both ends, as charon does. Only
    the initiator's message-3 call passes ``fake_nat``; message 2's NAT-D stay as they are."""
    original = aggressive.natd_payloads
    hashed: list[tuple] = []

    def charon(sa, peer, me, **kw):
        if "fake_nat" not in kw:
            return original(sa, peer, me, **kw)
        floated = ((peer[0], NATT_PORT), (me[0], NATT_PORT))
        hashed.append(floated)
        return original(sa, *floated, **kw)

    monkeypatch.setattr(aggressive, "natd_payloads", charon)
    return hashed


@pytest.mark.parametrize("nat", [True, False])
def test_message_3_natd_over_the_floated_ports_is_not_a_nat_at_the_gateway(
    charon_message_3: list, nat: bool
) -> None:
    lab = make_lab(nat=nat)
    add_client(lab, natt="force" if not nat else "natt")
    connect(lab)
    assert charon_message_3, "the initiator's message 3 was not built"
    (p1,) = lab.events_of("server", Phase1Established)
    assert p1.nat.floated
    assert p1.nat.local_behind_nat is False  # the old code said True here
    # behind the PAT the client's own address never matches (without one, "force" makes
    # the client claim a NAT): the client's side is still found behind one
    assert p1.nat.remote_behind_nat is True


def test_a_nat_in_front_of_the_gateway_is_still_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """The floated pair is accepted only as itself: a message-3 NAT-D of some other address
    of ours still says we are behind a NAT."""
    original = aggressive.natd_payloads

    def elsewhere(sa, peer, me, **kw):
        if "fake_nat" not in kw:
            return original(sa, peer, me, **kw)
        return original(sa, ("198.51.100.7", NATT_PORT), me, **kw)

    monkeypatch.setattr(aggressive, "natd_payloads", elsewhere)
    lab = make_lab(nat=True)
    add_client(lab)
    connect(lab)
    (p1,) = lab.events_of("server", Phase1Established)
    assert p1.nat.local_behind_nat is True
