"""The concentrator side: answers aggressive / main mode, runs XAUTH and Mode-Config, answers
quick modes, for many clients at once.

This class holds the gateway's policy (groups, limits, which session is whose, addresses
through the hooks) and its public API; the exchanges are in :mod:`labctl.ike.exchanges`.

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

from dataclasses import fields
from ipaddress import IPv4Network

from .codec import DeletePayload, IdPayload, Message, VendorIdPayload, decode_message
from .config import GroupPolicy, LanToLanPolicy, Phase1Proposal, Phase2Proposal, ResponderPolicy
from .constants import NotifyType, ProtocolId
from .engine import EngineBase
from .errors import DropCategory, IkeProtocolError
from .events import (
    Collector,
    Endpoint,
    ModeConfigApplied,
    Output,
    PeerEndpointChanged,
    Phase1Rekeyed,
    SaHandle,
    XauthResult,
)
from .exchanges import informational, quick_mode
from .hooks import Refused, ResponderHooks, SessionContext
from .modecfg import ModeConfig
from .proposals import Phase1Offer
from .records import evolve
from .sa import ChildSa, IkeSa, random_cookie
from .states import XAUTH_UNDER_WAY, ModeCfgState, Phase1State, Role
from .transitions import Inbound
from .vendor import classify_vendor_ids


class Responder(EngineBase):
    """Sans-I/O IKEv1 responder.  See the package docstring for the calling convention."""

    role = Role.RESPONDER

    def __init__(self, policy: ResponderPolicy, hooks: ResponderHooks) -> None:
        super().__init__(policy.retransmit_interval, policy.retransmit_max)
        self.policy = policy
        self.hooks = hooks
        self._half_open: dict[tuple[bytes, Endpoint], IkeSa] = {}
        self._owner: dict[SaHandle, SessionContext] = {}  # who holds an assigned address
        # SAs in self.sas by (peer IP, XAUTH user), for _candidates
        self._by_client: dict[tuple[str, str | None], list[IkeSa]] = {}

    # -- public API ----------------------------------------------------------------------------

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
            informational.send_dpd(self, out, sa, now)
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

    # -- receiving: which SA a message is for --------------------------------------------------

    def _route(self, out: Collector, rx: Inbound) -> None:
        header = rx.header
        if header.rcookie != bytes(8):
            rx.sa = self.sas.get((header.icookie, header.rcookie))
            if rx.sa is None:
                self._unknown_sa(out, rx.remote, header)
            else:
                self._receive_for(out, rx.sa, rx)
        elif rx.tcp and self.policy.tcp_port is None:
            self.stats["tcp_disabled"] += 1
            reason = "IPsec over TCP is not enabled"
            category = DropCategory.REFUSED
            self._drop(out, rx.remote, reason, category=category, exchange=header.exchange)
        else:
            self._first_message(out, rx)

    def _first_message(self, out: Collector, rx: Inbound) -> None:
        """A message without our cookie: a retransmitted first message, or a new SA."""
        existing = self._half_open.get((rx.header.icookie, rx.remote))
        if existing is not None and existing.tcp == rx.tcp:
            rx.sa = existing  # (the same cookie and endpoint on the other transport: new)
            if rx.data in existing.reply_cache:
                self.stats["duplicates"] += 1
                for reply in existing.reply_cache[rx.data]:
                    self._send(out, existing, reply)
            else:
                reason = "second first-message for a half-open SA"
                self._drop(out, rx.remote, reason, sa=existing, exchange=rx.header.exchange)
            return
        msg = decode_message(rx.data, rx.header)
        if not isinstance(msg, Message):
            raise IkeProtocolError("first message is encrypted", notify=NotifyType.INVALID_FLAGS)
        if msg.message_id != 0:
            raise IkeProtocolError(
                "phase-1 message with a message ID", notify=NotifyType.INVALID_MESSAGE_ID
            )
        crowd = sum(1 for (_, ep) in self._half_open if ep[0] == rx.remote[0])
        if crowd >= self.policy.max_half_open_per_peer_ip:
            raise IkeProtocolError(
                f"too many half-open SAs from {rx.remote[0]}", category=DropCategory.REFUSED
            )
        rx.sa = self._dispatch(out, None, msg, rx)

    def _on_its_transport(self, sa: IkeSa, rx: Inbound) -> bool:
        # a TCP SA stays on its own connection: the peer endpoint never moves
        return sa.tcp == rx.tcp and (not rx.tcp or rx.remote == sa.remote)

    def _authenticated(self, out: Collector, sa: IkeSa, rx: Inbound) -> None:
        """After an authenticated message: answer where it came from from now on."""
        if sa.key not in self.sas:
            return
        if rx.remote != sa.remote or rx.local != sa.local:
            old = sa.remote
            self._move_to(sa, rx.remote, rx.local)
            out.event(PeerEndpointChanged(sa.handle, old, rx.remote, rx.local[1]))
            self.stats["endpoint_changes"] += 1

    def _move_to(self, sa: IkeSa, remote: Endpoint, local: Endpoint) -> None:
        moved = remote[0] != sa.remote[0] and self.sas.get(sa.key) is sa
        if moved:
            self._unindex(sa)
        sa.remote, sa.local = remote, local
        if moved:
            self._index(sa)
        if local[1] == self.policy.natt_port and sa.natt is not None:
            sa.floated = True

    def _set_user(self, sa: IkeSa, user: str | None) -> None:
        """XAUTH named the SA's user (or none): re-file it in _by_client."""
        indexed = self.sas.get(sa.key) is sa
        if indexed:
            self._unindex(sa)
        sa.user = user
        if indexed:
            self._index(sa)

    def _interpret_delete(self, sa: IkeSa, d: DeletePayload, now: float) -> DeletePayload:
        if d.protocol == ProtocolId.ISAKMP and self.policy.vpnc_rekey_delete_quirk:
            return informational.vpnc_rekey_delete(self, sa, d, now)
        return d

    # -- policy: phase 1 -----------------------------------------------------------------------

    def _group_for(self, ident: IdPayload | None) -> GroupPolicy | None:
        if ident is None:
            return None
        name = ident.as_name()
        return self.policy.groups.get(name) if name is not None else None

    def _policy_for_group(self, group: GroupPolicy) -> tuple[Phase1Proposal, ...]:
        wanted = group.accepted_auth
        return tuple(p for p in self.policy.phase1 if p.auth == wanted)

    def _phase1_lifetime(self, offer: Phase1Offer, sa: IkeSa | None = None) -> int:
        """The client's lifetime, at most ours (a longer one is announced after Mode-Config)."""
        ours = self.policy.ike_lifetime
        if sa is not None and sa.lan_to_lan is not None:
            ours = sa.lan_to_lan.ike_lifetime
        return min(offer.life_seconds or ours, ours)

    # -- policy: LAN-to-LAN --------------------------------------------------------------------

    def _lan_to_lan_for(self, address: str) -> LanToLanPolicy | None:
        """The LAN-to-LAN entry of a peer address (main mode knows nothing else yet)."""
        return next((e for e in self.policy.lan_to_lan if e.peer == address), None)

    def _bind_lan_to_lan(self, sa: IkeSa, entry: LanToLanPolicy) -> None:
        """The SA is this entry's: its name, and NAT-T by the entry's own switch."""
        sa.lan_to_lan, sa.group_name = entry, entry.name
        sa.natt = (
            sa.peer_vendor.best_natt(self.policy.natt_versions) if entry.natt_enabled else None
        )
        sa.natd_draft = sa.natt is not None and not sa.natt.is_rfc

    def _phase2_for(self, sa: IkeSa) -> tuple[Phase2Proposal, ...]:
        return sa.lan_to_lan.phase2 if sa.lan_to_lan is not None else self.policy.phase2

    def _ipsec_lifetime(self, sa: IkeSa) -> int:
        return (
            sa.lan_to_lan.ipsec_lifetime
            if sa.lan_to_lan is not None
            else self.policy.ipsec_lifetime
        )

    def _new_sa(self, msg: Message, mode: str, rx: Inbound) -> IkeSa:
        local = rx.local
        sa = IkeSa(Role.RESPONDER, msg.icookie, random_cookie(), mode, local, rx.remote, rx.now)
        sa.dpd_idle = self.policy.dpd_idle
        sa.dpd_retry = self.policy.dpd_retry
        sa.tcp = rx.tcp
        sa.floated = local[1] == self.policy.natt_port and not sa.tcp
        sa.peer_vendor = classify_vendor_ids([v.data for v in msg.find(VendorIdPayload)])
        if self.policy.natt_enabled and not sa.tcp:  # TCP wins over NAT-T
            sa.natt = sa.peer_vendor.best_natt(self.policy.natt_versions)
            sa.natd_draft = sa.natt is not None and not sa.natt.is_rfc
        return sa

    def _hold_half_open(
        self, out: Collector, sa: IkeSa, state: Phase1State, rx: Inbound, reply: bytes
    ) -> None:
        """Our answer to a first message: the SA waits (a while) for the client's next."""
        sa.state = state
        sa.deadline_for_msg = rx.now + self.policy.half_open_timeout
        self.sas[sa.key] = sa
        self._index(sa)
        self._half_open[(sa.icookie, rx.remote)] = sa
        sa.remember_reply(rx.data, (reply,))
        self._send(out, sa, reply)

    # -- policy: sessions (INITIAL-CONTACT, rekeys, addresses) ---------------------------------

    def _same_client(self, a: IkeSa, b: IkeSa) -> bool:
        if a.lan_to_lan is not None or b.lan_to_lan is not None:
            return a.lan_to_lan is b.lan_to_lan  # one tunnel per entry, wherever it comes from
        if a.group_name != b.group_name:
            return False
        if a.user is not None or b.user is not None:
            return a.user == b.user and a.remote[0] == b.remote[0]
        return a.remote == b.remote

    def _candidates(self, sa: IkeSa) -> list[IkeSa]:
        """The SAs that may be the same client as ``sa``, by what _same_client needs of a
        remote-access client (same user, or none, and same IP): a plain scan comparing
        attributes, no call per SA (it runs twice per new session over every SA)."""
        if sa.lan_to_lan is not None:
            return [o for o in self.sas.values() if o is not sa]
        ip, user = sa.remote[0], sa.user
        # From _by_client, not a scan of every SA (twice per new session: O(n^2) for a
        # connect storm, whose clients all come from the PAT's one address); a bucket is in
        # the order its SAs joined self.sas (or were re-filed), and still checked here.
        sas = self.sas
        return [
            o
            for o in self._by_client.get((ip, user), ())
            if o.user == user
            and o.lan_to_lan is None
            and o is not sa
            and sas.get(o.key) is o
            and o.remote[0] == ip
        ]

    def _index(self, sa: IkeSa) -> None:
        self._by_client.setdefault((sa.remote[0], sa.user), []).append(sa)

    def _unindex(self, sa: IkeSa) -> None:
        """Take ``sa`` out of _by_client (it leaves self.sas, or its IP or user changes)."""
        key = (sa.remote[0], sa.user)
        bucket = self._by_client.get(key, [])
        if not any(o is sa for o in bucket):  # filed under an older IP/user: find it
            key = next((k for k, b in self._by_client.items() if any(o is sa for o in b)), key)
            bucket = self._by_client.get(key, [])
        rest = [o for o in bucket if o is not sa]
        if rest:
            self._by_client[key] = rest
        else:
            self._by_client.pop(key, None)

    def _apply_initial_contact(self, out: Collector, sa: IkeSa, now: float) -> None:
        if not sa.initial_contact:
            return
        for other in self._candidates(sa):
            if other.established and self._same_client(sa, other):
                self.stats["initial_contact_removed"] += 1
                self._remove_sa(out, other, "initial-contact", now, notify_peer=False)

    def _predecessor(self, sa: IkeSa) -> IkeSa | None:
        best = None
        for other in self._candidates(sa):
            if (
                other is not sa
                and other.established
                and other.replaced_by is None
                and other.xauth_ok == sa.xauth_ok
                and self._same_client(sa, other)
                and (best is None or (other.established_at or 0) > (best.established_at or 0))
            ):
                best = other
        return best

    def _adopt_predecessor(self, out: Collector, sa: IkeSa) -> bool:
        """A new phase 1 from a client that already has a session is a phase-1 rekey
        (vpnc does XAUTH again, no Mode-Config): the session, address included, moves over."""
        predecessor = self._predecessor(sa)
        if predecessor is None:
            return False
        if predecessor.lan_to_lan is not None:  # a LAN-to-LAN peer's new phase 1: its rekey
            sa.replaces = predecessor.handle
            predecessor.replaced_by = sa.handle
            out.event(Phase1Rekeyed(sa.handle, predecessor.handle, None))
            return True
        if predecessor.mode_config is None:
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

    def _session_config(
        self, sa: IkeSa, *, cisco_udp_requested: bool
    ) -> ModeConfig | Refused | None:
        """The address (from the hook, once per session) merged with the group's settings,
        and the transport port a VPN 3000 announces in 0x7005: TCP, NAT-T, then UDP.
        None: the pool is exhausted; Refused: the hook refused the session."""
        if sa.mode_config is None:
            ctx = SessionContext(
                sa.handle, sa.group_name or "", sa.user, sa.remote, sa.peer_app_version
            )
            assigned = self.hooks.assign_address(ctx)
            if assigned is None or isinstance(assigned, Refused):
                return assigned
            base = sa.group.mode_config if sa.group is not None else ModeConfig()
            merged = _merge(base, assigned)
            self._owner[sa.handle] = ctx
            sa.mode_config = merged
        port = None
        if sa.tcp:
            port = self.policy.tcp_port or sa.local[1]
        elif sa.floated:
            port = self.policy.natt_port
        elif self.policy.cisco_udp_port is not None and cisco_udp_requested:
            port = self.policy.cisco_udp_port
            sa.cisco_udp_port = port
        return evolve(sa.mode_config, app_version=self.policy.app_version, udp_encap_port=port)

    def _may_reach(self, sa: IkeSa, local_ts: IPv4Network) -> bool:
        """Quick mode: may this session's tunnel lead to ``local_ts``?"""
        allowed = self.policy.allowed_remote_networks
        if sa.group is not None:
            allowed = allowed + sa.group.split_networks
        return any(local_ts == n or local_ts.subnet_of(n) for n in allowed)

    # -- policy: timers and removal ------------------------------------------------------------

    def _natt_port(self) -> int:
        return self.policy.natt_port

    def _dpd_max(self) -> int:
        return self.policy.dpd_max_retries

    def _rekey_child(self, out: Collector, sa: IkeSa, child: ChildSa, now: float) -> None:
        if sa.established and sa.replaced_by is None:
            quick_mode.rekey(self, out, sa, child, now)
        else:
            child.rekeying = True  # its phase-1 SA is going: the successor's client rekeys

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
        self._unindex(sa)

    def _released(self, out: Collector, sa: IkeSa, successor: IkeSa | None) -> None:
        ctx = self._owner.pop(sa.handle, None)
        if ctx is None or sa.mode_config is None:
            return
        if successor is not None and successor.key in self.sas:
            self._owner[successor.handle] = ctx  # the address moves with the session
            return
        self.hooks.release_address(ctx, sa.mode_config)


def _merge(base: ModeConfig, assigned: ModeConfig) -> ModeConfig:
    """Group settings, overridden by whatever the hook set."""
    changes = {}
    for name, unset in _MODECFG_UNSET:
        value = getattr(assigned, name)
        if value != unset:
            changes[name] = value
    return evolve(base, **changes)


# (field name, value when not set) of every Mode-Config field, for _merge (once per session)
_MODECFG_UNSET = tuple((f.name, getattr(ModeConfig(), f.name)) for f in fields(ModeConfig))
