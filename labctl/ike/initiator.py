"""The client side: one connection to one gateway (aggressive or main mode, XAUTH,
Mode-Config pull or push, one quick mode per remote network), with retransmission, DPD,
rekeying of both phases, and deletes.

This class holds the client's policy (what it offers and announces, when it rekeys, what
follows phase 1) and its public API; the exchanges are in :mod:`labctl.ike.exchanges`.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from .codec import IdPayload, Message, VendorIdPayload, decode_message
from .config import InitiatorConfig, NattMode
from .constants import IKE_PORT, IPPROTO_UDP, ExchangeType, IdType, NotifyType
from .engine import EngineBase
from .errors import IkeProtocolError
from .events import Collector, Endpoint, ExchangeFailed, Output, Phase1Rekeyed, SaHandle
from .exchanges import aggressive, informational, main_mode, mode_config, quick_mode
from .exchanges.phase1 import leading_vids, trailing_vids
from .modecfg import ModeConfig
from .proposals import phase1_sa
from .sa import ChildSa, IkeSa, Retransmit, random_cookie
from .states import ModeCfgState, Role
from .transitions import Inbound
from .vendor import VID_DPD


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
            informational.send_dpd(self, out, self.current, now)
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
            quick_mode.start(self, out, sa, IPv4Network(remote_network), now)
            self._schedule(sa)
        return self._finish(out)

    @property
    def handle(self) -> SaHandle | None:
        return self.current.handle if self.current is not None else None

    def children(self) -> list[ChildSa]:
        return list(self.current.children.values()) if self.current is not None else []

    # -- receiving: which SA a message is for --------------------------------------------------

    def _route(self, out: Collector, rx: Inbound) -> None:
        header = rx.header
        connecting = self._connecting.get(header.icookie)
        if connecting is None:
            rx.sa = self.sas.get((header.icookie, header.rcookie))
            if rx.sa is None:
                self._unknown_sa(out, rx.remote, header)
            else:
                self._receive_for(out, rx.sa, rx)
        elif connecting.tcp != rx.tcp:
            self.stats["wrong_transport"] += 1
            reason = "reply on another transport"
            self._drop(out, rx.remote, reason, sa=connecting, exchange=header.exchange)
        else:
            rx.sa = connecting
            if rx.data in connecting.reply_cache:
                self.stats["duplicates"] += 1
            else:
                self._phase1_reply(out, connecting, rx)

    def _phase1_reply(self, out: Collector, sa: IkeSa, rx: Inbound) -> None:
        """Message 2 (the responder's cookie is new to us), or the gateway's refusal."""
        msg = decode_message(rx.data, rx.header)
        if not isinstance(msg, Message):
            raise IkeProtocolError(
                "phase-1 reply unexpectedly encrypted", notify=NotifyType.INVALID_FLAGS
            )
        if msg.exchange != ExchangeType.INFORMATIONAL and (msg.message_id or msg.flags):
            raise IkeProtocolError(
                "phase-1 reply with flags or message ID", notify=NotifyType.INVALID_FLAGS
            )
        self._dispatch(out, sa, msg, rx)

    def _after_receive(self, sa: IkeSa) -> None:
        self._schedule_connecting(sa)

    def _schedule_connecting(self, sa: IkeSa) -> None:
        if sa.key in self.sas:
            self._schedule(sa)
        elif sa.icookie in self._connecting:
            # Not yet keyed by both cookies: schedule under a temporary entry.
            self.sas[sa.key] = sa
            self._schedule(sa)

    def _key_in(self, sa: IkeSa, new_rcookie: bytes) -> None:
        """Message 2 told us the responder cookie: re-key the SA tables."""
        self._connecting.pop(sa.icookie, None)
        self.sas.pop(sa.key, None)
        sa.rcookie = new_rcookie
        self.sas[sa.key] = sa

    def _fail_connecting(self, out: Collector, sa: IkeSa, reason: str, notify=None) -> None:
        self._connecting.pop(sa.icookie, None)
        self.sas.pop(sa.key, None)
        self._remember_removed(sa.key)
        sa.retransmits.clear()
        if self.current is sa:
            self.current = None
        out.event(ExchangeFailed(None, sa.remote, "phase1", reason, notify))

    # -- policy: what we offer and announce ----------------------------------------------------

    def _vendor_ids(self) -> list[VendorIdPayload]:
        cfg = self.config
        natt = cfg.natt_versions if cfg.natt.offers_natt else ()
        vids = leading_vids(cfg.vendor, natt)
        if cfg.dpd_idle is None:
            vids = tuple(v for v in vids if v.data != VID_DPD)
        return [*vids, *trailing_vids(cfg.vendor)]

    def _identity(self) -> IdPayload:
        if self.config.id_type == IdType.IPV4_ADDR and self._local is not None:
            return IdPayload.ipv4(self._local[0], IPPROTO_UDP, IKE_PORT)  # a LAN-to-LAN peer
        if self.config.id_type == IdType.FQDN:
            return IdPayload.fqdn(self.config.group)
        if self.config.id_type == IdType.USER_FQDN:
            return IdPayload(IdType.USER_FQDN, self.config.group.encode(), IPPROTO_UDP, IKE_PORT)
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
            data, key = aggressive.start(self, sa, sa_payload), "am1"
        else:
            data, key = main_mode.start(self, sa, sa_payload), "mm1"
        self._connecting[sa.icookie] = sa
        self._request(out, sa, key, data, "phase1", now)
        if self.current is None:
            self.current = sa
        self.stats["phase1_started"] += 1
        return sa

    # -- policy: what follows phase 1 ----------------------------------------------------------

    def _after_auth(self, out: Collector, sa: IkeSa, now: float) -> None:
        """Phase 1 (and XAUTH, if any) done: Mode-Config, then quick modes."""
        if sa.replaces is not None:
            self._finish_rekey(out, sa, now)
            return
        style = self.config.modecfg
        if style == "pull":
            mode_config.request(self, out, sa, now)
        elif style == "push":
            sa.modecfg_state = ModeCfgState.PENDING
        else:
            self._start_quicks(out, sa, now)

    def _start_quicks(self, out: Collector, sa: IkeSa, now: float) -> None:
        """One quick mode per remote network (the gateway's split networks if asked to)."""
        networks = self.config.remote_networks
        if self.config.use_split_networks and sa.mode_config and sa.mode_config.split_include:
            networks = sa.mode_config.split_include
        if self.config.local_networks:  # LAN-to-LAN: network to network, every pair
            for local in self.config.local_networks:
                for net in networks:
                    quick_mode.start(self, out, sa, net, now, local_ts=local)
            return
        for net in networks:
            quick_mode.start(self, out, sa, net, now)

    def _finish_rekey(self, out: Collector, sa: IkeSa, now: float) -> None:
        """Our phase-1 rekey is authenticated: the session moves over, the old SA goes."""
        replaced = sa.replaces
        old = self.sas.get((replaced.icookie, replaced.rcookie)) if replaced else None
        self.current = sa
        if old is None:
            return
        old.replaced_by = sa.handle
        out.event(Phase1Rekeyed(sa.handle, old.handle, sa.user))
        sa.mode_config = old.mode_config
        sa.cisco_udp_port = old.cisco_udp_port
        # tell the gateway over the NEW SA that the old one is gone (as vpnc does)
        informational.send_isakmp_delete(self, out, sa, old)
        self._remove_sa(out, old, "rekeyed", now, notify_peer=False)

    # -- policy: timers ------------------------------------------------------------------------

    def _natt_port(self) -> int:
        return self.config.natt_port

    def _dpd_max(self) -> int:
        return self.config.dpd_max_retries

    def _forget(self, sa: IkeSa) -> None:
        self._connecting.pop(sa.icookie, None)
        if self.current is sa:
            self.current = None

    def _set_rekey(self, sa: IkeSa) -> None:
        if self.config.auto_rekey and sa.established_at is not None:
            sa.rekey_at = sa.established_at + sa.lifetime * (1 - self.config.rekey_margin)

    def _rekey_phase1(self, out: Collector, sa: IkeSa, now: float) -> None:
        sa.rekey_started = True
        new = self._begin_phase1(out, now, sa.local, sa.remote)
        new.replaces = sa.handle
        self._schedule_connecting(new)

    def _rekey_child(self, out: Collector, sa: IkeSa, child: ChildSa, now: float) -> None:
        quick_mode.rekey(self, out, sa, child, now)

    def _retransmit_failed(self, out: Collector, sa: IkeSa, r: Retransmit, now: float) -> None:
        if not sa.established and sa.icookie in self._connecting:
            self._fail_connecting(out, sa, self._unanswered(r, now))
            return
        super()._retransmit_failed(out, sa, r, now)

    def _heartbeat(self, out: Collector, sa: IkeSa, now: float) -> None:
        informational.send_heartbeat(self, out, sa)
        sa.next_heartbeat = now + (self.config.altiga_keepalive_interval or 20.0)
