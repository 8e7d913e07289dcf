"""Mode-Config (draft-dukes-ike-mode-cfg, Cisco Unity attributes), both roles, on
transaction exchanges after phase 1 (and XAUTH):

    pull (vpnc):  I -> R  REQUEST (what it wants, its version)   R -> I  REPLY (the settings)
    push:         R -> I  SET (the settings)                     I -> R  ACK

The settings are a :class:`~labctl.ike.modecfg.ModeConfig` (one table encodes and decodes
them).  No address means no session: as a VPN 3000 with an empty pool, the gateway answers
without one and deletes the SA; the client fails the same way on such an answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..attributes import Attribute
from ..codec import AttributePayload
from ..constants import XAUTH_AFTER, CfgAttr, CfgType
from ..errors import IkeProtocolError
from ..events import Collector, ModeConfigApplied, ModeConfigReceived
from ..hooks import Refused
from ..modecfg import ModeConfig, request_attributes
from ..sa import IkeSa
from ..states import ModeCfgState, TransactionKind
from . import informational, transaction, xauth

if TYPE_CHECKING:
    from ..initiator import Initiator
    from ..responder import Responder
    from ..transitions import Inbound

# The attribute payload identifier of a client's REQUEST (vpnc's fixed value).
_REQUEST_IDENTIFIER = 20
# What a REQUEST tells about the client itself (not a question).
_CLIENT_INFO = (CfgAttr.APPLICATION_VERSION, CfgAttr.UNITY_DDNS_HOSTNAME)


# -- initiator --------------------------------------------------------------------------------


def request(ini: Initiator, out: Collector, sa: IkeSa, now: float) -> None:
    """Pull: ask for the settings (and the IPsec-over-UDP port when we may use it)."""
    cfg = ini.config
    attrs = request_attributes(
        cfg.modecfg_request,
        app_version=cfg.app_version,
        hostname=cfg.hostname,
        cisco_udp=cfg.natt.asks_transport_port,
    )
    sa.modecfg_state = ModeCfgState.PENDING
    kind = TransactionKind.MODECFG
    transaction.start(ini, out, sa, CfgType.REQUEST, attrs, kind, now, _REQUEST_IDENTIFIER)


def initiator_reply(ini: Initiator, out: Collector, sa: IkeSa, attr: AttributePayload, rx):
    initiator_received(ini, out, sa, attr, "pull", rx.now)


def initiator_set(ini: Initiator, out: Collector, sa: IkeSa, attr: AttributePayload, rx):
    """Push: acknowledge every variable attribute of the gateway's SET, then use them."""
    acked = tuple(Attribute(a.type, b"") for a in attr.attributes if not a.is_tv)
    transaction.answer(ini, out, sa, rx, AttributePayload(CfgType.ACK, attr.identifier, acked))
    initiator_received(ini, out, sa, attr, "push", rx.now)


def initiator_received(
    ini: Initiator, out: Collector, sa: IkeSa, attr: AttributePayload, style: str, now: float
) -> None:
    config = ModeConfig.from_attributes(attr.attributes)
    if config.address is None:
        # Nothing to tunnel from: a VPN 3000 says so when its pool is empty. No quick
        # mode, no half tunnel; the gateway is told (it may have deleted the SA already).
        ini.stats["modecfg_no_address"] += 1
        message = "reply" if style == "pull" else "SET"
        reason = (
            f"no address available from the concentrator's pool "
            f"(its Mode-Config {message} carried no address)"
        )
        ini._remove_sa(out, sa, reason, now, notify_peer=True, failed_stage="modecfg")
        return
    sa.mode_config = config
    ini.mode_config = config
    sa.modecfg_state = ModeCfgState.DONE
    if ini.config.natt.asks_cisco_udp and config.udp_encap_port and not sa.floated:
        sa.cisco_udp_port = config.udp_encap_port
    out.event(ModeConfigReceived(sa.handle, config, style))
    ini._start_quicks(out, sa, now)


# -- responder --------------------------------------------------------------------------------


def responder_request(resp: Responder, out: Collector, sa: IkeSa, attr: AttributePayload, rx):
    """Pull: answer with what the client asked for (its address from the hook)."""
    now, mid = rx.now, rx.header.message_id
    xauth.settle_lost_ack(resp, out, sa, now)
    if sa.key not in resp.sas:
        return
    if sa.negotiated.auth in XAUTH_AFTER and not sa.xauth_ok:
        raise IkeProtocolError("Mode-Config request before XAUTH succeeded")
    requested = {a.type for a in attr.attributes}
    peer_info = ModeConfig.from_attributes(
        tuple(a for a in attr.attributes if a.type in _CLIENT_INFO)
    )
    if peer_info.app_version:
        sa.peer_app_version = peer_info.app_version
    config = resp._session_config(sa, cisco_udp_requested=CfgAttr.UNITY_NATT_PORT in requested)
    if not isinstance(config, ModeConfig):
        # As a VPN 3000: refuse (a REPLY without an address), then delete the IKE SA so
        # no half tunnel stays behind.
        refusal = AttributePayload(CfgType.REPLY, attr.identifier, ())
        resp._send(out, sa, sa.protected(transaction.EXCHANGE, mid, [refusal]))
        _refuse_session(resp, out, sa, now, config)
        return
    reply = AttributePayload(CfgType.REPLY, attr.identifier, config.to_attributes(requested))
    transaction.answer(resp, out, sa, rx, reply)
    first = sa.modecfg_state is not ModeCfgState.DONE
    sa.modecfg_state = ModeCfgState.DONE
    if first:
        out.event(ModeConfigApplied(sa.handle, sa.user, config, sa.peer_app_version, "pull"))
    send_p1_lifetime(resp, out, sa)


def push(resp: Responder, out: Collector, sa: IkeSa, now: float) -> bytes | None:
    """SET the client's settings; None (and the SA deleted) when no address is left."""
    config = resp._session_config(sa, cisco_udp_requested=False)
    if not isinstance(config, ModeConfig):
        _refuse_session(resp, out, sa, now, config)
        return None
    attrs = list(config.to_attributes())
    data = transaction.start(resp, out, sa, CfgType.SET, attrs, TransactionKind.MODECFG, now)
    out.event(ModeConfigApplied(sa.handle, sa.user, config, sa.peer_app_version, "push"))
    return data


def responder_set_acked(resp: Responder, out: Collector, sa: IkeSa, attr, rx: Inbound):
    sa.modecfg_state = ModeCfgState.DONE
    send_p1_lifetime(resp, out, sa)


def send_p1_lifetime(resp: Responder, out: Collector, sa: IkeSa) -> None:
    """Once the session is configured: RESPONDER-LIFETIME when the client offered longer."""
    offered = sa.negotiated.life_seconds
    if (
        resp.policy.send_responder_lifetime
        and not sa.lifetime_notified
        and (offered is None or offered > sa.lifetime)
    ):
        sa.lifetime_notified = True
        notify = informational.responder_lifetime_notify(sa)
        resp._send_informational(out, sa, [notify])


def _refuse_session(
    resp: Responder, out: Collector, sa: IkeSa, now: float, refused: Refused | None
) -> None:
    if refused is None:
        resp.stats["modecfg_no_address"] += 1
        reason = f"no address available in the pool of group {sa.group_name}"
    else:
        resp.stats["modecfg_refused"] += 1
        reason = refused.reason
    resp._remove_sa(out, sa, reason, now, notify_peer=True, failed_stage="modecfg")
