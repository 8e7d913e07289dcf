"""Initiator against responder, in process: every exchange and its variants."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from labctl.ike import (
    ChildSaEstablished,
    ExchangeFailed,
    ModeConfig,
    ModeConfigApplied,
    ModeConfigReceived,
    NattVersion,
    PacketDropped,
    PeerEndpointChanged,
    Phase1Established,
    Phase1Proposal,
    Phase2Proposal,
    XauthResult,
    decode_header,
    decode_message,
)
from labctl.ike.codec import Message
from labctl.ike.config import seed_phase1, seed_phase2
from labctl.ike.constants import (
    AuthMethod,
    EspAuth,
    EspTransform,
    ExchangeType,
    P1Encryption,
    P1Hash,
    PayloadType,
)
from tests.unit.ike.builders import add_client, assert_keys_mirror, child_pairs, connect, make_lab


def exchange_of(data: bytes) -> int:
    return decode_header(data).exchange


def _only(lab, who, cls):
    found = lab.events_of(who, cls)
    assert len(found) == 1, (cls.__name__, found)
    return found[0]


def test_seed_session_through_pat() -> None:
    """Aggressive mode + XAUTH + Mode-Config + quick mode, client behind PAT (the seed)."""
    lab = make_lab(phase1=seed_phase1(), phase2=seed_phase2())
    # the seed's Cisco VPN Client: "IPsec over UDP (NAT / PAT)", which asks for 0x7005
    add_client(lab, phase1=seed_phase1(), phase2=seed_phase2(), natt="auto")
    connect(lab)
    cp1 = _only(lab, "c1", Phase1Established)
    sp1 = _only(lab, "server", Phase1Established)
    assert cp1.handle == sp1.handle
    assert (cp1.mode, cp1.role, sp1.role) == ("aggressive", "initiator", "responder")
    assert sp1.algorithms.encryption == "3des-cbc" and sp1.algorithms.hash == "md5"
    assert sp1.algorithms.dh_group == 2 and sp1.algorithms.auth_method == "xauth_init_psk"
    assert sp1.algorithms.lifetime == 86400
    # "this end IS behind NAT, remote end is NOT" from the client; the mirror on the server
    assert (cp1.nat.local_behind_nat, cp1.nat.remote_behind_nat) == (True, False)
    assert (sp1.nat.local_behind_nat, sp1.nat.remote_behind_nat) == (False, True)
    assert cp1.nat.floated and sp1.nat.floated and sp1.peer == ("171.69.89.78", 4500)
    assert "this end IS behind a NAT device" in cp1.nat.describe()
    assert sp1.peer_vendor.unity and sp1.peer_vendor.xauth
    assert cp1.peer_vendor.vpn3000 == (3, 6) and cp1.peer_vendor.fragmentation
    assert _only(lab, "server", XauthResult).success and _only(lab, "c1", XauthResult).success
    got = _only(lab, "c1", ModeConfigReceived).config
    gave = _only(lab, "server", ModeConfigApplied).config
    assert got.address == gave.address == IPv4Address("40.1.1.1")
    assert got.udp_encap_port == 4500  # seed client log line 78
    assert got.app_version.startswith("Cisco Systems, Inc./VPN 3000 Concentrator")
    ((c, s),) = child_pairs(lab, "c1")
    assert_keys_mirror(c, s)
    assert c.encapsulation == "udp-tunnel" and c.encryption == "3des-cbc"
    assert c.integrity == "hmac-md5-96" and len(c.enc_key_out) == 24
    assert s.remote_ts == IPv4Network("40.1.1.1/32") and s.local_ts == IPv4Network("0.0.0.0/0")
    assert s.udp_port == 4500 and s.peer == ("171.69.89.78", 4500)
    assert c.lifetime_seconds == 28800
    assert not lab.events_of("server", PacketDropped) and not lab.events_of("c1", PacketDropped)


def test_wire_follows_the_seed_message_sequence() -> None:
    lab = make_lab()
    # offer vpnc's 2147483 s: the concentrator answers with RESPONDER-LIFETIME 86400
    add_client(
        lab, phase1=(Phase1Proposal(lifetime=2147483),), phase2=(Phase2Proposal(lifetime=2147483),)
    )
    connect(lab)
    kinds = []
    for f in lab.capture:
        m = decode_message(f.data)
        header = m if isinstance(m, Message) else m.header
        kinds.append((f.sender, header.exchange, f.dst[1]))
    ex = [(who, e) for who, e, _ in kinds]
    assert ex[:3] == [("c1", 4), ("server", 4), ("c1", 4)]
    assert [k[2] for k in kinds[:3]] == [500, 500, 4500]  # message 3 floats to 4500
    assert ex[3:7] == [("server", 6), ("c1", 6), ("server", 6), ("c1", 6)]  # XAUTH
    assert ex[7:9] == [("c1", 6), ("server", 6)]  # Mode-Config pull
    assert ("server", ExchangeType.INFORMATIONAL) in ex[9:]  # RESPONDER-LIFETIME 86400
    assert ex[-3:] == [("c1", 32), ("server", 32), ("c1", 32)]
    msg2 = decode_message(lab.capture[1].data)
    types = [p.payload_type for p in msg2.payloads]
    assert types[:5] == [
        PayloadType.SA,
        PayloadType.KE,
        PayloadType.NONCE,
        PayloadType.ID,
        PayloadType.HASH,
    ]
    assert types.index(PayloadType.NAT_D) > types.index(PayloadType.SA)
    assert types.count(PayloadType.NAT_D) == 2 and types.count(PayloadType.VID) == 6


@pytest.mark.parametrize(
    "enc,bits,hash_id,group",
    [
        (P1Encryption.TRIPLE_DES_CBC, None, P1Hash.MD5, 1),
        (P1Encryption.AES_CBC, 128, P1Hash.SHA1, 2),
        (P1Encryption.AES_CBC, 192, P1Hash.SHA2_256, 5),
        (P1Encryption.AES_CBC, 256, P1Hash.SHA1, 14),
        (P1Encryption.TRIPLE_DES_CBC, None, P1Hash.SHA2_256, 14),
    ],
)
def test_phase1_algorithms(enc, bits, hash_id, group) -> None:
    proposal = Phase1Proposal(enc, bits, hash_id, group)
    lab = make_lab(phase1=(proposal,))
    add_client(lab, phase1=(proposal,))
    connect(lab)
    sp1 = _only(lab, "server", Phase1Established)
    assert sp1.algorithms.dh_group == group
    assert sp1.algorithms.encryption_id == enc and sp1.algorithms.hash_id == hash_id
    assert _only(lab, "c1", Phase1Established).enc_key == sp1.enc_key
    ((c, s),) = child_pairs(lab, "c1")
    assert_keys_mirror(c, s)


@pytest.mark.parametrize(
    "transform,bits,auth,pfs",
    [
        (EspTransform.TRIPLE_DES, None, EspAuth.HMAC_MD5, None),
        (EspTransform.AES_CBC, 128, EspAuth.HMAC_SHA1, None),
        (EspTransform.AES_CBC, 256, EspAuth.HMAC_SHA2_256, 2),
        (EspTransform.AES_CBC, 192, EspAuth.HMAC_SHA1, 14),
    ],
)
def test_phase2_algorithms_and_pfs(transform, bits, auth, pfs) -> None:
    p2 = (Phase2Proposal(transform, bits, auth, pfs),)
    lab = make_lab(phase2=p2)
    add_client(lab, phase2=p2)
    connect(lab)
    ((c, s),) = child_pairs(lab, "c1")
    assert_keys_mirror(c, s)
    assert c.pfs_group == pfs
    expected = {EspAuth.HMAC_MD5: 16, EspAuth.HMAC_SHA1: 20, EspAuth.HMAC_SHA2_256: 32}[auth]
    assert len(c.auth_key_in) == expected
    if pfs:
        from labctl.ike.crypto import modp_length

        qm1 = next(
            f for f in lab.capture if f.sender == "c1" and exchange_of(f.data) == ExchangeType.QUICK
        )

        assert len(qm1.data) > 150 + modp_length(pfs)  # carries a KE payload


def test_responder_takes_first_acceptable_and_skips_junk() -> None:
    """vpnc offers Encryption=0 junk and DES; the responder skips them in the client's order."""
    from labctl.ike.codec import Attribute, Proposal, SaPayload, Transform
    from labctl.ike.proposals import choose_phase1, phase1_transform

    junk = Transform(1, 1, (Attribute(1, 0), Attribute(2, 2), Attribute(3, 65001), Attribute(4, 2)))
    des = Transform(2, 1, (Attribute(1, 1), Attribute(2, 2), Attribute(3, 65001), Attribute(4, 2)))
    aes = phase1_transform(3, Phase1Proposal(P1Encryption.AES_CBC, 128, P1Hash.SHA1, 2))
    tdes = phase1_transform(4, Phase1Proposal(P1Encryption.TRIPLE_DES_CBC, None, P1Hash.MD5, 2))
    sa = SaPayload((Proposal(0, 1, b"", (junk, des, tdes, aes)),))
    policy = (
        Phase1Proposal(P1Encryption.AES_CBC, 128, P1Hash.SHA1, 2),
        Phase1Proposal(P1Encryption.TRIPLE_DES_CBC, None, P1Hash.MD5, 2),
    )
    choice = choose_phase1(sa, policy)
    assert choice.transform is tdes and choice.proposal_number == 0


def test_main_mode_with_xauth() -> None:
    lab = make_lab(main_mode_group="ciscovpn")
    add_client(lab, exchange="main")
    connect(lab)
    sp1 = _only(lab, "server", Phase1Established)
    cp1 = _only(lab, "c1", Phase1Established)
    assert sp1.mode == cp1.mode == "main"
    assert sp1.nat.remote_behind_nat and cp1.nat.floated
    assert lab.events_of("c1", PeerEndpointChanged)
    ((c, s),) = child_pairs(lab, "c1")
    assert_keys_mirror(c, s)


def test_aggressive_psk_without_xauth() -> None:
    lab = make_lab(group={"xauth": False})
    add_client(lab, phase1=(Phase1Proposal(auth=AuthMethod.PSK),), user=None)
    connect(lab)
    sp1 = _only(lab, "server", Phase1Established)
    assert sp1.algorithms.auth_method == "psk" and not sp1.xauth_pending
    assert not lab.events_of("server", XauthResult)
    assert _only(lab, "c1", ModeConfigReceived).config.address == IPv4Address("40.1.1.1")
    ((c, s),) = child_pairs(lab, "c1")
    assert_keys_mirror(c, s)


def test_fqdn_identity() -> None:
    from labctl.ike.constants import IdType

    lab = make_lab()
    add_client(lab, id_type=IdType.FQDN)
    connect(lab)
    assert _only(lab, "server", Phase1Established).peer_id == "FQDN:ciscovpn"


def test_no_nat_stays_on_500_with_plain_tunnel() -> None:
    lab = make_lab(nat=False)
    add_client(lab)
    connect(lab)
    sp1 = _only(lab, "server", Phase1Established)
    assert not sp1.nat.local_behind_nat and not sp1.nat.remote_behind_nat
    assert not sp1.nat.floated and sp1.nat.natt_version == "rfc3947"
    assert {f.dst[1] for f in lab.capture} == {500}
    ((c, _s),) = child_pairs(lab, "c1")
    assert c.encapsulation == "tunnel" and c.udp_port is None
    got = _only(lab, "c1", ModeConfigReceived).config
    assert got.udp_encap_port is None


def test_force_natt_floats_without_nat() -> None:
    lab = make_lab(nat=False)
    add_client(lab, natt="force")
    connect(lab)
    sp1 = _only(lab, "server", Phase1Established)
    assert sp1.nat.remote_behind_nat and sp1.nat.floated
    ((c, _s),) = child_pairs(lab, "c1")
    assert c.encapsulation == "udp-tunnel"


def test_natt_disabled_ignores_client_natt() -> None:
    """The seed's trouble case: NAT transparency off on the concentrator."""
    lab = make_lab(natt_enabled=False)
    add_client(lab)
    connect(lab)
    sp1 = _only(lab, "server", Phase1Established)
    assert sp1.nat.natt_version is None and not sp1.nat.floated
    for f in lab.capture:
        m = decode_message(f.data)
        if isinstance(m, Message):
            types = {p.payload_type for p in m.payloads}
            assert not types & {PayloadType.NAT_D, PayloadType.NAT_D_DRAFT}
    assert {f.dst[1] for f in lab.capture} == {500}
    ((c, s),) = child_pairs(lab, "c1")
    assert c.encapsulation == s.encapsulation == "tunnel"


def test_draft_natt_uses_payload_130_and_mode_61443() -> None:
    lab = make_lab(natt_versions=(NattVersion.DRAFT_02N,))
    add_client(lab)
    connect(lab)
    sp1 = _only(lab, "server", Phase1Established)
    assert sp1.nat.natt_version == "draft-02n"
    msg2 = decode_message(lab.capture[1].data)
    assert PayloadType.NAT_D_DRAFT in [p.payload_type for p in msg2.payloads]
    ((c, s),) = child_pairs(lab, "c1")
    assert c.encapsulation == s.encapsulation == "udp-tunnel-draft"


def test_cisco_ipsec_over_udp() -> None:
    lab = make_lab(natt_enabled=False, cisco_udp_port=10000)
    add_client(lab, natt="cisco-udp")
    connect(lab)
    sp1 = _only(lab, "server", Phase1Established)
    assert not sp1.nat.floated and sp1.peer[1] == 500
    got = _only(lab, "c1", ModeConfigReceived).config
    assert got.udp_encap_port == 10000
    ((c, s),) = child_pairs(lab, "c1")
    assert c.encapsulation == s.encapsulation == "cisco-udp"
    assert c.udp_port == s.udp_port == 10000


def test_modecfg_push_style() -> None:
    lab = make_lab(modecfg_push=True)
    add_client(lab, modecfg="push")
    connect(lab)
    assert _only(lab, "server", ModeConfigApplied).style == "push"
    got = _only(lab, "c1", ModeConfigReceived)
    assert got.style == "push" and got.config.address == IPv4Address("40.1.1.1")
    assert child_pairs(lab, "c1")


def test_unity_attributes_reach_the_client() -> None:
    extra = ModeConfig(
        netmask=IPv4Address("255.255.255.0"),
        dns=(IPv4Address("192.168.2.53"), IPv4Address("192.168.2.54")),
        nbns=(IPv4Address("192.168.2.55"),),
        banner="Authorized users only",
        save_password=False,
        default_domain="lab.example",
        split_dns=("lab.example", "corp.example"),
        split_include=(IPv4Network("192.168.2.0/24"), IPv4Network("10.99.0.0/16")),
        pfs=False,
        backup_servers=("172.16.172.51",),
    )
    lab = make_lab(
        group={"mode_config": extra, "split_networks": extra.split_include},
        allowed_remote_networks=(),
    )
    add_client(lab, use_split_networks=True)
    connect(lab)
    got = _only(lab, "c1", ModeConfigReceived).config
    assert got.dns == extra.dns and got.nbns == extra.nbns and got.banner == extra.banner
    assert got.default_domain == "lab.example" and got.split_dns == extra.split_dns
    assert got.split_include == extra.split_include and got.save_password is False
    assert got.netmask == IPv4Address("255.255.255.255")  # the address hook's value wins
    # one quick mode per split network, several children under one phase 1
    pairs = child_pairs(lab, "c1")
    assert {c.remote_ts for c, _ in pairs} == set(extra.split_include)
    assert len({c.handle for c, _ in pairs}) == 1
    for c, s in pairs:
        assert_keys_mirror(c, s)


def test_add_child_and_refused_network() -> None:
    lab = make_lab(
        group={"split_networks": (IPv4Network("192.168.2.0/24"),)}, allowed_remote_networks=()
    )
    ini = add_client(lab, remote_networks=(IPv4Network("192.168.2.0/24"),))
    connect(lab)
    assert len(child_pairs(lab, "c1")) == 1
    lab.collect("c1", ini.add_child("192.168.2.128/25", lab.now))  # inside: allowed
    lab.run(2)
    assert len(child_pairs(lab, "c1")) == 2
    lab.collect("c1", ini.add_child("10.0.0.0/8", lab.now))  # not allowed
    lab.run(40)
    assert len(child_pairs(lab, "c1")) == 2
    (refused,) = lab.events_of("server", ExchangeFailed)
    assert "10.0.0.0/8 not allowed" in refused.reason and refused.notify == 18
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.stage == "quick" and failed.notify == 18


def test_responder_lifetime_notifies_shorten_client_lifetimes() -> None:
    lab = make_lab(ike_lifetime=3600, ipsec_lifetime=1200)
    ini = add_client(
        lab,
        phase1=(Phase1Proposal(lifetime=86400),),
        phase2=(Phase2Proposal(lifetime=28800),),
        auto_rekey=False,
    )
    connect(lab)
    assert ini.current.lifetime == 3600
    ((_c, s),) = child_pairs(lab, "c1")
    assert s.lifetime_seconds == 1200
    assert ini.children()[0].lifetime == 1200
    # 86400 fits no TV: the QM2 notify carries 1200 as TV, the phase-1 one 3600 as TV too
    infos = [
        f
        for f in lab.capture
        if f.sender == "server" and exchange_of(f.data) == ExchangeType.INFORMATIONAL
    ]
    assert len(infos) == 1


def test_many_clients_behind_one_pat() -> None:
    lab = make_lab(users={f"user{i}": f"pw{i}" for i in range(40)})
    for i in range(40):
        add_client(lab, f"c{i}", f"10.10.10.{i + 2}", user=f"user{i}", password=f"pw{i}".encode())
    connect(lab, duration=10)
    p1 = lab.events_of("server", Phase1Established)
    assert len(p1) == 40 and {p.peer[0] for p in p1} == {"171.69.89.78"}
    assert len({p.peer[1] for p in p1}) == 40
    addresses = {e.config.address for e in lab.events_of("server", ModeConfigApplied)}
    assert len(addresses) == 40
    assert len(lab.events_of("server", ChildSaEstablished)) == 40
    for i in range(40):
        ((c, s),) = child_pairs(lab, f"c{i}")
        assert_keys_mirror(c, s)


@pytest.mark.parametrize(
    ("natt_enabled", "cisco_udp_port", "expected"),
    [
        (True, 10000, "udp-tunnel"),  # the seed's order: NAT-T before IPsec over UDP
        (False, 10000, "cisco-udp"),  # NAT-T off: IPsec over UDP
        (False, None, "tunnel"),  # neither: plain ESP (the seed's "no data passes" case)
    ],
)
def test_auto_client_gets_the_concentrators_preferred_transport(
    natt_enabled: bool, cisco_udp_port: int | None, expected: str
) -> None:
    lab = make_lab(natt_enabled=natt_enabled, cisco_udp_port=cisco_udp_port)
    add_client(lab, natt="auto")
    connect(lab)
    ((c, s),) = child_pairs(lab, "c1")
    assert c.encapsulation == s.encapsulation == expected
    got = _only(lab, "c1", ModeConfigReceived).config
    assert got.udp_encap_port == {"udp-tunnel": 4500, "cisco-udp": 10000, "tunnel": None}[expected]


def test_a_modecfg_reply_carries_only_what_the_client_asked_for() -> None:
    """strongSwan logs a failure for each attribute it did not ask for: a NAT-T client that
    does not ask for 0x7005 or the version gets neither, though the gateway has both."""
    from labctl.ike.constants import CfgAttr
    from labctl.ike.modecfg import DEFAULT_REQUEST

    lab = make_lab(cisco_udp_port=10000)
    wanted = tuple(a for a in DEFAULT_REQUEST if a != CfgAttr.APPLICATION_VERSION)
    add_client(lab, natt="natt", modecfg_request=wanted)
    connect(lab)
    got = _only(lab, "c1", ModeConfigReceived).config
    assert got.address == IPv4Address("40.1.1.1")
    assert got.app_version is None and got.udp_encap_port is None and not got.unknown
    assert lab.events_of("c1", ChildSaEstablished)
