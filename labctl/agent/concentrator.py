"""The concentrator agent (kind `concentrator`): a VPN 3000 in user space.

IKE on UDP 500/4500 (and the Cisco IPsec-over-UDP port when enabled) through the sans-I/O
Responder; ESP through the data plane and a TUN that the address pools are routed into.
IPsec over TCP (when enabled): a listening TCP port whose connections carry a session's
IKE and ESP (labctl.agent.tcp_transport); a session ends with its connection.
Sessions are kept by phase-1 SA (cookies), never by address: clients behind one PAT share
the public address and the group, and each keeps its own session, address and tunnel.
LAN-to-LAN entries: main mode from the entry's peer address, its networks routed into the
TUN; such a session counts as LAN-to-LAN once its first tunnel is up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, summarize_address_range

from ..esp import DEFAULT_TUNNEL_MTU
from ..ike import (
    ChildSaDeleted,
    ChildSaEstablished,
    Event,
    ExchangeFailed,
    GroupPolicy,
    LanToLanPolicy,
    ModeConfig,
    ModeConfigApplied,
    PacketDropped,
    PeerDead,
    PeerEndpointChanged,
    Phase1Deleted,
    Phase1Established,
    Responder,
    ResponderPolicy,
    SaHandle,
    VendorIdentity,
    XauthResult,
)
from ..ike.constants import NATT_PORT, AuthMethod
from ..ike.events import IkeFragments, Phase1Rekeyed, RequestRetransmitted
from ..ike.hooks import AddressPool, Refused, SessionContext, StaticUsers, XauthRequest
from . import naming
from .admin import AdminSessions
from .childsa import encap_of, esp_pair
from .control import ControlError
from .credentials import Credentials, load_credentials
from .dataplane import Dataplane, Encap, VolumeReached
from .dataplane import PeerEndpointChanged as DataplaneEndpointChanged
from .esp_sockets import open_raw_esp, open_udp
from .eventlog import EventLog
from .ikeio import EngineDriver, open_ike_socket
from .ikereport import IkeReport
from .keylog import KeyLog
from .loop import EventLoop
from .records import IkeSaRecord, IpsecSaRecord, LanToLanRecord, SessionRecord, SessionSummary
from .settings import (
    ConcentratorSettings,
    LanToLan,
    natt_versions_of,
    phase1_proposal,
    phase2_proposal,
)
from .tcp_transport import StreamConnection, TcpServer
from .tun import TunDevice
from .tunnel import Tunnel
from .volume import report_volumes, volume_reached, watch_child

# vpn.rekey-late-clients: 95 % of the lifetime, as a strongSwan gateway with
# initiate-rekeys off (after ours at 90 % and strongSwan clients at 80-90 %)
LATE_REKEY_MARGIN = 0.05
ETHERNET_MTU = 1500


GROUP_AUTH = {
    "psk": (AuthMethod.XAUTH_INIT_PSK, AuthMethod.PSK),
    "certificate": (AuthMethod.XAUTH_INIT_RSA, AuthMethod.RSA_SIG),
    "hybrid": (AuthMethod.HYBRID_INIT_RSA,),
}


def credentials_for(settings: ConcentratorSettings) -> Credentials | None:
    """The lab CA and our certificate when a group uses them (read from the node's files)."""
    if all(g.auth == "psk" for g in settings.groups.values()):
        return None
    return load_credentials("a group with auth: certificate or hybrid", own=True)


def build_policy(
    settings: ConcentratorSettings, credentials: Credentials | None = None
) -> ResponderPolicy:
    phase1, phase2, groups = [], [], {}
    for group in settings.groups.values():
        uses_xauth = any(g == group.name for _, g in settings.users.values())
        for text in group.ike_proposals:
            for auth in GROUP_AUTH[group.auth]:
                proposal = phase1_proposal(text, auth, group.ike_lifetime)
                if proposal not in phase1:
                    phase1.append(proposal)
        for text in group.ipsec_proposals:
            transform = phase2_proposal(
                text, group.ipsec_lifetime, 2 if group.pfs else None, group.ipsec_lifetime_kb
            )
            if transform not in phase2:
                phase2.append(transform)
        groups[group.name] = GroupPolicy(
            group.name,
            group.psk.encode(),
            xauth=uses_xauth,
            auth=group.auth,
            mode_config=ModeConfig(
                netmask=group.netmask,
                dns=group.dns,
                nbns=group.wins,
                banner=group.banner,
                default_domain=group.default_domain,
                split_include=group.split_tunnel,
                save_password=False,
                pfs=group.pfs,
            ),
            split_networks=group.split_tunnel,
        )
    first = next(iter(settings.groups.values()), None)
    return ResponderPolicy(
        groups=groups,
        lan_to_lan=tuple(lan_to_lan_policy(e) for e in settings.lan_to_lan.values()),
        phase1=tuple(phase1),
        phase2=tuple(phase2),
        ike_lifetime=first.ike_lifetime if first else 86400,
        ipsec_lifetime=first.ipsec_lifetime if first else 28800,
        ipsec_lifetime_kb=first.ipsec_lifetime_kb if first else None,
        natt_enabled=settings.nat_t,
        natt_versions=natt_versions_of(settings.natt_versions, ResponderPolicy.natt_versions),
        cisco_udp_port=settings.ipsec_over_udp,
        tcp_port=settings.ipsec_over_tcp,
        app_version=settings.version_string,
        dpd_idle=settings.dpd.interval,
        dpd_retry=settings.dpd.retry_interval,
        dpd_max_retries=settings.dpd.retries,
        initiate_rekeys=settings.initiate_rekeys,
        late_rekey_margin=LATE_REKEY_MARGIN if settings.rekey_late_clients else None,
        vendor=VendorIdentity(fragmentation=settings.fragmentation is not None),
        fragment_size=settings.fragmentation or 576,
        certificate=credentials.own if credentials else None,
        ca=credentials.ca if credentials else None,
    )


def tun_mtu(settings: ConcentratorSettings) -> int:
    """The Fragmentation Policy's agent half. 'fragment-encapsulated': whole packets up to the
    Ethernet MTU go into the tunnel and the ESP packet is fragmented at the public interface;
    otherwise the TUN is smaller than that minus ESP's overhead, so the kernel fragments
    before encapsulation -- or, for a DF packet, answers ICMP 'fragmentation needed' (pmtud;
    'clear-df' has cleared DF first, rendered nftables rules)."""
    if settings.fragmentation_policy == "fragment-encapsulated":
        return ETHERNET_MTU
    return DEFAULT_TUNNEL_MTU


def lan_to_lan_policy(entry: LanToLan) -> LanToLanPolicy:
    return LanToLanPolicy(
        name=entry.name,
        peer=str(entry.peer),
        psk=entry.psk.encode(),
        local_networks=entry.local_networks,
        remote_networks=entry.remote_networks,
        phase1=tuple(
            phase1_proposal(p, AuthMethod.PSK, entry.ike_lifetime) for p in entry.ike_proposals
        ),
        phase2=tuple(phase2_proposal(p, entry.ipsec_lifetime) for p in entry.ipsec_proposals),
        natt_enabled=entry.nat_t,
        ike_lifetime=entry.ike_lifetime,
        ipsec_lifetime=entry.ipsec_lifetime,
    )


class ConcentratorHooks:
    """XAUTH against the configured users; one pool per group, no address twice; no
    session beyond the Concurrent Sessions Limit."""

    def __init__(self, settings: ConcentratorSettings, active_sessions: Callable[[], int]):
        self.active_sessions = active_sessions
        self.update(settings, keep_pools={})

    def update(self, settings: ConcentratorSettings, keep_pools: dict[str, AddressPool]) -> None:
        self.max_sessions = settings.max_sessions
        self.users = StaticUsers({u: p for u, (p, _) in settings.users.items()})
        self.user_groups = {u: g for u, (_, g) in settings.users.items()}
        self.pools = {
            name: keep_pools.get(name)
            or AddressPool(str(g.pool[0]), str(g.pool[1]), str(g.netmask or "255.255.255.255"))
            for name, g in settings.groups.items()
        }

    def authenticate(self, request: XauthRequest) -> bool:
        # A user may only log in through the group it belongs to.
        return self.user_groups.get(request.user) == request.group and self.users.check(
            request.user, request.password
        )

    def assign_address(self, ctx: SessionContext) -> ModeConfig | Refused | None:
        if self.active_sessions() >= self.max_sessions:
            return Refused(f"Concurrent Sessions Limit ({self.max_sessions}) reached")
        pool = self.pools.get(ctx.group)
        address = pool.allocate(ctx.handle) if pool else None
        if pool is None or address is None:
            return None
        return ModeConfig().with_address(address, str(pool.netmask))

    def release_address(self, ctx: SessionContext, config: ModeConfig) -> None:
        pool = self.pools.get(ctx.group)
        if pool is not None:
            pool.release(ctx.handle)


@dataclass
class Session:
    session_id: int
    handle: SaHandle
    established: Phase1Established
    login_time: float = field(default_factory=time.time)
    user: str | None = None
    group: str | None = None
    assigned: IPv4Address | None = None
    app_version: str | None = None
    active: bool = False  # Mode-Config done (LAN-to-LAN: a tunnel up): counts as a session
    lan_to_lan: str | None = None  # the LAN-to-LAN entry's name; None: remote access
    # One data-plane tunnel per network pair (a LAN-to-LAN entry with several pairs, or a
    # client's split networks, has one child SA each): its routes and its outbound SA.
    tunnels: dict[tuple[str, str], str] = field(default_factory=dict)
    child_tunnel: dict[int, str] = field(default_factory=dict)  # inbound SPI -> tunnel
    tunnel_serial: int = 0
    encapsulation: Encap | None = None
    children: dict[int, ChildSaEstablished] = field(default_factory=dict)
    child_times: dict[int, float] = field(default_factory=dict)
    last_rx_seen: float | None = None


class ConcentratorAgent:
    def __init__(self, settings: ConcentratorSettings, loop: EventLoop, log: EventLog):
        self.settings = settings
        self.loop = loop
        self.log = log
        self.keylog = KeyLog() if settings.export_keys else None
        self.report = IkeReport(log)
        bind = str(settings.public_address)
        self.tun = TunDevice.create("vpn0", mtu=tun_mtu(settings))
        for group in settings.groups.values():
            for network in summarize_address_range(*group.pool):
                self.tun.add_route(str(network))
        self.l2l_routes: set[str] = set()
        self._route_lan_to_lan(settings)
        ike_socket = open_ike_socket(bind)
        self.dataplane = Dataplane(
            loop,
            self.tun,
            natt_socket=open_udp(bind, NATT_PORT),
            ike_socket=ike_socket,  # NAT-T drafts 00/01 carry ESP on it
            cisco_socket=open_udp(bind, settings.ipsec_over_udp)
            if settings.ipsec_over_udp
            else None,
            raw_socket=open_raw_esp(bind),
            on_ike=self._on_natt_ike,
            on_event=self._on_dataplane_event,
            keepalive_interval=settings.nat_keepalive or 20.0,
        )
        self.hooks = ConcentratorHooks(settings, self._vpn_sessions)
        self.engine = Responder(build_policy(settings, credentials_for(settings)), self.hooks)
        # --- IPsec over TCP (labctl.agent.tcp_transport) ---
        self.tcp: TcpServer | None = None
        if settings.ipsec_over_tcp:
            self.tcp = TcpServer(
                loop,
                bind,
                settings.ipsec_over_tcp,
                on_ike=self._on_tcp_ike,
                on_esp=self.dataplane.receive_stream_esp,
                on_closed=self._on_tcp_closed,
                max_connections=2 * settings.max_sessions,
                max_pending_per_address=self.engine.policy.max_half_open_per_peer_ip,
            )
        self.driver = EngineDriver(
            loop,
            self.engine,
            ike_socket,
            self.dataplane.send_ike,
            self._on_event,
            NATT_PORT,
            send_stream=self.tcp.send_ike if self.tcp else None,
            divert=self.dataplane.receive_ike_port,
        )
        self.sessions: dict[SaHandle, Session] = {}
        self.next_session_id = 1
        self.total_sessions = 0
        self.peak_sessions = 0
        self.admins = AdminSessions()  # management sessions (the web console's)
        loop.call_every(1.0, self._note_traffic)
        loop.call_every(
            1.0, lambda: report_volumes(self.engine, self.dataplane, self.driver.apply, loop.time())
        )  # kilobyte lifetimes
        loop.call_every(1.0, log.flush)  # summaries of rate-limited lines
        transparency = [
            name
            for name, on in (
                (f"IPsec over TCP port {settings.ipsec_over_tcp}", settings.ipsec_over_tcp),
                ("IPsec over NAT-T", settings.nat_t),
                (f"IPsec over UDP port {settings.ipsec_over_udp}", settings.ipsec_over_udp),
            )
            if on
        ]
        log.info(
            "IKE/1",
            f"concentrator {settings.node} listening on {bind} UDP 500, 4500"
            + (f", TCP {settings.ipsec_over_tcp}" if self.tcp else "")
            + "; "
            f"NAT transparency: {', '.join(transparency) or 'none'}",
        )
        if self.keylog:
            log.warning("IKE/2", f"LAB ONLY: exporting IKE/ESP keys to {self.keylog.directory}")

    def _route_lan_to_lan(self, settings: ConcentratorSettings) -> None:
        """The LAN-to-LAN entries' remote networks go into the TUN (from our private side);
        a network no entry names any more leaves it (a removed or edited entry)."""
        src = str(settings.private_address) if settings.private_address else None
        wanted = {
            str(network)
            for entry in settings.lan_to_lan.values()
            for network in entry.remote_networks
        }
        pools = {
            str(network)
            for group in settings.groups.values()
            for network in summarize_address_range(*group.pool)
        }
        for network in sorted(self.l2l_routes - wanted):
            self.l2l_routes.discard(network)
            if network not in pools:  # a pool's route is the group's, not ours to delete
                self.tun.delete_route(network)
        for network in sorted(wanted - self.l2l_routes):
            self.tun.add_route(network, src=src)
            self.l2l_routes.add(network)

    # --- inputs -------------------------------------------------------------------------

    def _on_natt_ike(self, payload: bytes, source: tuple[str, int]) -> None:
        self.driver.receive_natt(payload, source, str(self.settings.public_address))

    # --- IPsec over TCP: IKE from a connection; a closed connection ends its session ---

    def _on_tcp_ike(self, payload: bytes, conn: StreamConnection) -> None:
        self.driver.receive_stream(payload, conn.peer, conn.local)

    def _on_tcp_closed(self, conn: StreamConnection, reason: str) -> None:
        gone = [
            s.handle
            for s in self.sessions.values()
            if s.established.nat.encapsulation == "tcp" and s.established.peer == conn.peer
        ]
        self.log.info(
            "IPSEC/18",
            f"TCP connection from {conn.peer[0]}:{conn.peer[1]} closed: {reason}"
            + (f" ({len(gone)} session(s) end)" if gone else ""),
            conn.peer[0],
            # a connection that carried no session: what a flood of them looks like
            limit=None if gone else "tcp closed",
        )
        for handle in gone:
            self._end_session(handle, f"TCP connection lost ({reason})")
            self.driver.apply(self.engine.delete(handle, self.loop.time()))

    def _note_traffic(self) -> None:
        """ESP from a peer proves it is alive: postpone its DPD (RFC 3706 idle detection)."""
        now = self.loop.time()
        for session in self.sessions.values():
            last_rx = max((t.last_rx or 0.0 for t in self._tunnels(session)), default=0.0)
            if last_rx and last_rx != session.last_rx_seen:
                session.last_rx_seen = last_rx
                self.engine.note_traffic(session.handle, now)

    def _tunnels(self, session: Session) -> list[Tunnel]:
        return [self.dataplane.tunnel(name) for name in session.tunnels.values()]

    # --- engine events --------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None:
            handler(event)

    def _peer(self, handle: SaHandle) -> str:
        session = self.sessions.get(handle)
        return session.established.peer[0] if session else ""

    def _prefix(self, session: Session) -> str:
        if session.lan_to_lan is not None:
            return f"LAN-to-LAN [{session.lan_to_lan}]"
        return f"Group [{session.group or '?'}] User [{session.user or '?'}]"

    def _on_Phase1Established(self, e: Phase1Established) -> None:
        self.report.peer_vendor(e)
        session = Session(self.next_session_id, e.handle, e, group=e.group, lan_to_lan=e.lan_to_lan)
        self.next_session_id += 1
        self.sessions[e.handle] = session
        if self.keylog:
            self.keylog.phase1(e)
        nat = e.nat
        if nat.natt_version:
            self.log.info(
                "IKE/41",
                f"Group [{e.group}] NAT-Traversal ({nat.natt_version}) "
                f"negotiated: {nat.describe()}",
                e.peer[0],
            )
        self.log.info(
            "IKE/120",
            f"Group [{e.group}] PHASE 1 COMPLETED ({e.mode}, "
            f"{e.algorithms.encryption}/{e.algorithms.hash}/"
            f"group {e.algorithms.dh_group}) from {e.peer[0]}:{e.peer[1]}",
            e.peer[0],
        )

    def _on_XauthResult(self, e: XauthResult) -> None:
        session = self.sessions.get(e.handle)
        if session is not None:
            session.user = e.user
        if e.success:
            self.log.info("AUTH/5", f"User [{e.user}] authenticated", self._peer(e.handle))
        else:
            self.log.warning(
                "AUTH/9",
                f"User [{e.user}] authentication rejected ({e.reason}, attempt {e.attempts})",
                self._peer(e.handle),
                limit="auth rejected",
            )

    def _on_ModeConfigApplied(self, e: ModeConfigApplied) -> None:
        session = self.sessions.get(e.handle)
        if session is None:
            return
        session.user = e.user or session.user
        session.assigned = e.config.address
        session.app_version = e.peer_app_version
        self._activate(session)
        self.log.info(
            "IKE/184",
            f"{self._prefix(session)} Mode-Config: assigned "
            f"{e.config.address} (client {e.peer_app_version or 'unknown'})",
            self._peer(e.handle),
        )

    def _activate(self, session: Session) -> None:
        """The session counts from now on (its login time starts)."""
        if not session.active:
            session.active = True
            session.login_time = time.time()
            self.total_sessions += 1
            active = sum(s.active for s in self.sessions.values())
            self.peak_sessions = max(self.peak_sessions, active)

    def _on_Phase1Rekeyed(self, e: Phase1Rekeyed) -> None:
        old = self.sessions.pop(e.replaces, None)
        fresh = self.sessions.pop(e.handle, None)
        if old is None:
            if fresh is not None:
                self.sessions[e.handle] = fresh
            return
        if fresh is not None:
            old.established = fresh.established
        old.handle = e.handle
        self.sessions[e.handle] = old
        self.log.info("IKE/121", f"{self._prefix(old)} IKE SA rekeyed", old.established.peer[0])

    def _on_ChildSaEstablished(self, e: ChildSaEstablished) -> None:
        session = self.sessions.get(e.handle)
        if session is None:
            self.log.warning("IPSEC/3", f"child SA for an unknown IKE SA {e.handle}")
            return
        inbound, outbound = esp_pair(e, self.loop.time())
        encap = encap_of(e)
        peer = (e.peer[0], e.udp_port or 0)
        stream = self.tcp.connection(e.peer) if encap is Encap.TCP and self.tcp else None
        if encap is Encap.TCP and stream is None:
            self.log.warning("IPSEC/3", f"{self._prefix(session)} TCP connection already gone")
            return
        if stream is not None and self.tcp is not None:
            self.tcp.bind(e.peer, session.handle)  # a session now: never evicted as idle
        pair = (str(e.local_ts), str(e.remote_ts))
        name = session.child_tunnel.get(e.rekey_of) if e.rekey_of is not None else None
        name = name or session.tunnels.get(pair)
        if name is None:
            # A counter, never the number of tunnels: a deleted pair's name is not reused.
            name = f"s{session.session_id}" + (
                f".{session.tunnel_serial}" if session.tunnel_serial else ""
            )
            session.tunnel_serial += 1
            self.dataplane.add_tunnel(
                name,
                encap=encap,
                remote_networks=[e.remote_ts],
                local_networks=[e.local_ts],
                peer=peer,
                outbound=outbound,
                inbound=[inbound],
                send_keepalives=encap is not Encap.ESP and self.settings.nat_keepalive > 0,
                stream=stream,
            )
            session.tunnels[pair] = name
        else:
            self.dataplane.install_sas(
                name,
                outbound=outbound,
                inbound=[inbound],
                retire_old=e.rekey_of is not None,
            )
        session.child_tunnel[e.inbound_spi] = name
        watch_child(self.engine, self.dataplane, e.inbound_spi)
        session.encapsulation = e.encapsulation
        session.children[e.inbound_spi] = e
        session.child_times[e.inbound_spi] = time.time()
        if e.rekey_of is not None:
            session.children.pop(e.rekey_of, None)
        if self.keylog:
            nat = session.established.nat
            self.keylog.child(
                e, local_behind_nat=nat.local_behind_nat, peer_behind_nat=nat.remote_behind_nat
            )
        if session.lan_to_lan is not None:
            self._activate(session)
        who = (
            f"LAN-to-LAN Group ({session.lan_to_lan})"
            if session.lan_to_lan
            else f"User ({session.user})"
        )
        self.log.info(
            "IKE/120",
            f"{self._prefix(session)} Security negotiation complete for {who} "
            f"Responder, Inbound SPI = 0x{e.inbound_spi:08x}, "
            f"Outbound SPI = 0x{e.outbound_spi:08x} "
            f"({naming.protocol_name(e.encapsulation)}, {e.encryption}/{e.integrity})",
            e.peer[0],
        )
        if e.rekey_of is not None and not e.started_by_peer:
            self.log.info(
                "IKE/122",
                f"{self._prefix(session)} IPsec SA rekeyed by the concentrator "
                f"(its lifetime {e.lifetime_seconds} s)",
                e.peer[0],
            )

    def _on_ChildSaDeleted(self, e: ChildSaDeleted) -> None:
        session = self.sessions.get(e.handle)
        if session is not None:
            session.children.pop(e.inbound_spi, None)
        if e.reason != "rekeyed":
            self.dataplane.remove_inbound_sa(e.inbound_spi)
        name = session.child_tunnel.pop(e.inbound_spi, None) if session else None
        if session is not None and name is not None and name not in session.child_tunnel.values():
            # The pair's last child is gone (not replaced by a rekey): so is its tunnel, or
            # its route would keep sealing with an SA the peer has deleted.
            self.dataplane.remove_tunnel(name)
            session.tunnels = {p: n for p, n in session.tunnels.items() if n != name}

    def _end_session(self, handle: SaHandle, reason: str) -> None:
        session = self.sessions.pop(handle, None)
        if session is None:
            return
        for name in session.tunnels.values():
            self.dataplane.remove_tunnel(name)
        if session.active:
            self.log.info(
                "IKE/50",
                f"{self._prefix(session)} Session disconnected. Session "
                f"Type: {naming.protocol_name(session.encapsulation)}, Duration: "
                f"{int(time.time() - session.login_time)}s, Reason: {reason}",
                session.established.peer[0],
            )

    def _on_Phase1Deleted(self, e: Phase1Deleted) -> None:
        if e.replaced_by is None:
            self._end_session(e.handle, e.reason)

    def _on_PeerDead(self, e: PeerDead) -> None:
        self.log.warning(
            "IKE/123",
            f"peer {e.peer[0]}:{e.peer[1]} stopped answering DPD "
            f"({e.unanswered} R-U-THERE unanswered)",
            e.peer[0],
        )
        self._end_session(e.handle, "peer not responding (DPD)")

    def _on_PeerEndpointChanged(self, e: PeerEndpointChanged) -> None:
        session = self.sessions.get(e.handle)
        if session is None:
            return
        self.log.info(
            "IKE/37",
            f"{self._prefix(session)} peer moved {e.old[0]}:{e.old[1]} -> {e.new[0]}:{e.new[1]}",
            e.new[0],
        )

    def _on_ExchangeFailed(self, e: ExchangeFailed) -> None:
        session = self.sessions.get(e.handle) if e.handle is not None else None
        who = f"{self._prefix(session)} " if session is not None else ""
        if e.stage == "modecfg":  # an authenticated client left without an address
            self.log.warning(
                "IKE/184",
                f"{who}Mode-Config with {e.peer[0]}:{e.peer[1]} failed: {e.reason}; IKE SA deleted",
                e.peer[0],
            )
            return
        self.log.warning(
            "IKE/167",
            f"{who}{e.stage} with {e.peer[0]}:{e.peer[1]} failed: {e.reason}",
            e.peer[0],
            limit=f"failed {e.stage}",
        )

    def _on_PacketDropped(self, e: PacketDropped) -> None:
        self.report.dropped(e)

    def _on_IkeFragments(self, e: IkeFragments) -> None:
        self.report.fragments(e)

    def _on_RequestRetransmitted(self, e: RequestRetransmitted) -> None:
        self.report.retransmitted(e)

    def _on_dataplane_event(self, event) -> None:
        if isinstance(event, VolumeReached):
            volume_reached(self.engine, self.driver.apply, event, self.loop.time())
        elif isinstance(event, DataplaneEndpointChanged):
            self.log.info(
                "IPSEC/17",
                f"tunnel {event.tunnel}: peer endpoint "
                f"{event.old} -> {event.new} (NAT mapping changed)",
            )

    # --- status and control ---------------------------------------------------------------

    def _sa_records(self, session: Session) -> tuple[IkeSaRecord, list[IpsecSaRecord], int]:
        """The session's IKE SA, its IPsec SAs and the peer's (translated) port."""
        now_wall, now = time.time(), self.loop.time()
        e = session.established
        first = self._first_tunnel(session)
        # The translated UDP port the peer's ESP comes from (the IKE port for plain ESP).
        peer_port = first.peer[1] if first and first.peer and first.peer[1] else e.peer[1]
        ike = IkeSaRecord(
            session_id=session.session_id,
            encryption=naming.encryption_name(e.algorithms.encryption),
            hashing=naming.hash_name(e.algorithms.hash),
            dh_group=naming.dh_group_name(e.algorithms.dh_group),
            auth_mode=naming.auth_mode_name(e.algorithms.auth_method),
            negotiation_mode=e.mode.capitalize(),
            rekey_interval=e.algorithms.lifetime,
            initiator_cookie=e.handle.icookie.hex(),
            responder_cookie=e.handle.rcookie.hex(),
            established_at=now_wall,
            nat_t=e.nat.natt_version or "",
            local_behind_nat=e.nat.local_behind_nat,
            remote_behind_nat=e.nat.remote_behind_nat,
        )
        ipsec = []
        for offset, (spi, child) in enumerate(session.children.items(), start=1):
            name = session.child_tunnel.get(spi)
            tunnel = self.dataplane.tunnel(name) if name else None
            inbound = tunnel.inbound.get(spi) if tunnel else None
            outbound = tunnel.outbound if tunnel else None
            current = outbound is not None and outbound.spi == child.outbound_spi
            encapsulated = child.encapsulation not in (Encap.TUNNEL, Encap.TCP)
            on_tcp = child.encapsulation is Encap.TCP
            ipsec.append(
                IpsecSaRecord(
                    session_id=session.session_id * 100 + offset,
                    remote_address=naming.netmask_text(child.remote_ts),
                    local_address=naming.netmask_text(child.local_ts),
                    encryption=naming.encryption_name(child.encryption),
                    hashing=naming.hash_name(child.integrity),
                    encapsulation_mode="Tunnel",
                    udp_source_port=peer_port if encapsulated else None,
                    udp_destination_port=child.local_port if encapsulated else None,
                    tcp_source_port=peer_port if on_tcp else None,
                    tcp_destination_port=child.local_port if on_tcp else None,
                    rekey_interval=child.lifetime_seconds,
                    spi_in=f"0x{spi:08x}",
                    spi_out=f"0x{child.outbound_spi:08x}",
                    bytes_rx=inbound.bytes if inbound else 0,
                    bytes_tx=outbound.bytes if outbound and current else 0,
                    packets_rx=inbound.packets if inbound else 0,
                    packets_tx=outbound.packets if outbound and current else 0,
                    idle_seconds=now - (tunnel.last_rx or tunnel.created_at) if tunnel else 0.0,
                    established_at=session.child_times.get(spi, now_wall),
                )
            )
        return ike, ipsec, peer_port

    def _first_tunnel(self, session: Session) -> Tunnel | None:
        return next(iter(self._tunnels(session)), None)

    def _counters(self, session: Session) -> tuple[int, int]:
        """Bytes sent and received over all of the session's tunnels."""
        tunnels = self._tunnels(session)
        return (
            sum(t.counters.tx_bytes for t in tunnels),
            sum(t.counters.rx_bytes for t in tunnels),
        )

    def _encryption(self, session: Session) -> str:
        children = session.children
        return naming.encryption_name(
            next(iter(children.values())).encryption
            if children
            else session.established.algorithms.encryption
        )

    def _vpn_sessions(self) -> int:
        """Remote-access and LAN-to-LAN sessions: what the Concurrent Sessions Limit caps."""
        return sum(1 for s in self.sessions.values() if s.active)

    def _active(self, lan_to_lan: bool) -> list[Session]:
        return sorted(
            (
                s
                for s in self.sessions.values()
                if s.active and (s.lan_to_lan is not None) == lan_to_lan
            ),
            key=lambda s: s.session_id,
        )

    def session_records(self) -> list[SessionRecord]:
        """Remote-access sessions (Administer Sessions' 'Remote Access Sessions')."""
        records = []
        for session in self._active(lan_to_lan=False):
            e = session.established
            tunnel = self._first_tunnel(session)
            client_type, client_version = naming.split_app_version(session.app_version)
            ike, ipsec, peer_port = self._sa_records(session)
            bytes_tx, bytes_rx = self._counters(session)
            records.append(
                SessionRecord(
                    username=session.user or "-",
                    group=session.group or "-",
                    assigned_ip=str(session.assigned or "-"),
                    public_ip=(tunnel.peer[0] if tunnel and tunnel.peer else e.peer[0]),
                    public_port=peer_port,
                    protocol=naming.protocol_name(session.encapsulation),
                    encryption=self._encryption(session),
                    login_time=session.login_time,
                    client_type=client_type,
                    client_version=client_version,
                    bytes_tx=bytes_tx,
                    bytes_rx=bytes_rx,
                    ike=ike,
                    ipsec=ipsec,
                )
            )
        return records

    def lan_to_lan_records(self) -> list[LanToLanRecord]:
        """LAN-to-LAN sessions (Administer Sessions' 'LAN-to-LAN Sessions')."""
        records = []
        for session in self._active(lan_to_lan=True):
            e = session.established
            tunnel = self._first_tunnel(session)
            ike, ipsec, peer_port = self._sa_records(session)
            bytes_tx, bytes_rx = self._counters(session)
            entry = self.settings.lan_to_lan.get(session.lan_to_lan or "")
            records.append(
                LanToLanRecord(
                    connection_name=session.lan_to_lan or "-",
                    ip_address=(tunnel.peer[0] if tunnel and tunnel.peer else e.peer[0]),
                    public_port=peer_port,
                    protocol=naming.protocol_name(session.encapsulation),
                    encryption=self._encryption(session),
                    login_time=session.login_time,
                    bytes_tx=bytes_tx,
                    bytes_rx=bytes_rx,
                    local_networks=[str(n) for n in entry.local_networks] if entry else [],
                    remote_networks=[str(n) for n in entry.remote_networks] if entry else [],
                    ike=ike,
                    ipsec=ipsec,
                )
            )
        return records

    def summary(self) -> SessionSummary:
        lan_to_lan = len(self._active(lan_to_lan=True))
        active = len(self._active(lan_to_lan=False))
        management = len(self.admins.active())
        self.peak_sessions = max(self.peak_sessions, lan_to_lan + active + management)
        return SessionSummary(
            lan_to_lan,
            active,
            management,
            self.peak_sessions,
            self.settings.max_sessions,
            self.total_sessions,
        )

    def logout(self, user: str) -> int:
        handles = [s.handle for s in self._active(lan_to_lan=False) if s.user == user]
        if not handles:
            raise ControlError(f"no session of user {user!r}")
        return self._logout(handles)

    def logout_lan_to_lan(self, connection: str) -> int:
        """Administer Sessions' Logout on a LAN-to-LAN row: the entry's session ends (Delete
        sent to the peer); the peer brings the tunnel up again when it wants to."""
        handles = [s.handle for s in self._active(lan_to_lan=True) if s.lan_to_lan == connection]
        if not handles:
            raise ControlError(f"no LAN-to-LAN session of connection {connection!r}")
        return self._logout(handles)

    def _logout(self, handles: list[SaHandle]) -> int:
        for handle in handles:
            self._end_session(handle, "Administrator logout")
            self.driver.apply(self.engine.delete(handle, self.loop.time()))
        return len(handles)

    def reload(self, settings: ConcentratorSettings) -> str:
        """Apply a new configuration to new negotiations; established sessions stay up.
        Changes that need other sockets (address, IPsec-over-UDP/TCP port) need a restart."""
        if (settings.public_address, settings.ipsec_over_udp, settings.ipsec_over_tcp) != (
            self.settings.public_address,
            self.settings.ipsec_over_udp,
            self.settings.ipsec_over_tcp,
        ):
            return "restart"
        self.engine.policy = build_policy(settings, credentials_for(settings))
        kept = {
            n: p
            for n, p in self.hooks.pools.items()
            if n in settings.groups and settings.groups[n].pool == self.settings.groups[n].pool
        }
        self.hooks.update(settings, kept)
        self._route_lan_to_lan(settings)
        if tun_mtu(settings) != self.tun.mtu:
            self.tun.set_mtu(tun_mtu(settings))
            self.dataplane.mtu_changed(self.tun.mtu)
        self.settings = settings
        self.log.set_level(settings.log_level)
        self.log.info(
            "CONFIG/1",
            f"configuration reloaded: Fragmentation Policy {settings.fragmentation_policy} "
            f"(TUN MTU {self.tun.mtu}), NAT-T "
            f"{'on' if settings.nat_t else 'off'}, IPsec over UDP "
            f"{settings.ipsec_over_udp or 'off'}, IPsec over TCP "
            f"{settings.ipsec_over_tcp or 'off'}"
            + "".join(
                f", LAN-to-LAN {e.name} NAT-T {'on' if e.nat_t else 'off'}"
                for e in settings.lan_to_lan.values()
            ),
        )
        return "reloaded"

    def stats(self) -> dict:
        stats = {
            "ike": dict(self.engine.stats),
            "ike_sas": {
                "total": len(self.engine.sas),
                "established": len(self.engine.established()),
            },
            "drops": self.report.counts(),
            "log": {"suppressed": self.log.suppressed, "rotations": self.log.rotations},
            "dataplane": self.dataplane.stats(),
        }
        if self.tcp is not None:
            stats["tcp"] = self.tcp.stats()
        return stats
