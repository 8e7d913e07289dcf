"""The client side: one connection to one gateway (aggressive or main mode, XAUTH,
Mode-Config pull or push, one quick mode per remote network), with retransmission, DPD,
rekeying of both phases, and deletes."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from .codec import (
    Attribute,
    AttributePayload,
    EncryptedMessage,
    HashPayload,
    Header,
    IdPayload,
    KePayload,
    Message,
    NatDPayload,
    NoncePayload,
    NotifyPayload,
    SaPayload,
    VendorIdPayload,
    decode_header,
    decode_message,
)
from .config import InitiatorConfig, NattMode
from .constants import (
    AuthMethod,
    CfgAttr,
    CfgType,
    ExchangeType,
    IdType,
    NotifyType,
    ProtocolId,
)
from .crypto import modp_exchange, modp_length, random_bytes
from .engine import (
    Collector,
    EngineBase,
    random_cookie,
    random_message_id,
    responder_lifetime_seconds,
)
from .errors import IkeError, IkeProtocolError
from .events import (
    Endpoint,
    ExchangeFailed,
    ModeConfigReceived,
    NotifyReceived,
    Output,
    PeerEndpointChanged,
    Phase1Established,
    Phase1Rekeyed,
    SaHandle,
    XauthResult,
)
from .keys import hash_i, hash_r, qm_hash3
from .modecfg import ModeConfig, request_attributes
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
from .proposals import accept_esp_reply, accept_phase1_reply, phase1_sa, phase2_sa
from .sa import ChildSa, IkeSa, QuickState
from .states import ModeCfgState, Phase1State, Role, TransactionKind, XauthState
from .vendor import VID_VPNC_AM3, classify_vendor_ids

NONCE_LEN = 20


class Initiator(EngineBase):
    """Sans-I/O IKEv1 initiator for one gateway.  See the package docstring."""

    role = Role.INITIATOR

    def __init__(self, config: InitiatorConfig) -> None:
        super().__init__(config.retransmit_interval, config.retransmit_max)
        self.config = config
        self._connecting: dict[bytes, IkeSa] = {}  # icookie -> SA waiting for message 2
        self.current: IkeSa | None = None
        self.mode_config: ModeConfig | None = None
        self._local: Endpoint | None = None
        self._remote: Endpoint | None = None

    # -- public API ----------------------------------------------------------------------------

    def start(self, now: float, local: Endpoint, remote: Endpoint) -> Output:
        """Begin phase 1 from ``local`` (ip, IKE port) to ``remote`` (gateway ip, 500)."""
        out = Collector()
        self._local, self._remote = local, remote
        sa = self._begin_phase1(out, now, local, remote)
        self._schedule_connecting(sa)
        return self._finish(out)

    def receive(
        self, data: bytes, remote: Endpoint, local: Endpoint, now: float, *, tcp: bool = False
    ) -> Output:
        """Feed one IKE message; ``tcp``: it came on the IPsec-over-TCP connection."""
        out = Collector()
        sa: IkeSa | None = None
        header: Header | None = None
        self.stats["received"] += 1
        data = bytes(data)
        try:
            header = decode_header(data)
            connecting = self._connecting.get(header.icookie)
            if connecting is not None and connecting.tcp != tcp:
                self.stats["wrong_transport"] += 1
                self._drop(
                    out,
                    remote,
                    "reply on another transport",
                    sa=connecting,
                    exchange=header.exchange,
                )
            elif connecting is not None:
                sa = connecting
                if data in sa.reply_cache:
                    self.stats["duplicates"] += 1
                else:
                    self._phase1_reply(out, sa, data, remote, local, now)
            else:
                sa = self.sas.get((header.icookie, header.rcookie))
                if sa is None:
                    self._unknown_sa(out, remote, header)
                elif sa.tcp != tcp:
                    self._wrong_transport(out, remote, sa, header)
                elif data in sa.reply_cache:
                    self._answer_again(out, sa, data)
                else:
                    self._dispatch(out, sa, data, remote, local, now)
        except IkeError as exc:
            self._handle_error(out, remote, exc, sa, header)
        if sa is not None:
            self._schedule_connecting(sa)
        return self._finish(out)

    def delete(self, now: float) -> Output:
        """Disconnect: delete every child and phase-1 SA, telling the gateway."""
        out = Collector()
        for sa in list(self.sas.values()):
            self._remove_sa(out, sa, "local", now, notify_peer=True)
        self._connecting.clear()
        self.current = None
        return self._finish(out)

    def dpd(self, now: float) -> Output:
        out = Collector()
        if self.current is not None and self.current.established:
            self._send_dpd(out, self.current, now)
            self._schedule(self.current)
        return self._finish(out)

    def rekey_phase1(self, now: float) -> Output:
        out = Collector()
        if self.current is not None and self.current.established:
            self._rekey_phase1(out, self.current, now)
            self._schedule(self.current)
        return self._finish(out)

    def rekey_child(self, inbound_spi: int, now: float) -> Output:
        out = Collector()
        sa = self.current
        if sa is not None and inbound_spi in sa.children:
            self._rekey_child(out, sa, sa.children[inbound_spi], now)
            self._schedule(sa)
        return self._finish(out)

    def add_child(self, remote_network: str | IPv4Network, now: float) -> Output:
        """Negotiate one more ESP SA pair (e.g. for another split network)."""
        out = Collector()
        sa = self.current
        if sa is not None and sa.established:
            self._start_quick(out, sa, IPv4Network(remote_network), now)
            self._schedule(sa)
        return self._finish(out)

    @property
    def handle(self) -> SaHandle | None:
        return self.current.handle if self.current is not None else None

    def children(self) -> list[ChildSa]:
        return list(self.current.children.values()) if self.current is not None else []

    # -- engine hooks --------------------------------------------------------------------------

    def _natt_port(self) -> int:
        return self.config.natt_port

    def _dpd_max(self) -> int:
        return self.config.dpd_max_retries

    def _schedule_connecting(self, sa: IkeSa) -> None:
        if sa.key in self.sas:
            self._schedule(sa)
        elif sa.icookie in self._connecting:
            # Not yet keyed by both cookies: schedule under a temporary entry.
            self.sas[sa.key] = sa
            self._schedule(sa)

    def _forget(self, sa: IkeSa) -> None:
        self._connecting.pop(sa.icookie, None)
        if self.current is sa:
            self.current = None

    def _set_rekey(self, sa: IkeSa) -> None:
        if self.config.auto_rekey and sa.established_at is not None:
            sa.rekey_at = sa.established_at + sa.lifetime * (1 - self.config.rekey_margin)

    def _set_child_rekey(self, child: ChildSa) -> None:
        if self.config.auto_rekey:
            child.rekey_at = child.established + child.lifetime * (1 - self.config.rekey_margin)

    # -- phase 1 -------------------------------------------------------------------------------

    def _vendor_ids(self) -> list[VendorIdPayload]:
        cfg = self.config
        natt = cfg.natt_versions if cfg.natt.offers_natt else ()
        vids = leading_vids(cfg.vendor, natt)
        if cfg.dpd_idle is None:
            from .vendor import VID_DPD

            vids = [v for v in vids if v.data != VID_DPD]
        return vids + trailing_vids(cfg.vendor)

    def _identity(self) -> IdPayload:
        if self.config.id_type == IdType.FQDN:
            return IdPayload.fqdn(self.config.group)
        if self.config.id_type == IdType.USER_FQDN:
            return IdPayload(IdType.USER_FQDN, self.config.group.encode(), 17, 500)
        return IdPayload.key_id(self.config.group)

    def _begin_phase1(self, out: Collector, now: float, local: Endpoint, remote: Endpoint):
        cfg = self.config
        sa = IkeSa(Role.INITIATOR, random_cookie(), bytes(8), cfg.exchange, local, remote, now)
        sa.dpd_idle = cfg.dpd_idle
        sa.dpd_retry = cfg.dpd_retry
        sa.tcp = cfg.natt is NattMode.TCP
        sa.floated = local[1] == cfg.natt_port and not sa.tcp
        sa.group_name = cfg.group
        sa.user = cfg.user
        sa_payload = phase1_sa(cfg.phase1)
        sa.sai_b = sa_payload.encode_body()
        if cfg.exchange == "aggressive":
            group = cfg.phase1[0].group
            sa.dh = modp_exchange(group, None, None)
            sa.gxi = sa.dh.public
            sa.ni_b = random_bytes(NONCE_LEN)
            ident = self._identity()
            sa.idi_b = ident.encode_body()
            payloads = [sa_payload, KePayload(sa.gxi), NoncePayload(sa.ni_b), ident]
            payloads += self._vendor_ids()
            sa.state = Phase1State.AM_SENT1
            stage_key = "am1"
            exchange = ExchangeType.AGGRESSIVE
        else:
            payloads = [sa_payload, *self._vendor_ids()]
            sa.state = Phase1State.MM_SENT1
            stage_key = "mm1"
            exchange = ExchangeType.MAIN
        data = Message(sa.icookie, bytes(8), exchange, tuple(payloads)).encode()
        self._connecting[sa.icookie] = sa
        self._request(out, sa, stage_key, data, "phase1", now)
        if self.current is None:
            self.current = sa
        self.stats["phase1_started"] += 1
        return sa

    def _rekey_phase1(self, out: Collector, sa: IkeSa, now: float) -> None:
        sa.rekey_started = True
        new = self._begin_phase1(out, now, sa.local, sa.remote)
        new.replaces = sa.handle
        self._schedule_connecting(new)

    def _phase1_reply(self, out, sa: IkeSa, data: bytes, remote, local, now) -> None:
        msg = decode_message(data)
        if not isinstance(msg, Message):
            raise IkeProtocolError(
                "phase-1 reply unexpectedly encrypted", notify=NotifyType.INVALID_FLAGS
            )
        if msg.exchange == ExchangeType.INFORMATIONAL:
            notes = msg.find(NotifyPayload)
            reason = ", ".join(_notify_name(n.notify_type) for n in notes) or "notify"
            self._fail_connecting(
                out, sa, f"gateway refused: {reason}", now, notes[0].notify_type if notes else None
            )
            return
        if msg.message_id != 0 or msg.flags != 0:
            raise IkeProtocolError(
                "phase-1 reply with flags or message ID", notify=NotifyType.INVALID_FLAGS
            )
        if sa.state == Phase1State.AM_SENT1 and msg.exchange == ExchangeType.AGGRESSIVE:
            self._am2(out, sa, msg, data, remote, local, now)
        elif sa.state == Phase1State.MM_SENT1 and msg.exchange == ExchangeType.MAIN:
            self._mm2(out, sa, msg, data, now)
        else:
            raise IkeProtocolError(
                f"unexpected exchange {msg.exchange} in {sa.state}",
                notify=NotifyType.INVALID_EXCHANGE_TYPE,
            )

    def _fail_connecting(self, out, sa: IkeSa, reason: str, now, notify=None) -> None:
        self._connecting.pop(sa.icookie, None)
        self.sas.pop(sa.key, None)
        self._remember_removed(sa.key)
        sa.retransmits.clear()
        if self.current is sa:
            self.current = None
        out.event(ExchangeFailed(None, sa.remote, "phase1", reason, notify))

    def _key_in(self, sa: IkeSa, new_rcookie: bytes) -> None:
        """Message 2 told us the responder cookie: re-key the SA tables."""
        self._connecting.pop(sa.icookie, None)
        self.sas.pop(sa.key, None)
        sa.rcookie = new_rcookie
        self.sas[sa.key] = sa

    def _peer_natt(self, sa: IkeSa, msg: Message) -> None:
        sa.peer_vendor = classify_vendor_ids([v.data for v in msg.find(VendorIdPayload)])
        if self.config.natt.offers_natt:
            sa.natt = sa.peer_vendor.best_natt(self.config.natt_versions)
        natds = [p for p in msg.payloads if isinstance(p, NatDPayload)]
        if natds and sa.natt is not None:
            sa.natd_draft = natds[0].draft

    def _detect_nat(self, sa: IkeSa, msg: Message, me: Endpoint, peer: Endpoint) -> None:
        natds = [p for p in msg.payloads if isinstance(p, NatDPayload)]
        if sa.natt is None or not natds:
            sa.natt = None if not natds else sa.natt
            return
        sa.local_behind_nat, sa.remote_behind_nat = check_natd(sa, natds, me, peer)
        if self.config.natt is NattMode.FORCE:
            sa.local_behind_nat = True

    def _am2(self, out, sa: IkeSa, msg: Message, data, remote, local, now) -> None:
        cfg = self.config
        sa_p = msg.first(SaPayload)
        ke = msg.first(KePayload)
        nonce = msg.first(NoncePayload)
        ident = msg.first(IdPayload)
        h = msg.first(HashPayload)
        if None in (sa_p, ke, nonce, ident, h):
            raise IkeProtocolError(
                "aggressive mode message 2 lacks a payload", notify=NotifyType.PAYLOAD_MALFORMED
            )
        for n in msg.find(NotifyPayload):
            if n.notify_type != NotifyType.RESPONDER_LIFETIME:
                raise IkeProtocolError(f"unexpected notify {n.notify_type} in message 2")
        offer, chosen = accept_phase1_reply(sa_p, cfg.phase1)
        if len(ke.data) != modp_length(offer.group):
            raise IkeProtocolError(
                "responder KE has the wrong length", notify=NotifyType.INVALID_KEY_INFORMATION
            )
        gxy = modp_exchange(offer.group, sa.dh, ke.data)
        idr_b = msg.raw_payload(self._payload_index(msg, IdPayload))[4:]
        trial = IkeSa(Role.INITIATOR, sa.icookie, msg.rcookie, sa.mode, sa.local, sa.remote, now)
        trial.offer, trial.ni_b, trial.nr_b = offer, sa.ni_b, nonce.data
        trial.gxi, trial.gxr = sa.gxi, ke.data
        setup_keys(trial, cfg.psk, gxy)
        expected = hash_r(
            trial.hash_id,
            trial.keys.skeyid,
            sa.gxi,
            ke.data,
            sa.icookie,
            msg.rcookie,
            sa.sai_b,
            idr_b,
        )
        if not _same(expected, h.data):
            self._fail_connecting(
                out,
                sa,
                "HASH_R mismatch (wrong group password?)",
                now,
                NotifyType.AUTHENTICATION_FAILED,
            )
            return
        # authenticated: adopt
        self._answered(sa, "am1")
        self._key_in(sa, msg.rcookie)
        sa.offer, sa.chosen = offer, chosen
        sa.nr_b, sa.gxr = nonce.data, ke.data
        sa.cipher, sa.hash_id, sa.keys, sa.p1_iv = (
            trial.cipher,
            trial.hash_id,
            trial.keys,
            trial.p1_iv,
        )
        sa.idr_b = idr_b
        sa.peer_id = ident.describe()
        sa.lifetime = min(offer.life_seconds or chosen.lifetime, chosen.lifetime)
        for n in msg.find(NotifyPayload):
            self._on_responder_lifetime(sa, n, now)
        self._peer_natt(sa, msg)
        self._detect_nat(sa, msg, sa.local, sa.remote)
        digest = hash_i(
            sa.hash_id, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idi_b
        )
        payloads: list = [HashPayload(digest)]
        if cfg.initial_contact and sa.replaces is None:
            payloads.append(
                NotifyPayload(
                    NotifyType.INITIAL_CONTACT, ProtocolId.ISAKMP, sa.icookie + sa.rcookie
                )
            )
        payloads.append(VendorIdPayload(VID_VPNC_AM3))
        if sa.natt is not None and sa.peer_vendor.natt_versions:
            payloads += natd_payloads(sa, sa.remote, sa.local, fake_nat=cfg.natt is NattMode.FORCE)
        old_remote = sa.remote
        self._maybe_float(sa)
        msg3 = sa.encrypt(ExchangeType.AGGRESSIVE, 0, payloads)
        sa.p1_last = sa.p1_iv
        sa.remember_reply(data, (msg3,))
        self._established(out, sa, now, old_remote)
        xauth = offer.auth == AuthMethod.XAUTH_INIT_PSK
        if xauth:
            # message 3 has no reply of its own: resend it until XAUTH starts
            self._request(out, sa, "am3", msg3, "phase1", now)
        else:
            self._send(out, sa, msg3)
            self._after_auth(out, sa, now)

    def _maybe_float(self, sa: IkeSa) -> None:
        nat = sa.local_behind_nat or sa.remote_behind_nat
        if sa.natt is not None and nat and not sa.floated:
            port = self.config.natt_port
            sa.local = (sa.local[0], port)
            sa.remote = (sa.remote[0], port)
            sa.floated = True

    def _mm2(self, out, sa: IkeSa, msg: Message, data, now) -> None:
        sa_p = msg.first(SaPayload)
        if sa_p is None:
            raise IkeProtocolError(
                "main mode message 2 without SA", notify=NotifyType.PAYLOAD_MALFORMED
            )
        offer, chosen = accept_phase1_reply(sa_p, self.config.phase1)
        self._answered(sa, "mm1")
        self._key_in(sa, msg.rcookie)
        sa.offer, sa.chosen = offer, chosen
        sa.hash_id = offer.hash
        sa.lifetime = min(offer.life_seconds or chosen.lifetime, chosen.lifetime)
        self._peer_natt(sa, msg)
        sa.dh = modp_exchange(offer.group, None, None)
        sa.gxi = sa.dh.public
        sa.ni_b = random_bytes(NONCE_LEN)
        payloads: list = [KePayload(sa.gxi), NoncePayload(sa.ni_b)]
        if sa.natt is not None:
            sa.natd_draft = not sa.natt.is_rfc
            payloads += natd_payloads(
                sa, sa.remote, sa.local, fake_nat=self.config.natt is NattMode.FORCE
            )
        msg3 = Message(sa.icookie, sa.rcookie, ExchangeType.MAIN, tuple(payloads)).encode()
        sa.state = Phase1State.MM_SENT3
        sa.remember_reply(data, (msg3,))
        self._request(out, sa, "mm3", msg3, "phase1", now)

    def _mm4(self, out, sa: IkeSa, msg: Message, data, now) -> None:
        ke = msg.first(KePayload)
        nonce = msg.first(NoncePayload)
        if ke is None or nonce is None:
            raise IkeProtocolError(
                "main mode message 4 lacks KE or NONCE", notify=NotifyType.PAYLOAD_MALFORMED
            )
        gxy = modp_exchange(sa.offer.group, sa.dh, ke.data)
        self._answered(sa, "mm3")
        sa.gxr, sa.nr_b = ke.data, nonce.data
        setup_keys(sa, self.config.psk, gxy)
        self._detect_nat(sa, msg, sa.local, sa.remote)
        ident = self._identity()
        sa.idi_b = ident.encode_body()
        digest = hash_i(
            sa.hash_id, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, sa.idi_b
        )
        payloads: list = [ident, HashPayload(digest)]
        if self.config.initial_contact and sa.replaces is None:
            payloads.append(
                NotifyPayload(
                    NotifyType.INITIAL_CONTACT, ProtocolId.ISAKMP, sa.icookie + sa.rcookie
                )
            )
        self._maybe_float(sa)
        msg5 = sa.encrypt(ExchangeType.MAIN, 0, payloads)
        sa.state = Phase1State.MM_SENT5
        sa.remember_reply(data, (msg5,))
        self._request(out, sa, "mm5", msg5, "phase1", now)

    def _mm6(self, out, sa: IkeSa, enc: EncryptedMessage, now) -> None:
        msg, last = sa.decrypt(enc)
        ident = msg.first(IdPayload)
        h = msg.first(HashPayload)
        if ident is None or h is None:
            raise IkeProtocolError(
                "main mode message 6 lacks ID or HASH", notify=NotifyType.PAYLOAD_MALFORMED
            )
        idr_b = msg.raw_payload(self._payload_index(msg, IdPayload))[4:]
        expected = hash_r(
            sa.hash_id, sa.keys.skeyid, sa.gxi, sa.gxr, sa.icookie, sa.rcookie, sa.sai_b, idr_b
        )
        if not _same(expected, h.data):
            self._answered(sa, "mm5")
            self._remove_sa(
                out,
                sa,
                "HASH_R mismatch (wrong pre-shared key?)",
                now,
                notify_peer=False,
                failed_stage="phase1",
            )
            return
        self._answered(sa, "mm5")
        sa.commit_iv(msg, last)
        sa.p1_last = last
        sa.idr_b = idr_b
        sa.peer_id = ident.describe()
        self._established(out, sa, now, sa.first_remote)
        if sa.offer.auth != AuthMethod.XAUTH_INIT_PSK:
            self._after_auth(out, sa, now)

    def _established(self, out, sa: IkeSa, now, old_remote: Endpoint) -> None:
        sa.state = Phase1State.ESTABLISHED
        sa.established_at = now
        sa.last_rx = now
        sa.expires_at = now + sa.lifetime
        self._set_rekey(sa)
        xauth = sa.offer.auth == AuthMethod.XAUTH_INIT_PSK
        sa.xauth = XauthState.PENDING if xauth else XauthState.NONE
        if self.config.altiga_keepalive_interval:
            sa.next_heartbeat = now + self.config.altiga_keepalive_interval
        if sa.replaces is None:
            self.current = sa
        self.stats["phase1_established"] += 1
        if old_remote != sa.remote:
            out.event(PeerEndpointChanged(sa.handle, old_remote, sa.remote, sa.local[1]))
        out.event(
            Phase1Established(
                handle=sa.handle,
                role=Role.INITIATOR,
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
                initial_contact=self.config.initial_contact and sa.replaces is None,
                enc_key=sa.keys.enc_key,
            )
        )

    def _after_auth(self, out, sa: IkeSa, now) -> None:
        """Phase 1 (and XAUTH, if any) done: Mode-Config, then quick modes."""
        if sa.replaces is not None:
            self._finish_rekey(out, sa, now)
            return
        style = self.config.modecfg
        if style == "pull":
            attrs = request_attributes(
                self.config.modecfg_request,
                app_version=self.config.app_version,
                hostname=self.config.hostname,
                cisco_udp=self.config.natt.asks_cisco_udp,
            )
            mid = random_message_id()
            payload = AttributePayload(CfgType.REQUEST, 20, attrs)
            data = sa.protected(ExchangeType.TRANSACTION, mid, [payload])
            sa.transactions[mid] = TransactionKind.MODECFG
            sa.modecfg_state = ModeCfgState.PENDING
            self._request(out, sa, f"modecfg-{mid:08x}", data, "modecfg", now)
        elif style == "push":
            sa.modecfg_state = ModeCfgState.PENDING
        else:
            self._start_quicks(out, sa, now)

    def _finish_rekey(self, out, sa: IkeSa, now) -> None:
        old = self.sas.get((sa.replaces.icookie, sa.replaces.rcookie))
        self.current = sa
        if old is None:
            return
        old.replaced_by = sa.handle
        out.event(Phase1Rekeyed(sa.handle, old.handle, sa.user))
        sa.mode_config = old.mode_config
        sa.cisco_udp_port = old.cisco_udp_port
        # tell the gateway over the NEW SA that the old one is gone (as vpnc does)
        from .codec import DeletePayload

        self._send_informational(
            out, sa, [DeletePayload(ProtocolId.ISAKMP, (old.icookie + old.rcookie,), 16)]
        )
        self._remove_sa(out, old, "rekeyed", now, notify_peer=False)

    # -- later messages ------------------------------------------------------------------------

    def _dispatch(self, out, sa: IkeSa, data: bytes, remote, local, now) -> None:
        msg = decode_message(data)
        if isinstance(msg, Message):
            if sa.state == Phase1State.MM_SENT3 and msg.exchange == ExchangeType.MAIN:
                self._mm4(out, sa, msg, data, now)
            elif msg.exchange == ExchangeType.INFORMATIONAL:
                self._plain_informational(out, sa, msg, remote)
            else:
                raise IkeProtocolError(
                    "unexpected unencrypted message", notify=NotifyType.INVALID_FLAGS
                )
            return
        ex, mid = msg.header.exchange, msg.header.message_id
        if sa.state == Phase1State.MM_SENT5 and ex == ExchangeType.MAIN and mid == 0:
            self._mm6(out, sa, msg, now)
        elif not sa.established:
            raise IkeProtocolError(f"exchange {ex} before phase 1 completed")
        elif mid == 0:
            raise IkeProtocolError(
                "phase-2 message with M-ID 0", notify=NotifyType.INVALID_MESSAGE_ID
            )
        elif ex == ExchangeType.INFORMATIONAL:
            self._receive_informational(out, sa, msg, now)
        elif ex == ExchangeType.TRANSACTION:
            self._transaction(out, sa, msg, data, now)
        elif ex == ExchangeType.QUICK:
            self._quick2(out, sa, msg, data, now)
        else:
            raise IkeProtocolError(
                f"unsupported exchange type {ex}", notify=NotifyType.UNSUPPORTED_EXCHANGE_TYPE
            )

    def _transaction(self, out, sa: IkeSa, enc: EncryptedMessage, data, now) -> None:
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
        cfg_type = attr.cfg_type
        if pending is not None and cfg_type != CfgType.REPLY:
            raise IkeProtocolError(
                f"expected REPLY, got cfg type {cfg_type}", notify=NotifyType.PAYLOAD_MALFORMED
            )
        if pending is None and cfg_type not in (CfgType.REQUEST, CfgType.SET):
            raise IkeProtocolError(
                f"unexpected cfg type {cfg_type}", notify=NotifyType.PAYLOAD_MALFORMED
            )
        sa.commit_iv(msg, last)
        sa.last_rx = now
        self._answered(sa, "am3")  # any transaction means message 3 arrived
        if pending is not None:
            self._answered(sa, f"modecfg-{mid:08x}")
            del sa.transactions[mid]
            sa.mark_done(mid)
            self._modecfg_reply(out, sa, attr, "pull", now)
        elif cfg_type == CfgType.REQUEST:
            self._xauth_request(out, sa, attr, data, mid)
        elif attr.attr(CfgAttr.XAUTH_STATUS) is not None:
            self._xauth_set(out, sa, attr, data, mid, now)
        else:
            ack = AttributePayload(
                CfgType.ACK,
                attr.identifier,
                tuple(Attribute(a.type, b"") for a in attr.attributes if not a.is_tv),
            )
            reply = sa.protected(ExchangeType.TRANSACTION, mid, [ack])
            sa.mark_done(mid)
            self._send(out, sa, reply)
            sa.remember_reply(data, (reply,))
            self._modecfg_reply(out, sa, attr, "push", now)

    def _xauth_request(self, out, sa: IkeSa, attr: AttributePayload, data, mid) -> None:
        if sa.xauth not in (XauthState.PENDING, XauthState.REQUESTED):
            raise IkeProtocolError(
                "XAUTH request outside XAUTH", notify=NotifyType.PAYLOAD_MALFORMED
            )
        answer = []
        for a in attr.attributes:
            if a.type == CfgAttr.XAUTH_TYPE:
                if _number(a) != 0:
                    raise IkeProtocolError(
                        "only generic XAUTH is supported",
                        notify=NotifyType.ATTRIBUTES_NOT_SUPPORTED,
                    )
                answer.append(Attribute(a.type, 0))
            elif a.type == CfgAttr.XAUTH_USER_NAME:
                answer.append(Attribute(a.type, (self.config.user or "").encode()))
            elif a.type in (CfgAttr.XAUTH_USER_PASSWORD, CfgAttr.XAUTH_PASSCODE):
                answer.append(Attribute(a.type, self.config.password))
        sa.xauth = XauthState.REQUESTED
        sa.xauth_attempts += 1
        reply_attr = AttributePayload(CfgType.REPLY, attr.identifier, tuple(answer))
        reply = sa.protected(ExchangeType.TRANSACTION, mid, [reply_attr])
        sa.mark_done(mid)
        self._send(out, sa, reply)
        sa.remember_reply(data, (reply,))

    def _xauth_set(self, out, sa: IkeSa, attr: AttributePayload, data, mid, now) -> None:
        status = attr.attr(CfgAttr.XAUTH_STATUS)
        ok = status is not None and _number(status) == 1
        ack = AttributePayload(
            CfgType.ACK, attr.identifier, (Attribute(CfgAttr.XAUTH_STATUS, 1 if ok else 0),)
        )
        reply = sa.protected(ExchangeType.TRANSACTION, mid, [ack])
        sa.mark_done(mid)
        self._send(out, sa, reply)
        sa.remember_reply(data, (reply,))
        out.event(
            XauthResult(
                sa.handle,
                self.config.user or "",
                ok,
                sa.xauth_attempts,
                "" if ok else "gateway rejected the credentials",
            )
        )
        if not ok:
            sa.xauth = XauthState.FAILED
            self._remove_sa(out, sa, "xauth-failed", now, notify_peer=False)
            return
        sa.xauth = XauthState.DONE
        sa.xauth_ok = True
        self._after_auth(out, sa, now)

    def _modecfg_reply(self, out, sa: IkeSa, attr: AttributePayload, style: str, now) -> None:
        config = ModeConfig.from_attributes(attr.attributes)
        if config.address is None:
            # Nothing to tunnel from: a VPN 3000 says so when its pool is empty. No quick
            # mode, no half tunnel; the gateway is told (it may have deleted the SA already).
            self.stats["modecfg_no_address"] += 1
            message = "reply" if style == "pull" else "SET"
            reason = (
                f"no address available from the concentrator's pool "
                f"(its Mode-Config {message} carried no address)"
            )
            self._remove_sa(out, sa, reason, now, notify_peer=True, failed_stage="modecfg")
            return
        sa.mode_config = config
        self.mode_config = config
        sa.modecfg_state = ModeCfgState.DONE
        if self.config.natt.asks_cisco_udp and config.udp_encap_port and not sa.floated:
            sa.cisco_udp_port = config.udp_encap_port
        out.event(ModeConfigReceived(sa.handle, config, style))
        self._start_quicks(out, sa, now)

    # -- quick mode ----------------------------------------------------------------------------

    def _start_quicks(self, out, sa: IkeSa, now) -> None:
        networks = self.config.remote_networks
        if self.config.use_split_networks and sa.mode_config and sa.mode_config.split_include:
            networks = sa.mode_config.split_include
        for net in networks:
            self._start_quick(out, sa, net, now)

    def _local_ts(self, sa: IkeSa) -> IPv4Network:
        if sa.mode_config is not None and sa.mode_config.address is not None:
            return IPv4Network(sa.mode_config.address)
        return IPv4Network(IPv4Address(sa.local[0]))

    def _start_quick(self, out, sa: IkeSa, remote_ts: IPv4Network, now, rekey_of=None) -> None:
        cfg = self.config
        mid = random_message_id()
        my_spi = self.new_spi()
        ni_b = random_bytes(NONCE_LEN)
        encap = quick_encapsulation(sa)
        local_ts = self._local_ts(sa)
        payloads: list = [phase2_sa(cfg.phase2, my_spi, encap), NoncePayload(ni_b)]
        pfs = cfg.phase2[0].pfs_group
        dh = None
        if pfs is not None:
            dh = modp_exchange(pfs, None, None)
            payloads.append(KePayload(dh.public))
        payloads += [IdPayload.for_network(local_ts), IdPayload.for_network(remote_ts)]
        data = sa.protected(ExchangeType.QUICK, mid, payloads)
        self.inbound_spis[int.from_bytes(my_spi, "big")] = sa
        sa.quick[mid] = QuickState(
            mid,
            ni_b,
            dh=dh,
            my_spi=my_spi,
            local_ts=local_ts,
            remote_ts=remote_ts,
            started=now,
            encap=encap,
            rekey_of=rekey_of,
            offered=cfg.phase2,
        )
        self._request(out, sa, f"qm-{mid:08x}", data, "quick", now)

    def _quick2(self, out, sa: IkeSa, enc: EncryptedMessage, data, now) -> None:
        mid = enc.header.message_id
        q = sa.quick.get(mid)
        if q is None:
            raise IkeProtocolError(
                f"quick mode M-ID {mid:08x} not ours (responder rekeys are not supported)"
            )
        msg, last = sa.decrypt(enc)
        sa.check_hash(msg, prefix=q.ni_b)
        sa_p = msg.first(SaPayload)
        nonce = msg.first(NoncePayload)
        if sa_p is None or nonce is None:
            raise IkeProtocolError(
                "quick mode message 2 lacks SA or NONCE", notify=NotifyType.PAYLOAD_MALFORMED
            )
        prop, offer, policy = accept_esp_reply(sa_p, q.offered, q.encap)
        ids = msg.find(IdPayload)
        if ids and (
            len(ids) != 2 or ids[0].as_network() != q.local_ts or ids[1].as_network() != q.remote_ts
        ):
            raise IkeProtocolError(
                "responder changed the quick mode IDs", notify=NotifyType.INVALID_ID_INFORMATION
            )
        gqm = None
        if offer.pfs_group is not None:
            ke = msg.first(KePayload)
            if ke is None:
                raise IkeProtocolError(
                    "PFS reply without KE", notify=NotifyType.INVALID_KEY_INFORMATION
                )
            gqm = modp_exchange(offer.pfs_group, q.dh, ke.data)
        sa.commit_iv(msg, last)
        sa.last_rx = now
        self._answered(sa, f"qm-{mid:08x}")
        q.nr_b = nonce.data
        final = sa.encrypt(
            ExchangeType.QUICK,
            mid,
            [HashPayload(qm_hash3(sa.hash_id, sa.keys.skeyid_a, mid, q.ni_b, q.nr_b))],
        )
        self._send(out, sa, final)
        sa.remember_reply(data, (final,))
        del sa.quick[mid]
        sa.mark_done(mid)
        lifetime = min(offer.life_seconds or policy.lifetime, policy.lifetime)
        child = self._make_child(
            sa,
            message_id=mid,
            my_spi=q.my_spi,
            peer_spi=prop.spi,
            offer=offer,
            policy=policy,
            ni_b=q.ni_b,
            nr_b=q.nr_b,
            gqm=gqm,
            local_ts=q.local_ts,
            remote_ts=q.remote_ts,
            lifetime=lifetime,
            now=now,
        )
        for n in msg.find(NotifyPayload):
            if n.notify_type == NotifyType.RESPONDER_LIFETIME:
                self._shorten_child(child, n)
            else:
                out.event(NotifyReceived(sa.handle, n.notify_type, n.protocol, n.spi, n.data, True))
        self._set_child_rekey(child)
        self._install_child(out, sa, child, q.rekey_of)
        if q.rekey_of is not None and q.rekey_of in sa.children:
            old = sa.children[q.rekey_of]
            old.delete_at = now + self.config.child_rekey_grace
            old.rekey_at = None
        self.stats["child_established"] += 1

    def _shorten_child(self, child: ChildSa, n: NotifyPayload) -> None:
        seconds = responder_lifetime_seconds(n)
        if seconds and 0 < seconds < child.lifetime:
            child.lifetime = seconds
            child.expires_at = child.established + seconds

    def _rekey_child(self, out, sa: IkeSa, child: ChildSa, now) -> None:
        child.rekeying = True
        self._start_quick(out, sa, child.remote_ts, now, rekey_of=child.inbound_spi)

    def _quick_timed_out(self, out, sa: IkeSa, q: QuickState, now) -> None:
        self.inbound_spis.pop(int.from_bytes(q.my_spi, "big"), None)

    def _retransmit_failed(self, out, sa: IkeSa, r, now) -> None:
        if r.stage == "quick":
            mid = int(r.key.split("-")[1], 16)
            q = sa.quick.pop(mid, None)
            if q is not None:
                self._quick_timed_out(out, sa, q, now)
            out.event(ExchangeFailed(sa.handle, sa.remote, "quick", "no answer"))
            return
        if not sa.established and sa.icookie in self._connecting:
            self._fail_connecting(out, sa, self._unanswered(r, now), now)
            return
        super()._retransmit_failed(out, sa, r, now)

    def _on_notify(self, out, sa: IkeSa, n: NotifyPayload, now: float) -> None:
        super()._on_notify(out, sa, n, now)
        refusals = (NotifyType.NO_PROPOSAL_CHOSEN, NotifyType.INVALID_ID_INFORMATION)
        if n.notify_type in refusals and sa.quick:
            # the gateway refused our quick-mode offer: stop retrying it
            for mid, q in list(sa.quick.items()):
                del sa.quick[mid]
                self._answered(sa, f"qm-{mid:08x}")
                self._quick_timed_out(out, sa, q, now)
                out.event(
                    ExchangeFailed(
                        sa.handle,
                        sa.remote,
                        "quick",
                        f"gateway refused: {_notify_name(n.notify_type)}",
                        n.notify_type,
                    )
                )

    def _heartbeat(self, out, sa: IkeSa, now) -> None:
        n = NotifyPayload(NotifyType.ALTIGA_KEEPALIVE, ProtocolId.ISAKMP, sa.icookie + sa.rcookie)
        self._send_informational(out, sa, [n])
        sa.next_heartbeat = now + (self.config.altiga_keepalive_interval or 20.0)


def _number(a: Attribute) -> int:
    """A numeric attribute of the gateway's; an empty one is malformed, not a crash."""
    try:
        return a.as_int()
    except ValueError as exc:
        raise IkeProtocolError(str(exc), notify=NotifyType.PAYLOAD_MALFORMED) from None


def _notify_name(value: int) -> str:
    try:
        return NotifyType(value).name
    except ValueError:
        return str(value)


def _same(a: bytes, b: bytes) -> bool:
    from cryptography.hazmat.primitives.constant_time import bytes_eq

    return bytes_eq(a, b)
