"""Failure paths: wrong secrets, refused proposals, malformed / truncated / replayed /
duplicated packets, lost packets and retransmission."""

from __future__ import annotations

from ipaddress import IPv4Address

from labctl.ike import (
    ChildSaEstablished,
    ExchangeFailed,
    ModeConfigApplied,
    NotifyReceived,
    PacketDropped,
    Phase1Deleted,
    Phase1Established,
    Phase1Proposal,
    Phase2Proposal,
    XauthResult,
    decode_header,
)
from labctl.ike.constants import EspTransform, ExchangeType, NotifyType
from tests.unit.ike.builders import add_client, assert_keys_mirror, child_pairs, connect, make_lab
from tests.unit.ike.harness import Flight


def test_wrong_group_password() -> None:
    lab = make_lab(half_open_timeout=10)
    add_client(lab, psk=b"not-the-psk")
    connect(lab, duration=30)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.stage == "phase1" and "HASH_R mismatch" in failed.reason
    assert failed.notify == NotifyType.AUTHENTICATION_FAILED
    (server_failed,) = lab.events_of("server", ExchangeFailed)
    assert server_failed.stage == "phase1" and "timeout" in server_failed.reason
    assert not lab.events_of("server", Phase1Established)
    assert not lab.responder.sas  # the half-open SA is gone
    assert "not-the-psk" not in repr(lab.clients["c1"].events)


def test_wrong_hash_i_is_dropped_then_times_out() -> None:
    """A message 3 with a bad HASH_I (tampered) never establishes anything."""
    lab = make_lab(half_open_timeout=10)
    add_client(lab)

    def tamper(f: Flight) -> bool:
        if f.sender == "c1" and f.dst[1] == 4500 and decode_header(f.data).exchange == 4:
            data = bytearray(f.data)
            data[36] ^= 0x55  # first ciphertext block: HASH_I's header and first bytes
            lab.inject(Flight(bytes(data), f.src, f.dst, f.marker, "tamper"))
            return True
        return False

    lab.drop = tamper
    connect(lab, duration=3)
    assert not lab.events_of("server", Phase1Established)
    lab.drop = lambda f: f.sender == "c1"  # client keeps resending: ignore it now
    lab.run(30)
    (failed,) = lab.events_of("server", ExchangeFailed)
    assert failed.stage == "phase1"


def test_wrong_password_fails_cleanly_on_both_sides() -> None:
    lab = make_lab(xauth_max_attempts=3)
    add_client(lab, password=b"wrong")
    connect(lab, duration=20)
    (server_result,) = lab.events_of("server", XauthResult)
    (client_result,) = lab.events_of("c1", XauthResult)
    assert not server_result.success and not client_result.success
    assert server_result.attempts == 3 and client_result.attempts == 3
    assert lab.responder.stats["xauth_retry"] == 2
    assert [d.reason for d in lab.events_of("server", Phase1Deleted)] == ["xauth-failed"]
    assert [d.reason for d in lab.events_of("c1", Phase1Deleted)] == ["xauth-failed"]
    assert not lab.events_of("server", ModeConfigApplied)
    assert not lab.hooks.pool.in_use  # no address was handed out
    assert not lab.responder.sas and not lab.clients["c1"].engine.sas


def test_xauth_retry_succeeds_on_second_attempt() -> None:
    class SecondTimeLucky:
        def __init__(self, inner):
            self.inner = inner
            self.calls = 0

        def authenticate(self, request):
            self.calls += 1
            assert "pw-one" not in repr(request)
            return self.calls > 1 and self.inner.authenticate(request)

        def assign_address(self, ctx):
            return self.inner.assign_address(ctx)

        def release_address(self, ctx, config):
            self.inner.release_address(ctx, config)

    from labctl.ike import AddressPool, SimpleHooks
    from tests.unit.ike.builders import USERS

    hooks = SecondTimeLucky(SimpleHooks(USERS, AddressPool("40.1.1.1", "40.1.1.9")))
    lab = make_lab(hooks=hooks)
    add_client(lab)
    connect(lab)
    (result,) = lab.events_of("server", XauthResult)
    assert result.success and result.attempts == 2
    assert child_pairs(lab, "c1")


def test_unknown_group_refused() -> None:
    lab = make_lab()
    add_client(lab, group="nosuchgroup")
    connect(lab)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert "INVALID_ID_INFORMATION" in failed.reason
    assert lab.events_of("server", ExchangeFailed)[0].notify == 18


def test_no_phase1_proposal_chosen() -> None:
    lab = make_lab(phase1=(Phase1Proposal(group=14),))
    add_client(lab, phase1=(Phase1Proposal(group=2),))
    connect(lab)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.notify == NotifyType.NO_PROPOSAL_CHOSEN and failed.stage == "phase1"
    (refused,) = lab.events_of("server", ExchangeFailed)
    assert refused.notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert not lab.responder.sas


def test_no_phase2_proposal_chosen() -> None:
    lab = make_lab(phase2=(Phase2Proposal(EspTransform.AES_CBC, 256),))
    add_client(lab, phase2=(Phase2Proposal(EspTransform.TRIPLE_DES, None),))
    connect(lab)
    assert lab.events_of("c1", Phase1Established)
    (failed,) = lab.events_of("c1", ExchangeFailed)
    assert failed.stage == "quick" and failed.notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert not lab.events_of("server", ChildSaEstablished)
    assert lab.events_of("server", ExchangeFailed)[0].stage == "quick"


def test_pfs_mismatch_is_refused() -> None:
    lab = make_lab(phase2=(Phase2Proposal(pfs_group=2),))
    add_client(lab, phase2=(Phase2Proposal(pfs_group=None),))
    connect(lab)
    assert not lab.events_of("c1", ChildSaEstablished)
    assert lab.events_of("c1", ExchangeFailed)[0].stage == "quick"


def test_truncated_and_garbage_first_messages() -> None:
    lab = make_lab()
    add_client(lab)
    lab.start("c1")
    msg1 = lab.queue.popleft()
    remote, local = ("171.69.89.78", 500), ("172.16.172.50", 500)
    for cut in (0, 10, 27, 28, 60, len(msg1.data) - 1):
        out = lab.responder.receive(msg1.data[:cut], remote, local, lab.now)
        (drop,) = out.of_type(PacketDropped)
        assert drop.category == "malformed" and drop.offset is not None
        assert not out.datagrams
    out = lab.responder.receive(b"\xff" * 200, remote, local, lab.now)
    assert out.of_type(PacketDropped) and not lab.responder.sas
    assert lab.responder.stats["malformed"] == 7


def test_lost_message_2_is_recovered_by_retransmission() -> None:
    lab = make_lab()
    add_client(lab)
    lost = {"n": 0}

    def lose_first_reply(f: Flight) -> bool:
        if f.sender == "server" and lost["n"] == 0:
            lost["n"] += 1
            return True
        return False

    lab.drop = lose_first_reply
    connect(lab, duration=10)
    assert lab.responder.stats["duplicates"] == 1  # msg 1 again: the cached msg 2 went out
    assert lab.responder.stats["am1"] == 1  # ... and no second SA was made
    assert len(lab.events_of("server", Phase1Established)) == 1
    assert child_pairs(lab, "c1")


def test_lost_xauth_request_is_recovered() -> None:
    """Lost REQUEST: the client resends message 3, the responder answers from its cache."""
    lab = make_lab()
    add_client(lab)
    state = {"dropped": False}

    def lose_xauth(f: Flight) -> bool:
        if (
            f.sender == "server"
            and not state["dropped"]
            and decode_header(f.data).exchange == ExchangeType.TRANSACTION
        ):
            state["dropped"] = True
            return True
        return False

    lab.drop = lose_xauth
    connect(lab, duration=10)
    assert lab.responder.stats["duplicates"] >= 1
    assert lab.events_of("server", XauthResult)[0].success
    ((c, s),) = child_pairs(lab, "c1")
    assert_keys_mirror(c, s)


def test_lost_xauth_set_is_retransmitted_by_the_responder() -> None:
    """Lost SET: nobody else will resend it, the responder's retransmission timer does."""
    lab = make_lab()
    add_client(lab)
    seen = {"n": 0}

    def lose_set(f: Flight) -> bool:
        if f.sender == "server" and decode_header(f.data).exchange == ExchangeType.TRANSACTION:
            seen["n"] += 1
            return seen["n"] == 2  # REQUEST, SET (dropped)
        return False

    lab.drop = lose_set
    connect(lab, duration=10)
    assert lab.responder.stats["retransmits"] == 1
    assert lab.events_of("server", XauthResult)[0].success
    assert child_pairs(lab, "c1")


def test_lost_xauth_ack_is_implied_by_the_modecfg_request() -> None:
    """vpnc never resends its ACK; a Mode-Config REQUEST proves it was sent."""
    lab = make_lab()
    add_client(lab)
    seen = {"n": 0}

    def lose_ack(f: Flight) -> bool:
        if f.sender == "c1" and decode_header(f.data).exchange == ExchangeType.TRANSACTION:
            seen["n"] += 1
            return seen["n"] == 2  # REPLY, ACK (dropped), REQUEST
        return False

    lab.drop = lose_ack
    connect(lab)
    assert lab.events_of("server", XauthResult)[0].success
    assert lab.events_of("server", ModeConfigApplied)
    assert child_pairs(lab, "c1")


def test_lost_quick_mode_reply() -> None:
    lab = make_lab()
    add_client(lab)
    state = {"dropped": False}

    def lose_qm2(f: Flight) -> bool:
        if (
            f.sender == "server"
            and not state["dropped"]
            and decode_header(f.data).exchange == ExchangeType.QUICK
        ):
            state["dropped"] = True
            return True
        return False

    lab.drop = lose_qm2
    connect(lab, duration=10)
    assert len(lab.events_of("server", ChildSaEstablished)) == 1
    ((c, s),) = child_pairs(lab, "c1")
    assert_keys_mirror(c, s)


def test_duplicates_and_replays_change_nothing() -> None:
    lab = make_lab()
    add_client(lab)
    connect(lab)
    before = len(lab.server_events)
    sa = next(iter(lab.responder.sas.values()))
    fingerprint = (sa.keys, dict(sa.children), sa.remote, sa.state, sa.mode_config)
    replies_before = len(lab.queue)
    client_packets = [f for f in lab.capture if f.sender == "c1"]
    for f in client_packets:  # every client packet again, in order
        lab.inject(Flight(f.data, f.src, f.dst, f.marker, "replay"))
    lab.run(1)
    new = lab.server_events[before:]
    assert all(isinstance(e, PacketDropped) for e in new)
    assert (sa.keys, dict(sa.children), sa.remote, sa.state, sa.mode_config) == fingerprint
    assert lab.responder.stats["duplicates"] >= 4  # answered from the cache
    assert len(lab.events_of("server", ChildSaEstablished)) == 1
    assert replies_before == 0


def test_notify_from_client_is_reported() -> None:
    lab = make_lab()
    ini = add_client(lab)
    connect(lab)
    sa = ini.current
    from labctl.ike.codec import NotifyPayload

    ini._send_informational(lab_collector := _Collector(), sa, [NotifyPayload(16384, 1)])
    for d in lab_collector.datagrams:
        lab.inject(Flight(d.data, ("10.10.10.2", d.local_port), d.remote, d.non_esp_marker, "c1"))
    lab.run(1)
    (n,) = lab.events_of("server", NotifyReceived)
    assert n.notify_type == 16384 and n.encrypted


class _Collector:
    def __init__(self):
        self.datagrams = []
        self.events = []

    def event(self, e):
        self.events.append(e)


def test_address_released_when_session_ends() -> None:
    lab = make_lab()
    ini = add_client(lab)
    connect(lab)
    assert lab.hooks.pool.in_use
    lab.collect("c1", ini.delete(lab.now))
    lab.run(1)
    assert lab.hooks.released == [IPv4Address("40.1.1.1")]
    assert not lab.hooks.pool.in_use
