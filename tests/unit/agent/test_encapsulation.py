"""One encapsulation type for the engine and the data plane: every value the engine reports
has a socket, the data plane's own names still parse, and anything else is an error --
never quietly plain ESP."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labctl.agent.childsa import encap_of
from labctl.agent.dataplane import Encap
from labctl.ike import ChildSaEstablished
from labctl.ike.encapsulation import Encapsulation

SOCKETS = {
    "tunnel": (Encap.ESP, "esp"),
    "udp-tunnel": (Encap.NATT, "udp-natt"),
    "udp-tunnel-draft": (Encap.NATT, "udp-natt"),
    "cisco-udp": (Encap.CISCO, "udp-cisco"),
    "udp-non-ike": (Encap.UDP_NON_IKE, "udp-non-ike"),
    "tcp": (Encap.TCP, "tcp"),
}


def _child(encapsulation) -> ChildSaEstablished:
    return SimpleNamespace(encapsulation=encapsulation)  # type: ignore[return-value]


@pytest.mark.parametrize("member", list(Encapsulation))
def test_every_engine_encapsulation_has_its_socket(member: Encapsulation) -> None:
    socket, name = SOCKETS[member.value]
    assert encap_of(_child(member)) is socket
    assert member.socket_name == name
    assert Encap(name) is socket  # the data plane's names parse to the same members


def test_nat_t_draft_00_01_esp_rides_the_ike_socket_not_the_natt_one() -> None:
    """Drafts 00/01 put ESP on UDP 500 behind the non-IKE marker: its own socket (the IKE
    one), never 4500's and never plain ESP."""
    assert encap_of(_child(Encapsulation.UDP_NON_IKE)) is Encap.UDP_NON_IKE
    assert Encap.UDP_NON_IKE.socket_name == "udp-non-ike"


@pytest.mark.parametrize("value", ["udp-tunnel-v2", "transport", "", "ESP"])
def test_an_unknown_encapsulation_is_an_error_not_plain_esp(value: str) -> None:
    with pytest.raises(ValueError, match="not a valid Encapsulation"):
        encap_of(_child(value))
