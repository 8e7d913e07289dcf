"""What each role decides in a quick mode, whichever end started it (RFC 2409 section 5.5
does not reserve quick mode to the phase-1 initiator): the transforms it accepts and
offers, its lifetime, which traffic selectors it takes, how long it waits and lingers.

The client (Initiator) answers a gateway's quick mode for its own session only: the
selectors of a child it holds (a rekey) or its address towards a network it tunnels to.
The concentrator (Responder) starts quick modes only to rekey, when its policy says so.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, cast

from ..addrs import host_network
from ..codec import IdPayload
from ..config import Phase2Proposal
from ..constants import NotifyType
from ..errors import IkeProtocolError
from ..sa import ChildSa, IkeSa
from ..states import Role

if TYPE_CHECKING:
    from ..engine import EngineBase
    from ..initiator import Initiator
    from ..responder import Responder


def _ini(engine: EngineBase) -> Initiator | None:
    return cast("Initiator", engine) if engine.role is Role.INITIATOR else None


def _resp(engine: EngineBase) -> Responder:
    return cast("Responder", engine)


def accepted(engine: EngineBase, sa: IkeSa) -> tuple[Phase2Proposal, ...]:
    """The ESP transforms we choose from when the peer offers (a LAN-to-LAN entry's own)."""
    ini = _ini(engine)
    return ini.config.phase2 if ini is not None else _resp(engine)._phase2_for(sa)


def lifetime(engine: EngineBase, sa: IkeSa) -> int:
    """Our phase-2 lifetime (seconds) as the answering end: the shorter one wins."""
    ini = _ini(engine)
    if ini is not None:
        return min(p.lifetime for p in ini.config.phase2)
    return _resp(engine)._ipsec_lifetime(sa)


def lifetime_kb(engine: EngineBase, sa: IkeSa) -> int | None:
    """Our phase-2 kilobyte lifetime as the answering end (None: no volume limit); a
    LAN-to-LAN entry's own transforms, never a remote-access group's."""
    ini = _ini(engine)
    if ini is not None:
        return shorter(*(p.lifetime_kb for p in ini.config.phase2))
    if sa.lan_to_lan is not None:
        return shorter(*(p.lifetime_kb for p in sa.lan_to_lan.phase2))
    return _resp(engine).policy.ipsec_lifetime_kb


def shorter(*values: int | None) -> int | None:
    """The smallest lifetime given; None (no limit) only when none is given."""
    given = [v for v in values if v]
    return min(given) if given else None


def rekeys(engine: EngineBase) -> bool:
    """Whether this end starts phase-2 rekeys itself (and how early: ``margin``): the
    gateway with initiate_rekeys, or late, for clients that did not (late_rekey_margin)."""
    ini = _ini(engine)
    if ini is not None:
        return ini.config.auto_rekey
    policy = _resp(engine).policy
    return policy.initiate_rekeys or policy.late_rekey_margin is not None


def margin(engine: EngineBase) -> float:
    ini = _ini(engine)
    if ini is not None:
        return ini.config.rekey_margin
    policy = _resp(engine).policy
    if policy.initiate_rekeys or policy.late_rekey_margin is None:
        return policy.rekey_margin
    return policy.late_rekey_margin


def sends_responder_lifetime(engine: EngineBase) -> bool:
    ini = _ini(engine)
    return ini is None and _resp(engine).policy.send_responder_lifetime


def exchange_timeout(engine: EngineBase) -> float:
    """How long the answering end waits for HASH(3)."""
    ini = _ini(engine)
    if ini is not None:
        return ini.config.retransmit_interval * (2 ** (ini.config.retransmit_max + 1))
    return _resp(engine).policy.exchange_timeout


def rekey_grace(engine: EngineBase) -> float:
    """How long a replaced child lingers after the end that rekeyed installed its successor."""
    ini = _ini(engine)
    return (
        ini.config.child_rekey_grace if ini is not None else _resp(engine).policy.child_rekey_grace
    )


def rekey_offer(engine: EngineBase, sa: IkeSa, child: ChildSa) -> tuple[Phase2Proposal, ...]:
    """What we offer to rekey ``child``: the client its configured transforms; the
    concentrator the transform the child has, with the lifetime it has (its own)."""
    ini = _ini(engine)
    if ini is not None:
        return ini.config.phase2
    rows = (child.proposal,) if child.proposal is not None else _resp(engine)._phase2_for(sa)
    same_pfs = tuple(p for p in rows if p.pfs_group == child.pfs_group) or rows[:1]
    return tuple(
        replace(p, lifetime=child.lifetime, lifetime_kb=child.lifetime_kb) for p in same_pfs
    )


def selectors(engine: EngineBase, sa: IkeSa, ids: list[IdPayload]):
    """(the peer's network, ours) from IDci / IDcr of a quick mode the peer started."""
    if len(ids) not in (0, 2):
        raise IkeProtocolError(
            f"quick mode with {len(ids)} ID payloads", notify=NotifyType.INVALID_ID_INFORMATION
        )
    if ids:
        remote_ts, local_ts = ids[0].as_network(), ids[1].as_network()
        if remote_ts is None or local_ts is None:
            raise IkeProtocolError(
                "quick mode IDs are not IPv4 networks", notify=NotifyType.INVALID_ID_INFORMATION
            )
    elif sa.lan_to_lan is not None:
        raise IkeProtocolError(
            "LAN-to-LAN quick mode without IDs", notify=NotifyType.INVALID_ID_INFORMATION
        )
    else:
        remote_ts = host_network(sa.remote[0])
        local_ts = host_network(sa.local[0])
    ini = _ini(engine)
    if ini is not None:
        _client_may_answer(ini, sa, remote_ts, local_ts)
    else:
        _gateway_may_answer(_resp(engine), sa, remote_ts, local_ts)
    return remote_ts, local_ts


def _gateway_may_answer(
    resp: Responder, sa: IkeSa, remote_ts: IPv4Network, local_ts: IPv4Network
) -> None:
    if sa.lan_to_lan is not None:  # network to network: inside the entry's lists
        if not sa.lan_to_lan.covers(local_ts, remote_ts):
            raise IkeProtocolError(
                f"LAN-to-LAN {sa.lan_to_lan.name!r}: {remote_ts} <-> {local_ts} is outside "
                "its network lists",
                notify=NotifyType.INVALID_ID_INFORMATION,
            )
        return
    assigned = sa.mode_config.address if sa.mode_config is not None else None
    if assigned is not None and remote_ts != host_network(assigned):
        raise IkeProtocolError(
            f"client ID {remote_ts} is not its assigned address {assigned}",
            notify=NotifyType.INVALID_ID_INFORMATION,
        )
    if not resp._may_reach(sa, local_ts):
        raise IkeProtocolError(
            f"responder ID {local_ts} not allowed", notify=NotifyType.INVALID_ID_INFORMATION
        )


def _client_may_answer(
    ini: Initiator, sa: IkeSa, remote_ts: IPv4Network, local_ts: IPv4Network
) -> None:
    """A gateway's quick mode: for a child we hold (its rekey), or from our address (the
    Mode-Config one once we have it) to a network we tunnel to."""
    if any(c.local_ts == local_ts and c.remote_ts == remote_ts for c in sa.children.values()):
        return
    if ini.config.modecfg != "none" and (sa.mode_config is None or sa.mode_config.address is None):
        raise IkeProtocolError(
            "gateway quick mode before Mode-Config gave us an address",
            notify=NotifyType.INVALID_ID_INFORMATION,
        )
    ours = (
        sa.mode_config.address
        if sa.mode_config is not None and sa.mode_config.address is not None
        else IPv4Address(sa.local[0])
    )
    if local_ts != host_network(ours):
        raise IkeProtocolError(
            f"gateway's ID for us {local_ts} is not our address {ours}",
            notify=NotifyType.INVALID_ID_INFORMATION,
        )
    networks = ini.config.remote_networks
    if ini.config.use_split_networks and sa.mode_config and sa.mode_config.split_include:
        networks = sa.mode_config.split_include
    if remote_ts not in networks:
        raise IkeProtocolError(
            f"gateway's network {remote_ts} is not one we tunnel to",
            notify=NotifyType.INVALID_ID_INFORMATION,
        )
