"""XAUTH (draft-ietf-ipsec-isakmp-xauth-06, generic user name / password), both roles, on
transaction exchanges after phase 1:

    R -> I  REQUEST (type, user name, password [, message])    I -> R  REPLY (the answers)
    R -> I  SET (status OK / FAIL)                             I -> R  ACK

A wrong password gets the request again, up to ``xauth_max_attempts``; then SET FAIL and
the SA is deleted once the client acknowledges it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..attributes import Attribute
from ..codec import AttributePayload
from ..constants import CfgAttr, CfgType, NotifyType
from ..errors import IkeProtocolError
from ..events import Collector, XauthResult
from ..hooks import XauthRequest
from ..sa import IkeSa
from ..states import TransactionKind, XauthState
from . import mode_config, transaction

if TYPE_CHECKING:
    from ..initiator import Initiator
    from ..responder import Responder
    from ..transitions import Inbound

_STATUS_OK, _STATUS_FAIL = 1, 0
_GENERIC = 0  # XAUTH-TYPE generic (user name and password)


# -- responder --------------------------------------------------------------------------------


def start(resp: Responder, out: Collector, sa: IkeSa, now: float) -> bytes:
    """Phase 1 is done: ask for the user's credentials."""
    sa.xauth = XauthState.PENDING
    return send_request(resp, out, sa, now)


# The gateway's XAUTH request: generic type, empty user name and password (made once).
_REQUEST = (
    Attribute(CfgAttr.XAUTH_TYPE, _GENERIC),
    Attribute(CfgAttr.XAUTH_USER_NAME, b""),
    Attribute(CfgAttr.XAUTH_USER_PASSWORD, b""),
)


def send_request(resp: Responder, out: Collector, sa: IkeSa, now: float) -> bytes:
    attrs = list(_REQUEST)
    if resp.policy.xauth_message:
        attrs.append(Attribute(CfgAttr.XAUTH_MESSAGE, resp.policy.xauth_message.encode()))
    return transaction.start(resp, out, sa, CfgType.REQUEST, attrs, TransactionKind.XAUTH, now)


def responder_reply(resp: Responder, out: Collector, sa: IkeSa, attr: AttributePayload, rx):
    """The user's answer: the hook decides; SET OK, the request again, or SET FAIL."""
    now = rx.now
    user_a = attr.attr(CfgAttr.XAUTH_USER_NAME)
    pass_a = attr.attr(CfgAttr.XAUTH_USER_PASSWORD)
    user = (
        user_a.value.decode("utf-8", "replace")
        if user_a and isinstance(user_a.value, bytes)
        else ""
    )
    password = pass_a.value if pass_a and isinstance(pass_a.value, bytes) else b""
    sa.xauth_attempts += 1
    ok = bool(user) and resp.hooks.authenticate(
        XauthRequest(sa.handle, sa.group_name or "", user, password, sa.remote, sa.xauth_attempts)
    )
    if ok:
        resp._set_user(sa, user)
        reply = _send_status(resp, out, sa, True, now)
    elif sa.xauth_attempts < resp.policy.xauth_max_attempts:
        resp.stats["xauth_retry"] += 1
        resp._set_user(sa, user or None)
        reply = send_request(resp, out, sa, now)
    else:
        resp._set_user(sa, user or None)
        reply = _send_status(resp, out, sa, False, now)
    sa.remember_reply(rx.data, (reply,))


def _send_status(resp: Responder, out: Collector, sa: IkeSa, ok: bool, now: float) -> bytes:
    sa.xauth = XauthState.SET_SENT
    status = [Attribute(CfgAttr.XAUTH_STATUS, _STATUS_OK if ok else _STATUS_FAIL)]
    kind = TransactionKind.XAUTH_OK if ok else TransactionKind.XAUTH_FAIL
    return transaction.start(resp, out, sa, CfgType.SET, status, kind, now)


def responder_ok_acked(resp: Responder, out: Collector, sa: IkeSa, attr, rx: Inbound):
    responder_acked(resp, out, sa, True, rx.now)


def responder_fail_acked(resp: Responder, out: Collector, sa: IkeSa, attr, rx: Inbound):
    responder_acked(resp, out, sa, False, rx.now)


def responder_acked(resp: Responder, out: Collector, sa: IkeSa, ok: bool, now: float) -> None:
    """The client acknowledged our status: fail (delete the SA) or carry on with the
    session -- INITIAL-CONTACT, a rekey's adoption, or a pushed Mode-Config."""
    if not ok:
        sa.xauth = XauthState.FAILED
        resp.stats["xauth_failed"] += 1
        out.event(
            XauthResult(
                sa.handle, sa.user or "", False, sa.xauth_attempts, "bad user name or password"
            )
        )
        resp._remove_sa(out, sa, "xauth-failed", now, notify_peer=True)
        return
    sa.xauth = XauthState.DONE
    sa.xauth_ok = True
    resp.stats["xauth_ok"] += 1
    out.event(XauthResult(sa.handle, sa.user or "", True, sa.xauth_attempts))
    resp._apply_initial_contact(out, sa, now)
    if resp._adopt_predecessor(out, sa):
        mode_config.send_p1_lifetime(resp, out, sa)
    elif resp.policy.modecfg_push:
        mode_config.push(resp, out, sa, now)


def settle_lost_ack(resp: Responder, out: Collector, sa: IkeSa, now: float) -> None:
    """A Mode-Config REQUEST while our SET OK is unacknowledged: the ACK got lost."""
    for mid, pending in list(sa.transactions.items()):
        if pending is TransactionKind.XAUTH_OK:
            transaction.settled(resp, sa, mid, pending)
            responder_acked(resp, out, sa, True, now)


# -- initiator --------------------------------------------------------------------------------


def initiator_request(ini: Initiator, out: Collector, sa: IkeSa, attr: AttributePayload, rx):
    """The gateway's REQUEST: answer with our user name and password."""
    if sa.xauth not in (XauthState.PENDING, XauthState.REQUESTED):
        raise IkeProtocolError("XAUTH request outside XAUTH", notify=NotifyType.PAYLOAD_MALFORMED)
    answer = []
    for a in attr.attributes:
        if a.type == CfgAttr.XAUTH_TYPE:
            if _number(a) != _GENERIC:
                raise IkeProtocolError(
                    "only generic XAUTH is supported", notify=NotifyType.ATTRIBUTES_NOT_SUPPORTED
                )
            answer.append(Attribute(a.type, _GENERIC))
        elif a.type == CfgAttr.XAUTH_USER_NAME:
            answer.append(Attribute(a.type, (ini.config.user or "").encode()))
        elif a.type in (CfgAttr.XAUTH_USER_PASSWORD, CfgAttr.XAUTH_PASSCODE):
            answer.append(Attribute(a.type, ini.config.password))
    sa.xauth = XauthState.REQUESTED
    sa.xauth_attempts += 1
    reply = AttributePayload(CfgType.REPLY, attr.identifier, tuple(answer))
    transaction.answer(ini, out, sa, rx, reply)


def initiator_status(ini: Initiator, out: Collector, sa: IkeSa, attr: AttributePayload, rx):
    """The gateway's SET status: acknowledge it; OK goes on to Mode-Config / quick mode."""
    status = attr.attr(CfgAttr.XAUTH_STATUS)
    ok = status is not None and _number(status) == _STATUS_OK
    ack = (Attribute(CfgAttr.XAUTH_STATUS, _STATUS_OK if ok else _STATUS_FAIL),)
    transaction.answer(ini, out, sa, rx, AttributePayload(CfgType.ACK, attr.identifier, ack))
    reason = "" if ok else "gateway rejected the credentials"
    out.event(XauthResult(sa.handle, ini.config.user or "", ok, sa.xauth_attempts, reason))
    if not ok:
        sa.xauth = XauthState.FAILED
        ini._remove_sa(out, sa, "xauth-failed", rx.now, notify_peer=False)
        return
    sa.xauth = XauthState.DONE
    sa.xauth_ok = True
    ini._after_auth(out, sa, rx.now)


def _number(a: Attribute) -> int:
    """A numeric attribute of the gateway's; an empty one is malformed, not a crash."""
    try:
        return a.as_int()
    except ValueError as exc:
        raise IkeProtocolError(str(exc), notify=NotifyType.PAYLOAD_MALFORMED) from None
