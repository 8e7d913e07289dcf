"""Life after set-up: DPD, keepalives, deletes, expiry, rekeys, INITIAL-CONTACT, NAT rebinding,
secrets hygiene, key export."""

from __future__ import annotations

from ipaddress import IPv4Address

from labctl.ike import (
    ChildSaDeleted,
    ChildSaEstablished,
    GroupPolicy,
    InitiatorConfig,
    ModeConfigApplied,
    PacketDropped,
    PeerDead,
    PeerEndpointChanged,
    Phase1Deleted,
    Phase1Established,
    Phase1Proposal,
    Phase1Rekeyed,
    Phase2Proposal,
    XauthRequest,
    XauthResult,
)
from labctl.ike.keyexport import esp_sa_line, esp_sa_lines_for, ikev1_line_for
from tests.unit.ike.builders import add_client, assert_keys_mirror, child_pairs, connect, make_lab


def test_client_dpd_is_acknowledged() -> None:
    lab = make_lab()
    ini = add_client(lab)
    connect(lab)
    lab.collect("c1", ini.dpd(lab.now))
    lab.run(1)
    assert lab.responder.stats["dpd_acked"] == 1
    assert ini.current.dpd_pending is None  # the ACK matched our sequence number


def test_idle_responder_probes_and_client_answers() -> None:
    lab = make_lab(dpd_idle=30.0)
    add_client(lab, dpd_idle=None)
    connect(lab)
    lab.run(100)
    assert lab.responder.stats["dpd_sent"] >= 3
    assert not lab.events_of("server", PeerDead)
    assert lab.clients["c1"].engine.stats["dpd_acked"] >= 3


def test_dead_client_detected_and_cleaned_up() -> None:
    lab = make_lab(dpd_idle=10.0, dpd_retry=2.0, dpd_max_retries=3)
    add_client(lab, dpd_idle=None)
    connect(lab)
    lab.drop = lambda f: f.sender == "server"  # the client vanished behind its NAT
    lab.run(30)
    (dead,) = lab.events_of("server", PeerDead)
    assert dead.unanswered == 3 and dead.peer == ("171.69.89.78", 4500)
    assert [d.reason for d in lab.events_of("server", Phase1Deleted)] == ["dpd"]
    assert [d.reason for d in lab.events_of("server", ChildSaDeleted)] == ["phase1-gone"]
    assert lab.hooks.released == [IPv4Address("40.1.1.1")] and not lab.responder.sas


def test_dead_gateway_detected_by_client() -> None:
    lab = make_lab(dpd_idle=None)
    add_client(lab, dpd_idle=20.0, dpd_retry=2.0, dpd_max_retries=4)
    connect(lab)
    lab.drop = lambda f: f.sender == "c1"
    lab.run(60)
    (dead,) = lab.events_of("c1", PeerDead)
    assert dead.unanswered == 4
    assert lab.events_of("c1", Phase1Deleted)[0].reason == "dpd"


def test_traffic_postpones_dpd() -> None:
    lab = make_lab(dpd_idle=10.0)
    add_client(lab, dpd_idle=None)
    connect(lab)
    (p1,) = lab.events_of("server", Phase1Established)
    for _ in range(10):
        lab.run(5)
        lab.responder.note_traffic(p1.handle, lab.now)
    assert lab.responder.stats["dpd_sent"] == 0


def test_altiga_heartbeats_are_accepted() -> None:
    """The seed's client sends notify 40500 every ~20 s (client log line 115)."""
    lab = make_lab(dpd_idle=None)
    add_client(lab, altiga_keepalive_interval=20.0, dpd_idle=None)
    connect(lab)
    lab.run(65)
    assert lab.responder.stats["altiga_keepalive"] == 3
    assert not lab.events_of("server", PacketDropped)


def test_client_disconnect_deletes_everything_on_the_gateway() -> None:
    lab = make_lab()
    ini = add_client(lab)
    connect(lab)
    lab.collect("c1", ini.delete(lab.now))
    lab.run(1)
    assert [d.reason for d in lab.events_of("server", ChildSaDeleted)] == ["peer-delete"]
    assert [d.reason for d in lab.events_of("server", Phase1Deleted)] == ["peer-delete"]
    assert not lab.responder.sas and not lab.responder.inbound_spis


def test_a_delete_with_message_id_zero_after_phase_1_is_honoured(monkeypatch) -> None:
    """Debian's vpnc draws its Delete's M-ID as one random byte: 1 in 256 is 0 (seen in
    CI: the gateway dropped it as "phase-2 message with M-ID 0" and kept the session). On
    an established SA such an informational is phase 2, its IV hash(p1_last | 0)."""
    import labctl.ike.engine as engine_module

    lab = make_lab()
    ini = add_client(lab)
    connect(lab)
    message_ids = iter([0xD4, 0])  # as in CI: the IPsec Delete 0xd4, the ISAKMP Delete 0
    monkeypatch.setattr(engine_module, "random_message_id", lambda: next(message_ids))
    lab.collect("c1", ini.delete(lab.now))
    lab.run(1)
    assert not lab.events_of("server", PacketDropped)
    assert [d.reason for d in lab.events_of("server", ChildSaDeleted)] == ["peer-delete"]
    assert [d.reason for d in lab.events_of("server", Phase1Deleted)] == ["peer-delete"]
    assert not lab.responder.sas


def test_gateway_logout_tells_the_client() -> None:
    lab = make_lab()
    add_client(lab)
    connect(lab)
    (p1,) = lab.events_of("server", Phase1Established)
    lab.collect("server", lab.responder.delete(p1.handle, lab.now))
    lab.run(1)
    assert [d.reason for d in lab.events_of("c1", ChildSaDeleted)] == ["peer-delete"]
    assert [d.reason for d in lab.events_of("c1", Phase1Deleted)] == ["peer-delete"]
    assert lab.clients["c1"].engine.current is None


def test_expiry_without_rekey() -> None:
    lab = make_lab(ike_lifetime=100, dpd_idle=None)
    add_client(lab, phase1=(Phase1Proposal(lifetime=100),), auto_rekey=False, dpd_idle=None)
    connect(lab)
    lab.run(120)
    # both ends expire; whoever is first tells the other
    assert [d.reason for d in lab.events_of("c1", Phase1Deleted)] == ["expired"]
    assert [d.reason for d in lab.events_of("server", Phase1Deleted)] in (
        ["expired"],
        ["peer-delete"],
    )
    assert not lab.responder.sas


def test_phase1_rekey_keeps_the_session() -> None:
    lab = make_lab(ike_lifetime=100, dpd_idle=None)
    ini = add_client(lab, phase1=(Phase1Proposal(lifetime=100),), dpd_idle=None)
    connect(lab)
    (first,) = lab.events_of("server", Phase1Established)
    ((child, _),) = child_pairs(lab, "c1")
    lab.run(95)  # rekey at 90 % of the lifetime
    p1s = lab.events_of("server", Phase1Established)
    assert len(p1s) == 2 and p1s[1].peer == first.peer
    client_p1 = lab.events_of("c1", Phase1Established)
    assert client_p1[1].replaces == first.handle and not client_p1[1].initial_contact
    assert len(lab.events_of("server", XauthResult)) == 2  # XAUTH again, like vpnc
    inherited = lab.events_of("server", ModeConfigApplied)[-1]
    assert inherited.style == "inherited" and inherited.config.address == IPv4Address("40.1.1.1")
    (rekeyed,) = lab.events_of("server", Phase1Rekeyed)
    assert rekeyed.handle == p1s[1].handle and rekeyed.replaces == first.handle
    assert [r.replaces for r in lab.events_of("c1", Phase1Rekeyed)] == [first.handle]
    (gone,) = lab.events_of("server", Phase1Deleted)
    assert gone.handle == first.handle and gone.replaced_by == p1s[1].handle
    assert not lab.events_of("server", ChildSaDeleted)  # the child moved, it did not die
    new_sa = lab.responder.sas[(p1s[1].handle.icookie, p1s[1].handle.rcookie)]
    assert child.outbound_spi in new_sa.children
    assert ini.current.handle == p1s[1].handle and child.inbound_spi in ini.current.children
    assert lab.hooks.pool.in_use  # the address stayed with the session
    assert not lab.hooks.released
    lab.run(50)  # no second rekey storm, no expiry of the moved child
    assert len(lab.events_of("server", Phase1Established)) == 2


def test_phase2_rekey_replaces_the_child() -> None:
    lab = make_lab(ipsec_lifetime=60, dpd_idle=None)
    add_client(lab, phase2=(Phase2Proposal(lifetime=60),), dpd_idle=None)
    connect(lab)
    lab.run(60)  # rekey at 54 s, old child deleted 5 s later
    server_children = lab.events_of("server", ChildSaEstablished)
    assert len(server_children) == 2
    old, new = server_children
    assert new.rekey_of == old.inbound_spi and new.remote_ts == old.remote_ts
    client_children = lab.events_of("c1", ChildSaEstablished)
    assert client_children[1].rekey_of == client_children[0].inbound_spi
    for c, s in child_pairs(lab, "c1"):
        assert_keys_mirror(c, s)
    assert [d.inbound_spi for d in lab.events_of("server", ChildSaDeleted)] == [old.inbound_spi]
    assert lab.events_of("c1", ChildSaDeleted)[0].reason == "rekeyed"
    assert len(lab.responder.inbound_spis) == 1


def test_initial_contact_never_hits_another_client_behind_the_same_pat() -> None:
    lab = make_lab()
    add_client(lab, "c1", "10.10.10.2", user="vpnclient1")
    add_client(lab, "c2", "10.10.10.3", user="vpnclient2")
    connect(lab)
    assert len(lab.responder.established()) == 2
    assert not lab.events_of("server", Phase1Deleted)


def test_initial_contact_replaces_the_same_users_stale_session() -> None:
    """vpnclient1 reboots (new cookies, INITIAL-CONTACT): its stale session goes, the other
    user's session behind the same public address stays."""
    lab = make_lab()
    add_client(lab, "c1", "10.10.10.2", user="vpnclient1")
    add_client(lab, "c2", "10.10.10.3", user="vpnclient2")
    connect(lab)
    stale = [e for e in lab.events_of("server", Phase1Established)]
    # c1 comes back as a fresh client process on the same host
    lab.clients["c1"].engine = type(lab.clients["c1"].engine)(lab.clients["c1"].engine.config)
    connect(lab, "c1")
    gone = lab.events_of("server", Phase1Deleted)
    assert [g.reason for g in gone] == ["initial-contact"]
    assert gone[0].user == "vpnclient1" and gone[0].handle in {s.handle for s in stale}
    users = {sa.user for sa in lab.responder.established()}
    assert users == {"vpnclient1", "vpnclient2"} and len(lab.responder.established()) == 2


def test_gateway_follows_a_nat_rebinding() -> None:
    lab = make_lab()
    ini = add_client(lab)
    connect(lab)
    (p1,) = lab.events_of("server", Phase1Established)
    # the PAT forgets the mapping; the next packet gets a new public port
    lab._pat.clear()
    lab._pat_rev.clear()
    lab._pat_rev[4500] = ("203.0.113.9", 1)  # 4500 now taken by someone else
    lab._next_port = 30000
    lab.collect("c1", ini.dpd(lab.now))
    lab.run(1)
    (moved,) = lab.events_of("server", PeerEndpointChanged)[-1:]
    assert moved.old == ("171.69.89.78", 4500) and moved.new == ("171.69.89.78", 30000)
    assert ini.current.dpd_pending is None  # the ACK went to the new port and arrived
    sa = lab.responder.sas[(p1.handle.icookie, p1.handle.rcookie)]
    assert sa.remote == ("171.69.89.78", 30000)


def test_secrets_stay_out_of_reprs() -> None:
    cfg = InitiatorConfig("g", b"topsecret-psk", "user", b"topsecret-pw")
    group = GroupPolicy("g", b"topsecret-psk")
    req = XauthRequest(None, "g", "user", b"topsecret-pw", ("1.2.3.4", 500), 1)
    for obj in (cfg, group, req):
        assert "topsecret" not in repr(obj) and "topsecret" not in str(obj)
    lab = make_lab()
    add_client(lab)
    connect(lab)
    for e in lab.server_events + lab.clients["c1"].events:
        text = repr(e)
        for field in ("enc_key", "enc_key_in", "enc_key_out", "auth_key_in", "auth_key_out"):
            value = getattr(e, field, b"")
            if value:
                assert value.hex() not in text and repr(value) not in text
    sa = next(iter(lab.responder.sas.values()))
    assert sa.keys.enc_key.hex() not in repr(sa.keys)


def test_wireshark_key_export_lines() -> None:
    lab = make_lab()
    add_client(lab)
    connect(lab)
    (p1,) = lab.events_of("server", Phase1Established)
    line = ikev1_line_for(p1)
    icookie, key = line.split(",")
    assert icookie == p1.handle.icookie.hex() and key == p1.enc_key.hex()
    (child,) = lab.events_of("server", ChildSaEstablished)
    inbound, outbound = esp_sa_lines_for(child)
    assert inbound.startswith('"IPv4","171.69.89.78","172.16.172.50",')
    assert f'"0x{child.inbound_spi:08x}"' in inbound and child.enc_key_in.hex() in inbound
    assert f'"0x{child.outbound_spi:08x}"' in outbound and child.auth_key_out.hex() in outbound
    # A NATed client has two addresses (inside, translated): its end is Wireshark's "*".
    inbound, outbound = esp_sa_lines_for(child, peer_behind_nat=True)
    assert inbound.startswith('"IPv4","*","172.16.172.50",')
    assert outbound.startswith('"IPv4","172.16.172.50","*",')
    (client_child,) = lab.events_of("c1", ChildSaEstablished)
    inbound, _ = esp_sa_lines_for(client_child, local_behind_nat=True)
    assert inbound.startswith('"IPv4","172.16.172.50","*",')
    assert esp_sa_line("a", "b", 1, "3des-cbc", b"\x01", "hmac-md5-96", b"\x02") == (
        '"IPv4","a","b","0x00000001","TripleDES-CBC [RFC2451]","0x01",'
        '"HMAC-MD5-96 [RFC2403]","0x02"'
    )


def test_vpnc_style_rekey_delete_names_the_new_sa() -> None:
    """Debian's vpnc deletes "the old SA" by naming the new one; the gateway must not drop
    the fresh session (ResponderPolicy.vpnc_rekey_delete_quirk)."""
    from labctl.ike import decode_header
    from labctl.ike.codec import DeletePayload
    from labctl.ike.constants import ExchangeType, ProtocolId
    from labctl.ike.engine import Collector
    from tests.unit.ike.harness import Flight

    lab = make_lab(ike_lifetime=100, dpd_idle=None)
    ini = add_client(lab, phase1=(Phase1Proposal(lifetime=100),), dpd_idle=None)
    connect(lab)
    (first,) = lab.events_of("server", Phase1Established)
    # swallow the client's (correct) delete of the old SA after its rekey
    lab.drop = lambda f: (
        f.sender == "c1" and decode_header(f.data).exchange == (ExchangeType.INFORMATIONAL)
    )
    lab.run(95)
    lab.drop = None
    new = ini.current
    assert new.handle != first.handle and len(lab.responder.established()) == 2
    out = Collector()
    ini._send_informational(
        out, new, [DeletePayload(ProtocolId.ISAKMP, (new.icookie + new.rcookie,), 16)]
    )
    for d in out.datagrams:
        lab.inject(Flight(d.data, ("10.10.10.2", d.local_port), d.remote, d.non_esp_marker, "c1"))
    lab.run(1)
    assert lab.responder.stats["vpnc_rekey_delete_quirk"] == 1
    (gone,) = lab.events_of("server", Phase1Deleted)
    assert gone.handle == first.handle  # the OLD one went
    (alive,) = lab.responder.established()
    assert alive.handle == new.handle and alive.children  # the child moved over


def test_session_snapshots_for_status_displays() -> None:
    lab = make_lab()
    add_client(lab, "c1", "10.10.10.2", user="vpnclient1")
    add_client(lab, "c2", "10.10.10.3", user="vpnclient2")
    connect(lab)
    rows = sorted(lab.responder.sessions(), key=lambda r: r.user)
    assert [(r.user, r.address, r.peer[0], r.group) for r in rows] == [
        ("vpnclient1", "40.1.1.1", "171.69.89.78", "ciscovpn"),
        ("vpnclient2", "40.1.1.2", "171.69.89.78", "ciscovpn"),
    ]
    assert all(r.xauth == "done" and r.nat.encapsulation == "udp" for r in rows)
    assert all(len(r.children) == 1 and r.children[0].encapsulation == "udp-tunnel" for r in rows)
    assert rows[0].peer_app_version.startswith("Cisco Systems VPN Client")
    (mine,) = lab.clients["c1"].engine.sessions()
    assert mine.role == "initiator" and mine.address == "40.1.1.1"


def test_client_rekeys_before_the_gateways_shorter_lifetimes_end() -> None:
    """The client offers 86400 / 28800 s; the gateway answers RESPONDER-LIFETIME 200 / 100:
    the client rekeys both phases before those end, and nothing ever expires."""
    lab = make_lab(ike_lifetime=200, ipsec_lifetime=100, dpd_idle=None)
    ini = add_client(
        lab,
        phase1=(Phase1Proposal(lifetime=86400),),
        phase2=(Phase2Proposal(lifetime=28800),),
        dpd_idle=None,
    )
    connect(lab)
    lab.run(95)  # 5 s in + 95: before the gateway's 100 s phase-2 lifetime ends
    firsts = lab.events_of("c1", ChildSaEstablished)
    assert len(firsts) == 2 and firsts[1].rekey_of == firsts[0].inbound_spi
    assert not lab.events_of("c1", Phase1Rekeyed)
    lab.run(100)  # before the gateway's 200 s phase-1 lifetime ends
    assert len(lab.events_of("c1", Phase1Rekeyed)) == 1
    assert ini.current.lifetime == 200
    lab.run(300)
    reasons = {d.reason for d in lab.events_of("c1", ChildSaDeleted)}
    reasons |= {d.reason for d in lab.events_of("server", ChildSaDeleted)}
    reasons |= {d.reason for d in lab.events_of("c1", Phase1Deleted)}
    assert "expired" not in reasons and reasons <= {"rekeyed", "peer-delete"}
    assert ini.children() and ini.current is not None and ini.current.established


def _scan_candidates(resp, sa) -> list:
    """What Responder._candidates returned before its per-IP index: a scan of every SA."""
    ip, user = sa.remote[0], sa.user
    return [
        o
        for o in resp.sas.values()
        if o.user == user and o.remote[0] == ip and o.lan_to_lan is None and o is not sa
    ]


def test_the_responders_client_index_finds_what_a_scan_of_every_sa_finds() -> None:
    """Responder._by_client (INITIAL-CONTACT and phase-1 rekeys look up a client's other SAs
    there) follows SAs that join, change user, move to another IP and leave, and holds no
    dead SA."""
    lab = make_lab()
    for i, user in enumerate(("vpnclient1", "vpnclient2", "vpnclient3"), start=1):
        add_client(lab, f"c{i}", ip=f"10.10.10.{i + 1}", user=user)
    connect(lab)
    resp = lab.responder
    assert len(resp.sas) == 3

    def check() -> None:
        for sa in resp.sas.values():
            assert resp._candidates(sa) == _scan_candidates(resp, sa)
        indexed = [o for bucket in resp._by_client.values() for o in bucket]
        assert sorted(map(id, indexed)) == sorted(map(id, resp.sas.values()))
        assert all((o.remote[0], o.user) == k for k, b in resp._by_client.items() for o in b)

    check()
    first, second, third = resp.sas.values()
    resp._set_user(second, first.user)  # (as a second device of the same user would be)
    check()
    assert resp._candidates(first) == [second]
    resp._move_to(second, ("198.51.100.7", 4500), second.local)
    check()
    assert resp._candidates(first) == []
    resp._move_to(second, ("171.69.89.78", 4501), second.local)
    check()
    lab.collect("server", resp.delete(first.handle, lab.now))
    lab.run(1)
    check()
    # the same user connects again from behind the PAT: INITIAL-CONTACT finds its old SA
    add_client(lab, "c4", ip="10.10.10.9", user="vpnclient3")
    connect(lab, "c4")
    assert resp.stats["initial_contact_removed"] == 1 and third.key not in resp.sas
    check()
