"""LAN-to-LAN: a branch (Initiator with local networks) and the concentrator (Responder
with a LAN-to-LAN entry) in process: main mode PSK chosen by the peer's address, quick
mode with network-to-network selectors, NAT-T by the entry's own switch, DPD, rekeys."""

from __future__ import annotations

from ipaddress import IPv4Network

from labctl.ike import (
    ChildSaDeleted,
    ChildSaEstablished,
    ExchangeFailed,
    Initiator,
    InitiatorConfig,
    LanToLanPolicy,
    PacketDropped,
    PeerDead,
    Phase1Deleted,
    Phase1Established,
    Responder,
    ResponderPolicy,
    SimpleHooks,
    decode_message,
)
from labctl.ike.codec import IdPayload
from labctl.ike.config import NattMode, Phase1Proposal, Phase2Proposal
from labctl.ike.constants import (
    AuthMethod,
    EspAuth,
    EspTransform,
    ExchangeType,
    IdType,
    P1Encryption,
    P1Hash,
)
from tests.unit.ike.builders import assert_keys_mirror, child_pairs
from tests.unit.ike.harness import Lab

HQ_LAN = IPv4Network("192.168.2.0/24")
BRANCH_LAN = IPv4Network("10.20.0.0/24")
PSK = b"l2l-secret"
P1 = (Phase1Proposal(P1Encryption.TRIPLE_DES_CBC, None, P1Hash.MD5, 2, AuthMethod.PSK, 3600),)
P2 = (Phase2Proposal(EspTransform.TRIPLE_DES, None, EspAuth.HMAC_MD5),)


def make_l2l_lab(
    *,
    natt: bool = True,
    nat: bool = True,
    psk: bytes = PSK,
    branch_lans: tuple[IPv4Network, ...] = (BRANCH_LAN,),
    **entry,
) -> Lab:
    fields = {
        "name": "branch",
        "peer": "171.69.89.78" if nat else "10.10.10.2",
        "psk": PSK,
        "local_networks": (HQ_LAN,),
        "remote_networks": branch_lans,
        "phase1": P1,
        "phase2": P2,
        "natt_enabled": natt,
        "ipsec_lifetime": 600,
        "ike_lifetime": 3600,
        **entry,
    }
    policy = ResponderPolicy(groups={}, lan_to_lan=(LanToLanPolicy(**fields),), dpd_idle=30.0)
    lab = Lab(Responder(policy, SimpleHooks({}, None)), nat=nat)
    config = InitiatorConfig(
        group="branch",
        psk=psk,
        exchange="main",
        id_type=IdType.IPV4_ADDR,
        phase1=P1,
        phase2=P2,
        modecfg="none",
        local_networks=branch_lans,
        remote_networks=(HQ_LAN,),
        dpd_idle=30.0,
        dpd_retry=2.0,
        dpd_max_retries=2,
    )
    lab.add_client("branch", Initiator(config), "10.10.10.2")
    return lab


def _one(lab: Lab, who: str, cls: type):
    found = lab.events_of(who, cls)
    assert len(found) == 1, (cls.__name__, found)
    return found[0]


def test_l2l_behind_pat_with_natt() -> None:
    lab = make_l2l_lab()
    lab.start("branch")
    lab.run(5)
    sp1 = _one(lab, "server", Phase1Established)
    assert sp1.mode == "main" and sp1.lan_to_lan == "branch" and not sp1.xauth_pending
    assert sp1.algorithms.auth_method == "psk"
    assert sp1.nat.remote_behind_nat and sp1.nat.floated and sp1.peer == ("171.69.89.78", 4500)
    ((c, s),) = child_pairs(lab, "branch")
    assert_keys_mirror(c, s)
    assert (s.remote_ts, s.local_ts) == (BRANCH_LAN, HQ_LAN)
    assert (c.local_ts, c.remote_ts) == (BRANCH_LAN, HQ_LAN)
    assert c.encapsulation == s.encapsulation == "udp-tunnel"
    assert s.lifetime_seconds == 600  # the entry's lifetime, told by RESPONDER-LIFETIME
    assert not lab.events_of("server", PacketDropped)


def test_network_ids_are_built_as_subnets() -> None:
    assert IdPayload.for_network(BRANCH_LAN).id_type == IdType.IPV4_ADDR_SUBNET
    assert IdPayload.for_network(BRANCH_LAN).as_network() == BRANCH_LAN


def test_l2l_natt_switch_off_gives_plain_esp() -> None:
    lab = make_l2l_lab(natt=False)
    lab.start("branch")
    lab.run(5)
    sp1 = _one(lab, "server", Phase1Established)
    assert sp1.nat.natt_version is None and not sp1.nat.floated
    assert sp1.peer == ("171.69.89.78", 500)
    ((c, s),) = child_pairs(lab, "branch")
    assert c.encapsulation == s.encapsulation == "tunnel"
    # main mode never left port 500 (no NAT-D, no float)
    assert all(f.dst[1] == 500 for f in lab.capture)


def test_l2l_natt_not_used_without_nat() -> None:
    lab = make_l2l_lab(nat=False)
    lab.start("branch")
    lab.run(5)
    sp1 = _one(lab, "server", Phase1Established)
    assert sp1.nat.natt_version is not None and not sp1.nat.remote_behind_nat
    ((c, _),) = child_pairs(lab, "branch")
    assert c.encapsulation == "tunnel"


def test_unknown_peer_address_is_refused() -> None:
    lab = make_l2l_lab(peer="171.69.89.99")
    lab.start("branch")
    lab.run(5)
    assert not lab.events_of("server", Phase1Established)
    refused = lab.events_of("server", ExchangeFailed)
    assert refused and refused[0].reason == "main mode not enabled"
    assert lab.responder.stats["phase1_rejected"] >= 1


def test_wrong_psk_fails_phase1() -> None:
    lab = make_l2l_lab(psk=b"not-the-key")
    lab.start("branch")
    lab.run(40)
    assert not lab.events_of("server", Phase1Established)
    drops = [e.reason for e in lab.events_of("server", PacketDropped)]
    assert drops, "message 5 under the wrong key is dropped"
    assert not child_pairs(lab, "branch")


def test_selectors_outside_the_lists_are_refused() -> None:
    lab = make_l2l_lab(remote_networks=(IPv4Network("10.99.0.0/24"),))
    lab.start("branch")
    lab.run(5)
    assert lab.events_of("server", Phase1Established)
    assert not lab.events_of("server", ChildSaEstablished)
    failed = [e for e in lab.events_of("server", ExchangeFailed) if e.stage == "quick"]
    assert failed and "outside its network lists" in failed[0].reason
    assert any(e.stage == "quick" for e in lab.events_of("branch", ExchangeFailed))


def test_remote_access_client_from_the_peer_address_gets_no_group() -> None:
    """Aggressive mode from the peer's address is not the LAN-to-LAN entry's."""
    lab = make_l2l_lab()
    config = InitiatorConfig(group="branch", psk=PSK, phase1=P1, phase2=P2, modecfg="none")
    lab.add_client("ra", Initiator(config), "10.10.10.3")
    lab.start("ra")
    lab.run(5)
    assert not lab.events_of("server", Phase1Established)
    (failed,) = lab.events_of("server", ExchangeFailed)
    assert failed.reason == "unknown group KEY_ID:branch"  # refused, not merely unreached


def test_child_and_phase1_rekeys_keep_the_tunnel() -> None:
    lab = make_l2l_lab()
    lab.start("branch")
    lab.run(5)
    first = _one(lab, "server", Phase1Established)
    lab.run(600)  # past the child's 90 % mark (540 s): a new quick mode, same selectors
    rekeyed = [e for e in lab.events_of("server", ChildSaEstablished) if e.rekey_of is not None]
    assert rekeyed and rekeyed[0].remote_ts == BRANCH_LAN
    lab.run(3300)  # past the phase-1 90 % mark (3240 s): a new main mode replaces it
    established = lab.events_of("server", Phase1Established)
    assert len(established) == 2 and established[1].replaces == first.handle
    gone = lab.events_of("server", Phase1Deleted)
    assert gone and gone[0].handle == first.handle and gone[0].replaced_by is not None
    # children moved over, never deleted for the phase-1 rekey
    assert not [e for e in lab.events_of("server", ChildSaDeleted) if e.reason == "phase1-gone"]
    assert lab.responder.sessions()[0].children


def test_dpd_finds_a_dead_branch() -> None:
    lab = make_l2l_lab()
    lab.start("branch")
    lab.run(5)
    lab.drop = lambda f: True  # the branch's line goes dead
    lab.run(120)
    assert lab.events_of("server", PeerDead)
    assert lab.events_of("branch", PeerDead)
    assert not lab.responder.sessions()


def test_main_mode_identity_is_the_branch_address() -> None:
    lab = make_l2l_lab(nat=False)
    lab.start("branch")
    lab.run(5)
    first = decode_message(lab.capture[0].data)
    assert first.exchange == ExchangeType.MAIN
    assert _one(lab, "server", Phase1Established).peer_id.startswith("10.10.10.2")


def test_initiator_without_natt_offers_none() -> None:
    lab = make_l2l_lab()
    lab.clients["branch"].engine = Initiator(
        InitiatorConfig(
            group="branch",
            psk=PSK,
            exchange="main",
            id_type=IdType.IPV4_ADDR,
            phase1=P1,
            phase2=P2,
            modecfg="none",
            natt=NattMode.NONE,
            local_networks=(BRANCH_LAN,),
            remote_networks=(HQ_LAN,),
        )
    )
    lab.start("branch")
    lab.run(5)
    assert _one(lab, "server", Phase1Established).nat.natt_version is None
