"""What a quick mode yields: the ESP SA pair, keyed per direction from SKEYID_d, the
nonces and the optional PFS secret (RFC 2409 section 5.5), and the event that hands it to
the data plane."""

from __future__ import annotations

from ipaddress import IPv4Network

from ..config import Phase2Proposal
from ..constants import ProtocolId
from ..crypto import ESP_INTEGRITY, esp_cipher
from ..encapsulation import Encapsulation
from ..events import ChildSaEstablished
from ..keys import keymat
from ..proposals import EspOffer
from ..records import frozen
from ..sa import ChildSa, IkeSa


def make_child(
    sa: IkeSa,
    *,
    message_id: int,
    my_spi: bytes,
    peer_spi: bytes,
    offer: EspOffer,
    policy: Phase2Proposal,
    ni_b: bytes,
    nr_b: bytes,
    gqm: bytes | None,
    local_ts: IPv4Network,
    remote_ts: IPv4Network,
    lifetime: int,
    lifetime_kb: int | None,
    now: float,
) -> ChildSa:
    """The ESP SA pair a quick mode negotiated, keyed per direction (RFC 2409 5.5)."""
    assert sa.keys is not None
    cipher = esp_cipher(offer.transform, offer.key_bits)
    integ = ESP_INTEGRITY[offer.auth]
    need = cipher.key_len + integ.key_len
    k_in = keymat(sa.hash_id, sa.keyed.prf_d, ProtocolId.ESP, my_spi, ni_b, nr_b, need, gqm)
    k_out = keymat(sa.hash_id, sa.keyed.prf_d, ProtocolId.ESP, peer_spi, ni_b, nr_b, need, gqm)
    encap = Encapsulation.negotiated(
        offer.encapsulation,
        tcp=sa.tcp,
        cisco_udp=sa.cisco_udp_port is not None,
        non_ike=sa.natt is not None and not sa.natt.floats,
    )
    return ChildSa(
        inbound_spi=int.from_bytes(my_spi, "big"),
        outbound_spi=int.from_bytes(peer_spi, "big"),
        message_id=message_id,
        encryption=cipher.name,
        integrity=integ.name,
        encapsulation=encap,
        local_ts=local_ts,
        remote_ts=remote_ts,
        lifetime=lifetime,
        lifetime_kb=lifetime_kb,
        established=now,
        expires_at=now + lifetime,
        rekey_at=None,
        pfs_group=offer.pfs_group,
        proposal=policy,
        enc_key_in=k_in[: cipher.key_len],
        auth_key_in=k_in[cipher.key_len :],
        enc_key_out=k_out[: cipher.key_len],
        auth_key_out=k_out[cipher.key_len :],
    )


def child_event(
    sa: IkeSa, child: ChildSa, rekey_of: int | None, *, started_by_peer: bool = False
) -> ChildSaEstablished:
    if child.encapsulation is Encapsulation.CISCO_UDP:
        udp_port, local_port = sa.cisco_udp_port, sa.cisco_udp_port
    elif child.encapsulation is not Encapsulation.TUNNEL:  # NAT-T or the TCP connection
        udp_port, local_port = sa.remote[1], sa.local[1]
    else:
        udp_port = local_port = None
    # every field, filled in one step (records.frozen): a 23-field frozen __init__ is ~190
    # bytecodes of object.__setattr__ calls; two per session
    return frozen(
        ChildSaEstablished,
        {
            "handle": sa.handle,
            "message_id": child.message_id,
            "inbound_spi": child.inbound_spi,
            "outbound_spi": child.outbound_spi,
            "encryption": child.encryption,
            "integrity": child.integrity,
            "encapsulation": child.encapsulation,
            "udp_port": udp_port,
            "local_port": local_port,
            "local_ts": child.local_ts,
            "remote_ts": child.remote_ts,
            "lifetime_seconds": child.lifetime,
            "lifetime_kilobytes": child.lifetime_kb,
            "peer": sa.remote,
            "local": sa.local,
            "pfs_group": child.pfs_group,
            "rekey_of": rekey_of,
            "user": sa.user,
            "started_by_peer": started_by_peer,
            "enc_key_in": child.enc_key_in,
            "auth_key_in": child.auth_key_in,
            "enc_key_out": child.enc_key_out,
            "auth_key_out": child.auth_key_out,
        },
    )
