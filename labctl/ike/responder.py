"""The concentrator side: answers aggressive / main mode, runs XAUTH and Mode-Config, answers
quick modes, for many clients at once.

Design rules that come from the seed lab (several clients behind one PAT, same group):

* SAs are keyed by cookies, never by address; the reply always goes to the latest source
  (ip, port) seen on an authenticated message of that SA;
* INITIAL-CONTACT only removes SAs of the same group AND XAUTH user AND peer IP address
  (with plain PSK: the same group and the same ip:port), so two clients sharing a public IP
  and a group never knock each other off;
* a datagram identical to one already answered gets the cached answer again, nothing else.

IPsec over TCP (``receive(..., tcp=True)``, allowed when ``policy.tcp_port`` is set): an SA
started on a TCP connection stays on that connection (its peer endpoint never moves, and a
message of it arriving any other way is dropped), ignores NAT-T and IPsec-over-UDP requests
(TCP comes first on a VPN 3000) and keys its children in plain tunnel mode, reported as
encapsulation "tcp".
"""

from __future__ import annotations

from ipaddress import IPv4Network

from .codec import (
    Attribute,
    AttributePayload,
    DeletePayload,
    EncryptedMessage,
    HashPayload,
    Header,
    IdPayload,
    KePayload,
    Message,
    NatDPayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    VendorIdPayload,
    decode_header,
    decode_message,
)
from .config import GroupPolicy, ResponderPolicy
from .constants import (
    AuthMethod,
    CfgAttr,
    CfgType,
    ExchangeType,
    Flag,
    LifeType,
    NotifyType,
    P2Attr,
    ProtocolId,
)
from .crypto import modp_exchange, modp_length, random_bytes
from .engine import Collector, EngineBase, random_cookie, random_message_id
from .errors import DropCategory, IkeError, IkeProtocolError
from .events import (
    Datagram,
    Endpoint,
    ExchangeFailed,
    ModeConfigApplied,
    Output,
    PeerEndpointChanged,
    Phase1Established,
    Phase1Rekeyed,
    SaHandle,
    XauthResult,
)
from .hooks import ResponderHooks, SessionContext, XauthRequest
from .keys import hash_i, hash_r, qm_hash3
from .modecfg import ModeConfig
from .phase1 import (
    algorithms,
    check_natd,
    leading_vids,
    nat_status,
    natd_payloads,
    quick_encapsulation,
    setup_keys,
    trailing_vids,
)
from .proposals import choose_esp, choose_phase1
from .sa import IkeSa, QuickState
from .states import (
    XAUTH_UNDER_WAY,
    ModeCfgState,
    Phase1State,
    Role,
    TransactionKind,
    XauthState,
)
from .vendor import classify_vendor_ids

NONCE_LEN = 20


class Responder(EngineBase):
    """Sans-I/O IKEv1 responder.  See the package docstring for the calling convention."""

    role = Role.RESPONDER

    def __init__(self, policy: ResponderPolicy, hooks: ResponderHooks) -> None:
        super().__init__(policy.retransmit_interval, policy.retransmit_max)
        self.policy = policy
        self.hooks = hooks
        self._half_open: dict[tuple[bytes, Endpoint], IkeSa] = {}
        self._owner: dict[SaHandle, SessionContext] = {}  # who holds an assigned address
        self._rx_tcp = False  # transport of the message being handled (set by receive)

    # -- public API ----------------------------------------------------------------------------

    def receive(
        self, data: bytes, remote: Endpoint, local: Endpoint, now: float, *, tcp: bool = False
    ) -> Output:
        """Feed one IKE message (non-ESP marker already stripped); ``tcp``: it came on the
        IPsec-over-TCP connection from ``remote`` (replies carry ``Datagram.tcp``)."""
        out = Collector()
        sa: IkeSa | None = None
        header: Header | None = None
        self.stats["received"] += 1
        self._rx_tcp = tcp
        try:
            header = decode_header(data)
            if header.rcookie == bytes(8):
                if tcp and self.policy.tcp_port is None:
                    self.stats["tcp_disabled"] += 1
                    self._drop(
                        out,
                        remote,
                        "IPsec over TCP is not enabled",
                        category=DropCategory.REFUSED,
                        exchange=header.exchange,
                    )
                else:
                    sa = self._phase1_start(out, bytes(data), header, remote, local, now)
            else:
                sa = self.sas.get((header.icookie, header.rcookie))
                if sa is None:
                    self._unknown_sa(out, remote, header)
                elif sa.tcp != tcp or (tcp and remote != sa.remote):
                    self._wrong_transport(out, remote, sa, header)
                elif bytes(data) in sa.reply_cache:
                    self._answer_again(out, sa, bytes(data))
                else:
                    self._dispatch(out, sa, bytes(data), remote, local, now)
        except IkeError as exc:
            self._handle_error(out, remote, exc, sa, header)
        if sa is not None:
            self._schedule(sa)
        return self._finish(out)

    def delete(self, handle: SaHandle, now: float) -> Output:
        """Tear a phase-1 SA (and its children) down, telling the peer."""
        out = Collector()
        sa = self.sas.get((handle.icookie, handle.rcookie))
        if sa is not None:
            self._remove_sa(out, sa, "local", now, notify_peer=True)
        return self._finish(out)

    def delete_child(self, handle: SaHandle, inbound_spi: int, now: float) -> Output:
        out = Collector()
        sa = self.sas.get((handle.icookie, handle.rcookie))
        if sa is not None and inbound_spi in sa.children:
            self._remove_child(out, sa, sa.children[inbound_spi], "local", notify_peer=True)
            self._schedule(sa)
        return self._finish(out)

    def dpd(self, handle: SaHandle, now: float) -> Output:
        """Send an R-U-THERE now (PeerDead follows if it stays unanswered)."""
        out = Collector()
        sa = self.sas.get((handle.icookie, handle.rcookie))
        if sa is not None and sa.established:
            self._send_dpd(out, sa, now)
            self._schedule(sa)
        return self._finish(out)

    def note_traffic(self, handle: SaHandle, now: float) -> None:
        """ESP arrived for this SA: the peer is alive, postpone DPD."""
        sa = self.sas.get((handle.icookie, handle.rcookie))
        if sa is not None:
            sa.last_rx = max(sa.last_rx, now)
            self._schedule(sa)

    def sa_for_spi(self, inbound_spi: int) -> SaHandle | None:
        sa = self.inbound_spis.get(inbound_spi)
        return sa.handle if sa is not None else None

    def established(self) -> list[IkeSa]:
        return [sa for sa in self.sas.values() if sa.established]

    # -- engine hooks --------------------------------------------------------------------------

    def _natt_port(self) -> int:
        return self.policy.natt_port

    def _dpd_max(self) -> int:
        return self.policy.dpd_max_retries

    def _on_delete(self, out: Collector, sa: IkeSa, d: DeletePayload, now: float) -> None:
        if d.protocol == ProtocolId.ISAKMP and self.policy.vpnc_rekey_delete_quirk:
            d = self._vpnc_rekey_delete(sa, d, now)
        super()._on_delete(out, sa, d, now)

    def _vpnc_rekey_delete(self, sa: IkeSa, d: DeletePayload, now: float) -> DeletePayload:
        """vpnc up to 0.5.3+git20220927 (Debian bookworm) names the NEW SA when it deletes
        the old one after a phase-1 rekey (fixed upstream in streambinder/vpnc ef04936).
        Read "delete me" arriving on a freshly rekeyed SA as "delete my predecessor"."""
        predecessor = (
            self.sas.get((sa.replaces.icookie, sa.replaces.rcookie)) if sa.replaces else None
        )
        fresh = sa.established_at is not None and now - sa.established_at < 60
        if predecessor is None or not fresh:
            return d
        spis = []
        for spi in d.spis:
            if spi == sa.icookie + sa.rcookie:
                self.stats["vpnc_rekey_delete_quirk"] += 1
                spi = predecessor.icookie + predecessor.rcookie
            spis.append(spi)
        return DeletePayload(d.protocol, tuple(spis), d.spi_size, d.doi)

    def _on_removing(self, out: Collector, sa: IkeSa, reason: str) -> None:
        abandoned = sa.xauth in XAUTH_UNDER_WAY
        if sa.established and abandoned and reason != "xauth-failed":
            # the client gave up (or vanished) in the middle of XAUTH
            out.event(
                XauthResult(
                    sa.handle, sa.user or "", False, sa.xauth_attempts, f"XAUTH abandoned: {reason}"
                )
            )

    def _forget(self, sa: IkeSa) -> None:
        self._half_open.pop((sa.icookie, sa.first_remote), None)

    def _released(self, out: Collector, sa: IkeSa, successor: IkeSa | None) -> None:
        ctx = self._owner.pop(sa.handle, None)
        if ctx is None or sa.mode_config is None:
            return
        if successor is not None and successor.key in self.sas:
            self._owner[successor.handle] = ctx  # the address moves with the session
            return
        self.hooks.release_address(ctx, sa.mode_config)

    # -- phase 1: first message ----------------------------------------------------------------

    def _phase1_start(
        self, out: Collector, data: bytes, header, remote: Endpoint, local: Endpoint, now: float
    ) -> IkeSa | None:
        existing = self._half_open.get((header.icookie, remote))
        if existing is not None and existing.tcp != self._rx_tcp:
            existing = None  # same cookie and endpoint on the other transport: a new SA
        if existing is not None:
            if data in existing.reply_cache:
                self.stats["duplicates"] += 1
                for reply in existing.reply_cache[data]:
                    self._send(out, existing, reply)
            else:
                self._drop(
                    out,
                    remote,
                    "second first-message for a half-open SA",
                    sa=existing,
                    exchange=header.exchange,
                )
            return existing
        msg = decode_message(data)
        if not isinstance(msg, Message):
            raise IkeProtocolError("first message is encrypted", notify=NotifyType.INVALID_FLAGS)
        if msg.message_id != 0:
            raise IkeProtocolError(
                "phase-1 message with a message ID", notify=NotifyType.INVALID_MESSAGE_ID
            )
        crowd = sum(1 for (_, ep) in self._half_open if ep[0] == remote[0])
        if crowd >= self.policy.max_half_open_per_peer_ip:
            raise IkeProtocolError(
                f"too many half-open SAs from {remote[0]}", category=DropCategory.REFUSED
            )
        if msg.exchange == ExchangeType.AGGRESSIVE:
            return self._am1(out, msg, data, remote, local, now)
        if msg.exchange == ExchangeType.MAIN:
            return self._mm1(out, msg, data, remote, local, now)
        raise IkeProtocolError(
            f"exchange {msg.exchange} cannot start a phase-1 SA",
            notify=NotifyType.INVALID_EXCHANGE_TYPE,
        )

    def _plain_notify(
        self, out: Collector, msg: Message, remote: Endpoint, local: Endpoint, notify: int
    ) -> None:
        """Unauthenticated error notify for a rejected first message (tells vpnc quickly)."""
        reply = Message(
            msg.icookie,
            bytes(8),
            ExchangeType.INFORMATIONAL,
            (NotifyPayload(notify, ProtocolId.ISAKMP, msg.icookie + bytes(8)),),
        ).encode()
        tcp = self._rx_tcp
        marker = local[1] == self.policy.natt_port and not tcp
        out.datagrams.append(Datagram(reply, remote, local[1], marker, local[0], tcp=tcp))

    def _reject_first(self, out, msg, remote, local, reason: str, notify: int) -> None:
        self.stats["phase1_rejected"] += 1
        self._plain_notify(out, msg, remote, local, notify)
        out.event(ExchangeFailed(None, remote, "phase1", reason, notify))

    def _group_for(self, ident: IdPayload | None) -> GroupPolicy | None:
        if ident is None:
            return None
        name = ident.as_name()
        return self.policy.groups.get(name) if name is not None else None

    def _policy_for_group(self, group: GroupPolicy):
        wanted = AuthMethod.XAUTH_INIT_PSK if group.xauth else AuthMethod.PSK
        return tuple(p for p in self.policy.phase1 if p.auth == wanted)

    def _new_sa(self, msg: Message, mode: str, remote, local, now) -> IkeSa:
        sa = IkeSa(Role.RESPONDER, msg.icookie, random_cookie(), mode, local, remote, now)
        sa.dpd_idle = self.policy.dpd_idle
        sa.dpd_retry = self.policy.dpd_retry
        sa.tcp = self._rx_tcp
        sa.floated = local[1] == self.policy.natt_port and not sa.tcp
        sa.peer_vendor = classify_vendor_ids([v.data for v in msg.find(VendorIdPayload)])
        if self.policy.natt_enabled and not sa.tcp:  # TCP wins over NAT-T
            sa.natt = sa.peer_vendor.best_natt(self.policy.natt_versions)
            sa.natd_draft = sa.natt is not None and not sa.natt.is_rfc
        return sa

    def _am1(self, out, msg: Message, data, remote, local, now) -> IkeSa | None:
        sa_p = msg.first(SaPayload)
        ke = msg.first(KePayload)
        nonce = msg.first(NoncePayload)
        ident = msg.first(IdPayload)
        if sa_p is None or ke is None or nonce is None or ident is None:
            raise IkeProtocolError(
                "aggressive mode message 1 lacks SA, KE, NONCE or ID",
                notify=NotifyType.PAYLOAD_MALFORMED,
            )
        if not 8 <= len(nonce.data) <= 256:
            raise IkeProtocolError(
                f"nonce of {len(nonce.data)} bytes", notify=NotifyType.PAYLOAD_MALFORMED
            )
        group = self._group_for(ident)
        if group is None:
            self._reject_first(
                out,
                msg,
                remote,
                local,
                f"unknown group {ident.describe()}",
                NotifyType.INVALID_ID_INFORMATION,
            )
            return None
        ke_groups = [g for g in (1, 2, 5, 14) if modp_length(g) == len(ke.data)]
        try:
            choice = choose_phase1(
                sa_p, self._policy_for_group(group), ke_group=ke_groups[0] if ke_groups else -1
            )
        except IkeProtocolError as exc:
            self._reject_first(out, msg, remote, local, str(exc), NotifyType.NO_PROPOSAL_CHOSEN)
            return None
        sa = self._new_sa(msg, "aggressive", remote, local, now)
        dh = modp_exchange(choice.offer.group, None, None)
        gxy = modp_exchange(choice.offer.group, dh, ke.data)  # validates the peer's value
        sa.offer, sa.chosen = choice.offer, choice.policy
        sa.group, sa.group_name = group, group.name
        sa.peer_id = ident.describe()
        sa.gxi, sa.gxr = ke.data, dh.public
        sa.ni_b, sa.nr_b = nonce.data, random_bytes(NONCE_LEN)
        sa.sai_b = msg.raw_payload(self._payload_index(msg, SaPayload))[4:]
        sa.idi_b = msg.raw_payload(self._payload_index(msg, IdPayload))[4:]
        sa.lifetime = min(
            choice.offer.life_seconds or self.policy.ike_lifetime, self.policy.ike_lifetime
        )
        setup_keys(sa, group.psk, gxy)
        id_r = IdPayload.ipv4(local[0], 17, local[1])
        sa.idr_b = id_r.encode_body()
        digest = hash_r(
            sa.hash_id, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idr_b
        )
        reply_sa = SaPayload(
            (Proposal(choice.proposal_number, ProtocolId.ISAKMP, b"", (choice.transform,)),),
            sa_p.doi,
            sa_p.situation,
        )
        payloads: list = [
            reply_sa,
            KePayload(sa.gxr),
            NoncePayload(sa.nr_b),
            id_r,
            HashPayload(digest),
        ]
        payloads += leading_vids(self.policy.vendor, (sa.natt,) if sa.natt else ())
        if sa.natt is not None:
            payloads += natd_payloads(sa, remote, local)
        payloads += trailing_vids(self.policy.vendor)
        reply = Message(sa.icookie, sa.rcookie, ExchangeType.AGGRESSIVE, tuple(payloads)).encode()
        sa.state = Phase1State.AM_SENT2
        sa.deadline_for_msg = now + self.policy.half_open_timeout
        self.sas[sa.key] = sa
        self._half_open[(sa.icookie, remote)] = sa
        sa.remember_reply(data, (reply,))
        self._send(out, sa, reply)
        self.stats["am1"] += 1
        return sa

    def _mm1(self, out, msg: Message, data, remote, local, now) -> IkeSa | None:
        sa_p = msg.first(SaPayload)
        if sa_p is None:
            raise IkeProtocolError(
                "main mode message 1 without SA", notify=NotifyType.PAYLOAD_MALFORMED
            )
        group = (
            self.policy.groups.get(self.policy.main_mode_group)
            if self.policy.main_mode_group
            else None
        )
        if group is None:
            self._reject_first(
                out, msg, remote, local, "main mode not enabled", NotifyType.NO_PROPOSAL_CHOSEN
            )
            return None
        try:
            choice = choose_phase1(sa_p, self._policy_for_group(group))
        except IkeProtocolError as exc:
            self._reject_first(out, msg, remote, local, str(exc), NotifyType.NO_PROPOSAL_CHOSEN)
            return None
        sa = self._new_sa(msg, "main", remote, local, now)
        sa.offer, sa.chosen = choice.offer, choice.policy
        sa.group, sa.group_name = group, group.name
        sa.sai_b = msg.raw_payload(self._payload_index(msg, SaPayload))[4:]
        sa.lifetime = min(
            choice.offer.life_seconds or self.policy.ike_lifetime, self.policy.ike_lifetime
        )
        reply_sa = SaPayload(
            (Proposal(choice.proposal_number, ProtocolId.ISAKMP, b"", (choice.transform,)),),
            sa_p.doi,
            sa_p.situation,
        )
        payloads: list = [reply_sa]
        payloads += leading_vids(self.policy.vendor, (sa.natt,) if sa.natt else ())
        payloads += trailing_vids(self.policy.vendor)
        reply = Message(sa.icookie, sa.rcookie, ExchangeType.MAIN, tuple(payloads)).encode()
        sa.state = Phase1State.MM_SENT2
        sa.deadline_for_msg = now + self.policy.half_open_timeout
        self.sas[sa.key] = sa
        self._half_open[(sa.icookie, remote)] = sa
        sa.remember_reply(data, (reply,))
        self._send(out, sa, reply)
        self.stats["mm1"] += 1
        return sa

    # -- dispatch of later messages ------------------------------------------------------------

    def _dispatch(self, out, sa: IkeSa, data: bytes, remote, local, now) -> None:
        msg = decode_message(data)
        if isinstance(msg, Message):
            if sa.state == Phase1State.MM_SENT2 and msg.exchange == ExchangeType.MAIN:
                self._mm3(out, sa, msg, data, remote, local, now)
            elif msg.exchange == ExchangeType.INFORMATIONAL:
                self._plain_informational(out, sa, msg, remote)
            else:
                raise IkeProtocolError(
                    "unexpected unencrypted message", notify=NotifyType.INVALID_FLAGS
                )
            return
        ex, mid = msg.header.exchange, msg.header.message_id
        if sa.state == Phase1State.AM_SENT2 and ex == ExchangeType.AGGRESSIVE and mid == 0:
            self._am3(out, sa, msg, data, remote, local, now)
        elif sa.state == Phase1State.MM_SENT4 and ex == ExchangeType.MAIN and mid == 0:
            self._mm5(out, sa, msg, data, remote, local, now)
        elif not sa.established:
            raise IkeProtocolError(f"exchange {ex} before phase 1 completed")
        elif mid == 0:
            raise IkeProtocolError(
                "phase-2 message with M-ID 0", notify=NotifyType.INVALID_MESSAGE_ID
            )
        elif ex == ExchangeType.INFORMATIONAL:
            self._receive_informational(
                out, sa, msg, now, lambda: self._follow_peer(out, sa, remote, local)
            )
        elif ex == ExchangeType.TRANSACTION:
            self._transaction(out, sa, msg, data, remote, local, now)
        elif ex == ExchangeType.QUICK:
            self._quick(out, sa, msg, data, remote, local, now)
        else:
            raise IkeProtocolError(
                f"unsupported exchange type {ex}", notify=NotifyType.UNSUPPORTED_EXCHANGE_TYPE
            )

    def _follow_peer(self, out: Collector, sa: IkeSa, remote: Endpoint, local: Endpoint) -> None:
        """After an authenticated message: answer where it came from from now on."""
        if sa.key not in self.sas:
            return
        if remote != sa.remote or local != sa.local:
            old = sa.remote
            sa.remote, sa.local = remote, local
            if local[1] == self.policy.natt_port and sa.natt is not None:
                sa.floated = True
            out.event(PeerEndpointChanged(sa.handle, old, remote, local[1]))
            self.stats["endpoint_changes"] += 1

    # -- phase 1: completion -------------------------------------------------------------------

    def _am3(self, out, sa: IkeSa, enc: EncryptedMessage, data, remote, local, now) -> None:
        msg, last = sa.decrypt(enc)
        h = msg.first(HashPayload)
        if h is None:
            raise IkeProtocolError(
                "aggressive mode message 3 without HASH_I",
                notify=NotifyType.INVALID_HASH_INFORMATION,
            )
        expected = hash_i(
            sa.hash_id, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idi_b
        )
        if not _same(expected, h.data):
            sa.last_error = "HASH_I mismatch (wrong group password?)"
            raise IkeProtocolError(sa.last_error, notify=NotifyType.AUTHENTICATION_FAILED)
        sa.commit_iv(msg, last)
        sa.p1_last = last
        self._complete_phase1(out, sa, msg, data, remote, local, now)

    def _mm3(self, out, sa: IkeSa, msg: Message, data, remote, local, now) -> None:
        ke = msg.first(KePayload)
        nonce = msg.first(NoncePayload)
        if ke is None or nonce is None:
            raise IkeProtocolError(
                "main mode message 3 lacks KE or NONCE", notify=NotifyType.PAYLOAD_MALFORMED
            )
        if not 8 <= len(nonce.data) <= 256:
            raise IkeProtocolError(
                f"nonce of {len(nonce.data)} bytes", notify=NotifyType.PAYLOAD_MALFORMED
            )
        dh = modp_exchange(sa.offer.group, None, None)
        gxy = modp_exchange(sa.offer.group, dh, ke.data)
        sa.gxi, sa.gxr = ke.data, dh.public
        sa.ni_b, sa.nr_b = nonce.data, random_bytes(NONCE_LEN)
        setup_keys(sa, sa.group.psk, gxy)
        natds = [p for p in msg.payloads if isinstance(p, NatDPayload)]
        if sa.natt is not None and natds:
            sa.local_behind_nat, sa.remote_behind_nat = check_natd(sa, natds, local, remote)
        payloads: list = [KePayload(sa.gxr), NoncePayload(sa.nr_b)]
        if sa.natt is not None:
            payloads += natd_payloads(sa, remote, local)
        reply = Message(sa.icookie, sa.rcookie, ExchangeType.MAIN, tuple(payloads)).encode()
        sa.state = Phase1State.MM_SENT4
        sa.remember_reply(data, (reply,))
        self._send(out, sa, reply)

    def _mm5(self, out, sa: IkeSa, enc: EncryptedMessage, data, remote, local, now) -> None:
        msg, last = sa.decrypt(enc)
        ident = msg.first(IdPayload)
        h = msg.first(HashPayload)
        if ident is None or h is None:
            raise IkeProtocolError(
                "main mode message 5 lacks ID or HASH", notify=NotifyType.PAYLOAD_MALFORMED
            )
        idi_b = msg.raw_payload(self._payload_index(msg, IdPayload))[4:]
        expected = hash_i(
            sa.hash_id, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, idi_b
        )
        if not _same(expected, h.data):
            sa.last_error = "HASH_I mismatch (wrong pre-shared key?)"
            raise IkeProtocolError(sa.last_error, notify=NotifyType.AUTHENTICATION_FAILED)
        sa.commit_iv(msg, last)
        sa.idi_b = idi_b
        sa.peer_id = ident.describe()
        id_r = IdPayload.ipv4(local[0], 17, local[1])
        sa.idr_b = id_r.encode_body()
        digest = hash_r(
            sa.hash_id, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idr_b
        )
        reply = sa.encrypt(ExchangeType.MAIN, 0, [id_r, HashPayload(digest)])
        sa.p1_last = sa.p1_iv
        self._complete_phase1(out, sa, msg, data, remote, local, now, first_reply=reply)

    def _follow_peer_quietly(self, sa: IkeSa, remote, local) -> None:
        sa.remote, sa.local = remote, local
        if local[1] == self.policy.natt_port and sa.natt is not None:
            sa.floated = True

    def _complete_phase1(
        self,
        out,
        sa: IkeSa,
        msg: Message,
        data,
        remote,
        local,
        now,
        first_reply: bytes | None = None,
    ) -> None:
        if sa.mode == "aggressive" and sa.natt is not None:
            natds = [p for p in msg.payloads if isinstance(p, NatDPayload)]
            if natds:
                sa.local_behind_nat, sa.remote_behind_nat = check_natd(
                    sa, natds, sa.first_local, sa.first_remote
                )
        sa.initial_contact = any(
            n.notify_type == NotifyType.INITIAL_CONTACT for n in msg.find(NotifyPayload)
        )
        old_remote = sa.remote
        self._follow_peer_quietly(sa, remote, local)
        sa.state = Phase1State.ESTABLISHED
        sa.established_at = now
        sa.last_rx = now
        sa.expires_at = now + sa.lifetime
        sa.deadline_for_msg = None
        self._half_open.pop((sa.icookie, sa.first_remote), None)
        self.stats["phase1_established"] += 1
        if old_remote != remote:
            out.event(PeerEndpointChanged(sa.handle, old_remote, remote, local[1]))
        if first_reply is not None:
            self._send(out, sa, first_reply)
        xauth = sa.offer.auth == AuthMethod.XAUTH_INIT_PSK
        if not xauth:
            sa.user = None
            self._apply_initial_contact(out, sa, now)
            self._adopt_predecessor(out, sa)
        out.event(
            Phase1Established(
                handle=sa.handle,
                role=Role.RESPONDER,
                mode=sa.mode,
                peer=sa.remote,
                local=sa.local,
                algorithms=algorithms(sa),
                nat=nat_status(sa),
                group=sa.group_name,
                peer_id=sa.peer_id,
                xauth_pending=xauth,
                peer_vendor=sa.peer_vendor,
                replaces=sa.replaces,
                initial_contact=sa.initial_contact,
                enc_key=sa.keys.enc_key,
            )
        )
        replies: list[bytes] = [first_reply] if first_reply is not None else []
        if xauth:
            sa.xauth = XauthState.PENDING
            replies.append(self._xauth_request(out, sa, now))
        elif self.policy.modecfg_push:
            pushed = self._modecfg_push(out, sa, now)
            if pushed is None:
                return  # no address: the SA is gone
            replies.append(pushed)
        sa.remember_reply(data, tuple(replies))

    # -- transaction exchanges: XAUTH and Mode-Config ------------------------------------------

    def _xauth_request(self, out, sa: IkeSa, now) -> bytes:
        attrs = [
            Attribute(CfgAttr.XAUTH_TYPE, 0),
            Attribute(CfgAttr.XAUTH_USER_NAME, b""),
            Attribute(CfgAttr.XAUTH_USER_PASSWORD, b""),
        ]
        if self.policy.xauth_message:
            attrs.append(Attribute(CfgAttr.XAUTH_MESSAGE, self.policy.xauth_message.encode()))
        return self._start_transaction(out, sa, CfgType.REQUEST, attrs, "xauth", now)

    def _start_transaction(self, out, sa: IkeSa, cfg_type: int, attrs, what: str, now) -> bytes:
        mid = random_message_id()
        ident = int.from_bytes(random_bytes(2), "big") or 1
        payload = AttributePayload(cfg_type, ident, tuple(attrs))
        data = sa.protected(ExchangeType.TRANSACTION, mid, [payload])
        kind = TransactionKind(what)
        sa.transactions[mid] = kind
        self._request(out, sa, f"{kind}-{mid:08x}", data, kind.stage, now)
        return data

    def _transaction(self, out, sa: IkeSa, enc: EncryptedMessage, data, remote, local, now):
        msg, last = sa.decrypt(enc)
        sa.check_hash(msg)
        mid = msg.message_id
        if mid in sa.done_msgids:
            raise IkeProtocolError(f"replayed transaction M-ID {mid:08x}")
        attr = msg.first(AttributePayload)
        if attr is None or len(msg.payloads) != 2:
            raise IkeProtocolError(
                "transaction message must be HASH + one ATTR", notify=NotifyType.PAYLOAD_MALFORMED
            )
        pending = sa.transactions.get(mid)
        if pending is None and attr.cfg_type != CfgType.REQUEST:
            raise IkeProtocolError(
                f"unexpected transaction type {attr.cfg_type}", notify=NotifyType.PAYLOAD_MALFORMED
            )
        sa.commit_iv(msg, last)
        sa.last_rx = now
        self._follow_peer(out, sa, remote, local)
        if pending is not None:
            self._transaction_answer(out, sa, pending, attr, data, now, mid)
        else:
            self._modecfg_request(out, sa, attr, data, now, mid)

    def _transaction_answer(
        self, out, sa: IkeSa, what: TransactionKind, attr, data, now, mid
    ) -> None:
        if what == "xauth" and attr.cfg_type == CfgType.REPLY:
            self._answered(sa, f"xauth-{mid:08x}")
            del sa.transactions[mid]
            sa.mark_done(mid)
            self._xauth_reply(out, sa, attr, data, now)
        elif what in ("xauth-ok", "xauth-fail") and attr.cfg_type == CfgType.ACK:
            self._answered(sa, f"{what}-{mid:08x}")
            del sa.transactions[mid]
            sa.mark_done(mid)
            self._xauth_acked(out, sa, what == "xauth-ok", now)
        elif what == "modecfg" and attr.cfg_type == CfgType.ACK:
            self._answered(sa, f"modecfg-{mid:08x}")
            del sa.transactions[mid]
            sa.mark_done(mid)
            sa.modecfg_state = ModeCfgState.DONE
            self._after_modecfg(out, sa, now)
        else:
            raise IkeProtocolError(
                f"transaction {what}: unexpected cfg type {attr.cfg_type}",
                notify=NotifyType.PAYLOAD_MALFORMED,
            )

    def _xauth_reply(self, out, sa: IkeSa, attr: AttributePayload, data, now) -> None:
        user_a = attr.attr(CfgAttr.XAUTH_USER_NAME)
        pass_a = attr.attr(CfgAttr.XAUTH_USER_PASSWORD)
        user = (
            user_a.value.decode("utf-8", "replace")
            if user_a and isinstance(user_a.value, bytes)
            else ""
        )
        password = pass_a.value if pass_a and isinstance(pass_a.value, bytes) else b""
        sa.xauth_attempts += 1
        ok = bool(user) and self.hooks.authenticate(
            XauthRequest(
                sa.handle, sa.group_name or "", user, password, sa.remote, sa.xauth_attempts
            )
        )
        if ok:
            sa.user = user
            sa.xauth = XauthState.SET_SENT
            reply = self._start_transaction(
                out, sa, CfgType.SET, [Attribute(CfgAttr.XAUTH_STATUS, 1)], "xauth-ok", now
            )
        elif sa.xauth_attempts < self.policy.xauth_max_attempts:
            self.stats["xauth_retry"] += 1
            sa.user = user or None
            reply = self._xauth_request(out, sa, now)
        else:
            sa.user = user or None
            sa.xauth = XauthState.SET_SENT
            reply = self._start_transaction(
                out, sa, CfgType.SET, [Attribute(CfgAttr.XAUTH_STATUS, 0)], "xauth-fail", now
            )
        sa.remember_reply(data, (reply,))

    def _xauth_acked(self, out, sa: IkeSa, ok: bool, now) -> None:
        if not ok:
            sa.xauth = XauthState.FAILED
            self.stats["xauth_failed"] += 1
            out.event(
                XauthResult(
                    sa.handle, sa.user or "", False, sa.xauth_attempts, "bad user name or password"
                )
            )
            self._remove_sa(out, sa, "xauth-failed", now, notify_peer=True)
            return
        sa.xauth = XauthState.DONE
        sa.xauth_ok = True
        self.stats["xauth_ok"] += 1
        out.event(XauthResult(sa.handle, sa.user or "", True, sa.xauth_attempts))
        self._apply_initial_contact(out, sa, now)
        if self._adopt_predecessor(out, sa):
            self._send_p1_lifetime(out, sa)
        elif self.policy.modecfg_push:
            self._modecfg_push(out, sa, now)

    def _adopt_predecessor(self, out, sa: IkeSa) -> bool:
        """A new phase 1 from a client that already has a session is a phase-1 rekey
        (vpnc does XAUTH again, no Mode-Config): the session, address included, moves over."""
        predecessor = self._predecessor(sa)
        if predecessor is None or predecessor.mode_config is None:
            return False
        sa.replaces = predecessor.handle
        predecessor.replaced_by = sa.handle
        sa.mode_config = predecessor.mode_config
        sa.peer_app_version = predecessor.peer_app_version
        sa.modecfg_state = ModeCfgState.DONE
        sa.cisco_udp_port = predecessor.cisco_udp_port
        out.event(Phase1Rekeyed(sa.handle, predecessor.handle, sa.user))
        out.event(
            ModeConfigApplied(sa.handle, sa.user, sa.mode_config, sa.peer_app_version, "inherited")
        )
        return True

    def _modecfg_request(self, out, sa: IkeSa, attr: AttributePayload, data, now, mid) -> None:
        # A REQUEST while our XAUTH SET(OK) is unacknowledged means the ACK got lost.
        for smid, pending in list(sa.transactions.items()):
            if pending is TransactionKind.XAUTH_OK:
                self._answered(sa, f"xauth-ok-{smid:08x}")
                del sa.transactions[smid]
                sa.mark_done(smid)
                self._xauth_acked(out, sa, True, now)
        if sa.key not in self.sas:
            return
        if sa.offer.auth == AuthMethod.XAUTH_INIT_PSK and not sa.xauth_ok:
            raise IkeProtocolError("Mode-Config request before XAUTH succeeded")
        requested = {a.type for a in attr.attributes}
        peer_info = ModeConfig.from_attributes(
            tuple(
                a
                for a in attr.attributes
                if a.type in (CfgAttr.APPLICATION_VERSION, CfgAttr.UNITY_DDNS_HOSTNAME)
            )
        )
        if peer_info.app_version:
            sa.peer_app_version = peer_info.app_version
        config = self._session_config(
            out, sa, cisco_udp_requested=CfgAttr.UNITY_NATT_PORT in requested
        )
        if config is None:
            # As a VPN 3000: refuse (a REPLY without an address), then delete the IKE SA so
            # no half tunnel stays behind.
            refusal = AttributePayload(CfgType.REPLY, attr.identifier, ())
            self._send(out, sa, sa.protected(ExchangeType.TRANSACTION, mid, [refusal]))
            self._refuse_no_address(out, sa, now)
            return
        reply_attr = AttributePayload(
            CfgType.REPLY, attr.identifier, config.to_attributes(requested)
        )
        reply = sa.protected(ExchangeType.TRANSACTION, mid, [reply_attr])
        sa.mark_done(mid)
        self._send(out, sa, reply)
        sa.remember_reply(data, (reply,))
        first = sa.modecfg_state is not ModeCfgState.DONE
        sa.modecfg_state = ModeCfgState.DONE
        if first:
            out.event(ModeConfigApplied(sa.handle, sa.user, config, sa.peer_app_version, "pull"))
        self._after_modecfg(out, sa, now)

    def _refuse_no_address(self, out, sa: IkeSa, now) -> None:
        self.stats["modecfg_no_address"] += 1
        reason = f"no address available in the pool of group {sa.group_name}"
        self._remove_sa(out, sa, reason, now, notify_peer=True, failed_stage="modecfg")

    def _session_config(self, out, sa: IkeSa, *, cisco_udp_requested: bool) -> ModeConfig | None:
        """The address (from the hook, once per session) merged with the group's settings."""
        if sa.mode_config is None:
            ctx = SessionContext(
                sa.handle, sa.group_name or "", sa.user, sa.remote, sa.peer_app_version
            )
            assigned = self.hooks.assign_address(ctx)
            if assigned is None:
                return None
            base = sa.group.mode_config if sa.group is not None else ModeConfig()
            merged = _merge(base, assigned)
            self._owner[sa.handle] = ctx
            sa.mode_config = merged
        config = sa.mode_config
        port = None
        if sa.tcp:  # priority TCP, NAT-T, UDP (the seed's VPN 3000 note)
            port = self.policy.tcp_port or sa.local[1]
        elif sa.floated:
            port = self.policy.natt_port
        elif self.policy.cisco_udp_port is not None and cisco_udp_requested:
            port = self.policy.cisco_udp_port
            sa.cisco_udp_port = port
        from dataclasses import replace

        return replace(config, app_version=self.policy.app_version, udp_encap_port=port)

    def _modecfg_push(self, out, sa: IkeSa, now) -> bytes | None:
        """SET the client's settings; None (and the SA deleted) when no address is left."""
        config = self._session_config(out, sa, cisco_udp_requested=False)
        if config is None:
            self._refuse_no_address(out, sa, now)
            return None
        data = self._start_transaction(
            out, sa, CfgType.SET, list(config.to_attributes()), "modecfg", now
        )
        out.event(ModeConfigApplied(sa.handle, sa.user, config, sa.peer_app_version, "push"))
        return data

    def _after_modecfg(self, out, sa: IkeSa, now) -> None:
        self._send_p1_lifetime(out, sa)

    def _send_p1_lifetime(self, out, sa: IkeSa) -> None:
        offered = sa.offer.life_seconds
        if (
            self.policy.send_responder_lifetime
            and not sa.lifetime_notified
            and (offered is None or offered > sa.lifetime)
        ):
            sa.lifetime_notified = True
            self._send_informational(out, sa, [self._responder_lifetime_notify(sa)])

    # -- session identity: INITIAL-CONTACT and rekeys ------------------------------------------

    def _same_client(self, a: IkeSa, b: IkeSa) -> bool:
        if a.group_name != b.group_name:
            return False
        if a.user is not None or b.user is not None:
            return a.user == b.user and a.remote[0] == b.remote[0]
        return a.remote == b.remote

    def _apply_initial_contact(self, out, sa: IkeSa, now) -> None:
        if not sa.initial_contact:
            return
        for other in list(self.sas.values()):
            if other is not sa and other.established and self._same_client(sa, other):
                self.stats["initial_contact_removed"] += 1
                self._remove_sa(out, other, "initial-contact", now, notify_peer=False)

    def _predecessor(self, sa: IkeSa) -> IkeSa | None:
        best = None
        for other in self.sas.values():
            if (
                other is not sa
                and other.established
                and other.replaced_by is None
                and other.xauth_ok == sa.xauth_ok
                and self._same_client(sa, other)
                and (best is None or other.established_at > best.established_at)
            ):
                best = other
        return best

    # -- quick mode ----------------------------------------------------------------------------

    def _quick(self, out, sa: IkeSa, enc: EncryptedMessage, data, remote, local, now) -> None:
        mid = enc.header.message_id
        if mid in sa.done_msgids:
            raise IkeProtocolError(f"replayed quick mode M-ID {mid:08x}")
        if mid in sa.quick:
            self._quick3(out, sa, enc, remote, local, now)
        else:
            self._quick1(out, sa, enc, data, remote, local, now)

    def _quick1(self, out, sa: IkeSa, enc: EncryptedMessage, data, remote, local, now) -> None:
        msg, last = sa.decrypt(enc)
        sa.check_hash(msg)
        if enc.header.flags & Flag.COMMIT:
            raise IkeProtocolError("commit bit not supported", notify=NotifyType.INVALID_FLAGS)
        if sa.offer.auth == AuthMethod.XAUTH_INIT_PSK and not sa.xauth_ok:
            raise IkeProtocolError("quick mode before XAUTH succeeded")
        sa_p = msg.first(SaPayload)
        nonce = msg.first(NoncePayload)
        if sa_p is None or nonce is None:
            raise IkeProtocolError(
                "quick mode message 1 lacks SA or NONCE", notify=NotifyType.PAYLOAD_MALFORMED
            )
        if not 8 <= len(nonce.data) <= 256:
            raise IkeProtocolError(
                f"nonce of {len(nonce.data)} bytes", notify=NotifyType.PAYLOAD_MALFORMED
            )
        ids = msg.find(IdPayload)
        try:
            remote_ts, local_ts = self._quick_selectors(sa, ids)
            encap_ok = (3, 61443) if quick_encapsulation(sa) != 1 else (1,)
            choice = choose_esp(sa_p, self.policy.phase2, encap_ok)
        except IkeProtocolError as exc:
            # Authenticated but unacceptable: say why (vpnc and our initiator give up at once)
            refusals = (NotifyType.NO_PROPOSAL_CHOSEN, NotifyType.INVALID_ID_INFORMATION)
            notify = exc.notify if exc.notify in refusals else NotifyType.NO_PROPOSAL_CHOSEN
            sa.commit_iv(msg, last)
            sa.mark_done(msg.message_id)
            self._send_error_notify(out, sa, notify)
            out.event(ExchangeFailed(sa.handle, sa.remote, "quick", str(exc), notify))
            sa.remember_reply(data, ())
            return
        ke = msg.first(KePayload)
        gqm = None
        dh = None
        if choice.offer.pfs_group is not None:
            if ke is None:
                raise IkeProtocolError(
                    "PFS proposal without KE", notify=NotifyType.INVALID_KEY_INFORMATION
                )
            dh = modp_exchange(choice.offer.pfs_group, None, None)
            gqm = modp_exchange(choice.offer.pfs_group, dh, ke.data)
        elif ke is not None:
            raise IkeProtocolError(
                "KE without a PFS group", notify=NotifyType.INVALID_KEY_INFORMATION
            )
        # -- everything checked: commit
        sa.commit_iv(msg, last)
        sa.last_rx = now
        self._follow_peer(out, sa, remote, local)
        my_spi = self.new_spi()
        nr_b = random_bytes(NONCE_LEN)
        lifetime = min(
            choice.offer.life_seconds or self.policy.ipsec_lifetime, self.policy.ipsec_lifetime
        )
        child = self._make_child(
            sa,
            message_id=msg.message_id,
            my_spi=my_spi,
            peer_spi=choice.proposal.spi,
            offer=choice.offer,
            policy=choice.policy,
            ni_b=nonce.data,
            nr_b=nr_b,
            gqm=gqm,
            local_ts=local_ts,
            remote_ts=remote_ts,
            lifetime=lifetime,
            now=now,
        )
        payloads: list = [
            SaPayload(
                (Proposal(choice.proposal.number, ProtocolId.ESP, my_spi, (choice.transform,)),),
                sa_p.doi,
                sa_p.situation,
            ),
            NoncePayload(nr_b),
        ]
        if dh is not None:
            payloads.append(KePayload(dh.public))
        payloads += ids
        payloads += [p for p in msg.payloads if isinstance(p, NatOaPayload)]
        offered_life = choice.offer.life_seconds
        if self.policy.send_responder_lifetime and (
            offered_life is None or offered_life > lifetime
        ):
            life = (
                Attribute(P2Attr.LIFE_TYPE, LifeType.SECONDS).encode()
                + Attribute.number(P2Attr.LIFE_DURATION, lifetime).encode()
            )
            payloads.append(
                NotifyPayload(NotifyType.RESPONDER_LIFETIME, ProtocolId.ESP, my_spi, life)
            )
        reply = sa.protected(ExchangeType.QUICK, msg.message_id, payloads, prefix=nonce.data)
        self.inbound_spis[child.inbound_spi] = sa  # reserve the SPI now
        sa.quick[msg.message_id] = QuickState(
            msg.message_id,
            nonce.data,
            nr_b,
            my_spi=my_spi,
            local_ts=local_ts,
            remote_ts=remote_ts,
            started=now,
            pending_child=child,
            deadline=now + self.policy.exchange_timeout,
        )
        sa.remember_reply(data, (reply,))
        self._send(out, sa, reply)

    def _quick_selectors(self, sa: IkeSa, ids: list[IdPayload]):
        """(client network, our network) from IDci/IDcr, checked against the session."""
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
        else:
            remote_ts = IPv4Network(sa.remote[0])
            local_ts = IPv4Network(sa.local[0])
        self._check_traffic_selectors(sa, remote_ts, local_ts)
        return remote_ts, local_ts

    def _check_traffic_selectors(self, sa: IkeSa, remote_ts, local_ts) -> None:
        assigned = sa.mode_config.address if sa.mode_config is not None else None
        if assigned is not None and remote_ts != IPv4Network(assigned):
            raise IkeProtocolError(
                f"client ID {remote_ts} is not its assigned address {assigned}",
                notify=NotifyType.INVALID_ID_INFORMATION,
            )
        allowed = self.policy.allowed_remote_networks
        if sa.group is not None:
            allowed = allowed + sa.group.split_networks
        if not any(local_ts == n or local_ts.subnet_of(n) for n in allowed):
            raise IkeProtocolError(
                f"responder ID {local_ts} not allowed", notify=NotifyType.INVALID_ID_INFORMATION
            )

    def _quick3(self, out, sa: IkeSa, enc: EncryptedMessage, remote, local, now) -> None:
        q = sa.quick[enc.header.message_id]
        msg, last = sa.decrypt(enc)
        h = msg.first(HashPayload)
        if h is None or len(msg.payloads) != 1:
            raise IkeProtocolError(
                "quick mode message 3 must be a lone HASH", notify=NotifyType.PAYLOAD_MALFORMED
            )
        expected = qm_hash3(sa.hash_id, sa.keys.skeyid_a, msg.message_id, q.ni_b, q.nr_b)
        if not _same(expected, h.data):
            raise IkeProtocolError(
                "quick mode HASH(3) mismatch", notify=NotifyType.INVALID_HASH_INFORMATION
            )
        sa.commit_iv(msg, last)
        sa.last_rx = now
        self._follow_peer(out, sa, remote, local)
        del sa.quick[msg.message_id]
        sa.mark_done(msg.message_id)
        child = q.pending_child
        rekey_of = None
        for old in sa.children.values():
            if old.local_ts == child.local_ts and old.remote_ts == child.remote_ts:
                rekey_of = old.inbound_spi
        if rekey_of is None and sa.replaces is not None:
            pred = self.sas.get((sa.replaces.icookie, sa.replaces.rcookie))
            if pred is not None:
                for old in pred.children.values():
                    if old.local_ts == child.local_ts and old.remote_ts == child.remote_ts:
                        rekey_of = old.inbound_spi
        self._install_child(out, sa, child, rekey_of)
        self.stats["child_established"] += 1

    def _quick_timed_out(self, out, sa: IkeSa, q: QuickState, now) -> None:
        if q.pending_child is not None:
            self.inbound_spis.pop(q.pending_child.inbound_spi, None)
        sa.mark_done(q.message_id)


def _merge(base: ModeConfig, assigned: ModeConfig) -> ModeConfig:
    """Group settings, overridden by whatever the hook set."""
    from dataclasses import fields, replace

    changes = {}
    empty = ModeConfig()
    for f in fields(ModeConfig):
        value = getattr(assigned, f.name)
        if value != getattr(empty, f.name):
            changes[f.name] = value
    return replace(base, **changes)


def _same(a: bytes, b: bytes) -> bool:
    from cryptography.hazmat.primitives.constant_time import bytes_eq

    return bytes_eq(a, b)
