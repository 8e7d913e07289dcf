"""Kilobyte lifetimes: offered in the ESP transform, shortened by RESPONDER-LIFETIME, a
rekey once 90 % of the volume is used (the agent reports the bytes), deletion at 100 %."""

from __future__ import annotations

from labctl.ike import ChildSaDeleted, ChildSaEstablished, Phase2Proposal
from tests.unit.ike.builders import add_client, connect, make_lab


def _client_child(lab, ini):
    (child,) = ini.children()
    return child


def test_a_client_kilobyte_lifetime_is_offered_and_rekeys_on_volume() -> None:
    lab = make_lab(dpd_idle=None)
    ini = add_client(lab, phase2=(Phase2Proposal(lifetime_kb=1000),), dpd_idle=None)
    connect(lab)
    (server_view,) = lab.events_of("server", ChildSaEstablished)
    assert server_view.lifetime_kilobytes == 1000  # it crossed the wire in the transform
    child = _client_child(lab, ini)
    assert child.lifetime_kb == 1000
    lab.collect("c1", ini.note_volume(child.inbound_spi, 850 * 1024, lab.now))
    lab.run(1)
    assert len(lab.events_of("c1", ChildSaEstablished)) == 1  # 85 %: not yet
    lab.collect("c1", ini.note_volume(child.inbound_spi, 901 * 1024, lab.now))
    lab.run(10)
    first, second = lab.events_of("c1", ChildSaEstablished)
    assert second.rekey_of == first.inbound_spi and second.lifetime_kilobytes == 1000
    assert ini.stats["child_volume_rekeys"] == 1
    assert [d.reason for d in lab.events_of("c1", ChildSaDeleted)] == ["rekeyed"]
    (new,) = ini.children()
    assert new.inbound_spi == second.inbound_spi


def test_the_gateways_shorter_volume_reaches_the_client() -> None:
    lab = make_lab(ipsec_lifetime_kb=500, dpd_idle=None)
    ini = add_client(lab, phase2=(Phase2Proposal(lifetime_kb=4000),), dpd_idle=None)
    connect(lab)
    (server_view,) = lab.events_of("server", ChildSaEstablished)
    assert server_view.lifetime_kilobytes == 500
    child = _client_child(lab, ini)
    assert child.lifetime_kb == 500  # from the RESPONDER-LIFETIME notify
    lab.collect("c1", ini.note_volume(child.inbound_spi, 460 * 1024, lab.now))
    lab.run(10)
    assert ini.stats["child_volume_rekeys"] == 1
    assert len(lab.events_of("server", ChildSaEstablished)) == 2


def test_a_client_without_a_volume_limit_learns_the_gateways() -> None:
    lab = make_lab(ipsec_lifetime_kb=500, dpd_idle=None)
    ini = add_client(lab, dpd_idle=None)
    connect(lab)
    assert _client_child(lab, ini).lifetime_kb == 500


def test_a_used_up_volume_deletes_the_child_and_tells_the_peer() -> None:
    lab = make_lab(dpd_idle=None)
    ini = add_client(
        lab, phase2=(Phase2Proposal(lifetime_kb=1000),), auto_rekey=False, dpd_idle=None
    )
    connect(lab)
    child = _client_child(lab, ini)
    lab.collect("c1", ini.note_volume(child.inbound_spi, 950 * 1024, lab.now))
    assert ini.stats["child_volume_rekeys"] == 0  # not this end's job
    lab.collect("c1", ini.note_volume(child.inbound_spi, 1000 * 1024, lab.now))
    lab.run(2)
    assert [d.reason for d in lab.events_of("c1", ChildSaDeleted)] == ["expired"]
    assert [d.reason for d in lab.events_of("server", ChildSaDeleted)] == ["peer-delete"]
    assert not ini.children()


def test_the_gateway_rekeys_on_volume_when_it_initiates_rekeys() -> None:
    lab = make_lab(ipsec_lifetime_kb=500, initiate_rekeys=True, dpd_idle=None)
    ini = add_client(lab, dpd_idle=None, auto_rekey=False)
    connect(lab)
    (server_view,) = lab.events_of("server", ChildSaEstablished)
    out = lab.responder.note_volume(server_view.inbound_spi, 401 * 1024, lab.now)
    lab.collect("server", out)
    lab.run(10)
    assert lab.responder.stats["child_volume_rekeys"] == 1
    second = lab.events_of("c1", ChildSaEstablished)[-1]
    assert second.started_by_peer and second.rekey_of is not None
    assert second.lifetime_kilobytes == 500
    assert len(ini.children()) == 1


def test_a_report_that_jumps_past_the_limit_rekeys_instead_of_cutting_the_tunnel() -> None:
    """Bytes are reported once a second: a busy tunnel can go from under 90 % to over 100 %
    between two reports. The end that rekeys then rekeys; nothing is deleted unreplaced."""
    lab = make_lab(dpd_idle=None)
    ini = add_client(lab, phase2=(Phase2Proposal(lifetime_kb=10),), dpd_idle=None)
    connect(lab)
    child = _client_child(lab, ini)
    lab.collect("c1", ini.note_volume(child.inbound_spi, 8 * 1024, lab.now))
    lab.collect("c1", ini.note_volume(child.inbound_spi, 11 * 1024, lab.now))
    lab.collect("c1", ini.note_volume(child.inbound_spi, 12 * 1024, lab.now))  # in flight
    lab.run(10)
    assert ini.stats["child_volume_rekeys"] == 1 and ini.stats["child_volume_expired"] == 0
    assert [d.reason for d in lab.events_of("c1", ChildSaDeleted)] == ["rekeyed"]
    (new,) = ini.children()
    assert new.inbound_spi != child.inbound_spi


def test_the_agent_reports_a_childs_volume_only_near_its_limit() -> None:
    """report_volumes used to call the engine once a second per child with a kilobyte
    lifetime, however far below it; now only from the point where the engine acts (the
    rekey margin for an end that rekeys, the limit for one that does not)."""
    from labctl.agent.volume import report_volumes
    from labctl.ike.exchanges.volume import report_threshold

    lab = make_lab(dpd_idle=None)
    ini = add_client(lab, phase2=(Phase2Proposal(lifetime_kb=1000),), dpd_idle=None)
    connect(lab)
    child = _client_child(lab, ini)
    assert report_threshold(ini, child) == 1000 * 1024 * 9 // 10  # 10 % margin: rekeys at 90 %

    plane, applied = Plane(), []
    for carried, calls in ((0, 0), (100 * 1024, 0), (899 * 1024, 0), (901 * 1024, 1)):
        plane.carried_bytes = carried
        report_volumes(ini, plane, applied.append, lab.now)  # type: ignore[arg-type]
        assert len(applied) == calls, carried
    # below the threshold the pass armed the data plane's watch instead of calling the engine
    assert plane.watches == {child.inbound_spi: (child.outbound_spi, 1000 * 1024 * 9 // 10)}
    lab.collect("c1", applied[0])
    lab.run(10)
    assert ini.stats["child_volume_rekeys"] == 1


class Plane:
    """The data plane as the volume reports see it: byte counters and watches."""

    def __init__(self) -> None:
        self.carried_bytes = 0
        self.watches: dict[int, tuple[int, int]] = {}

    def carried(self, inbound_spi: int, outbound_spi: int) -> int:
        return self.carried_bytes

    def watch_volume(self, inbound_spi: int, outbound_spi: int, threshold: int) -> None:
        self.watches[inbound_spi] = (outbound_spi, threshold)


def test_a_new_child_is_watched_and_its_crossing_rekeys_at_once() -> None:
    """The data plane reports the batch that crosses the threshold (VolumeReached): the
    rekeying end starts its quick mode then, not at its next once-a-second pass."""
    from labctl.agent.tunnel import VolumeReached
    from labctl.agent.volume import volume_reached, watch_child

    lab = make_lab(ipsec_lifetime_kb=100, dpd_idle=None)
    ini = add_client(lab, phase2=(Phase2Proposal(lifetime_kb=100),), dpd_idle=None)
    connect(lab)
    child = _client_child(lab, ini)
    (server_child,) = [c for sa in lab.responder.sas.values() for c in sa.children.values()]
    client_plane, server_plane = Plane(), Plane()
    watch_child(ini, client_plane, child.inbound_spi)  # type: ignore[arg-type]
    watch_child(lab.responder, server_plane, server_child.inbound_spi)  # type: ignore[arg-type]
    watch_child(ini, client_plane, 0x12345678)  # type: ignore[arg-type]  # unknown: ignored
    # the client rekeys (90 %), the gateway, which does not, deletes at the limit (100 %)
    assert client_plane.watches == {child.inbound_spi: (child.outbound_spi, 92160)}
    assert server_plane.watches == {server_child.inbound_spi: (server_child.outbound_spi, 102400)}
    applied: list = []
    volume_reached(ini, applied.append, VolumeReached("vpn1", child.inbound_spi, 92200), lab.now)
    lab.collect("c1", applied[0])
    lab.run(1)
    assert ini.stats["child_volume_rekeys"] == 1
    first, second = lab.events_of("c1", ChildSaEstablished)
    assert second.rekey_of == first.inbound_spi
