"""The site agent (kind `vpn-site`): a branch office's end of a LAN-to-LAN tunnel.

The client agent's connection handling (connect, reconnect, DPD, rekeys, the data plane)
with a site-to-site initiator: main mode with the pre-shared key, no XAUTH and no
Mode-Config, one quick mode per (local, remote) network pair with ID_IPV4_ADDR_SUBNET
selectors, NAT-T offered when the setting is on. Each remote network is routed into the
TUN from our LAN address, so the site's LAN hosts (their gateway is this node) reach the
remote LAN only through the tunnel.
"""

from __future__ import annotations

from ..esp import DEFAULT_TUNNEL_MTU
from ..ike import ChildSaEstablished, InitiatorConfig
from ..ike.config import NattMode
from ..ike.constants import AuthMethod, IdType
from .client import ClientAgent
from .eventlog import EventLog
from .loop import EventLoop
from .records import ClientStatus
from .settings import SiteSettings, phase1_proposal, phase2_proposal
from .tun import run_ip_batch


def build_site_config(settings: SiteSettings) -> InitiatorConfig:
    return InitiatorConfig(
        group=settings.node,  # not sent: main mode identifies a site by its address
        psk=settings.psk.encode(),
        exchange="main",
        id_type=IdType.IPV4_ADDR,
        phase1=tuple(
            phase1_proposal(p, AuthMethod.PSK, settings.ike_lifetime)
            for p in settings.ike_proposals
        ),
        phase2=tuple(phase2_proposal(p, settings.ipsec_lifetime) for p in settings.ipsec_proposals),
        natt=NattMode.NATT if settings.nat_t else NattMode.NONE,
        modecfg="none",
        local_networks=settings.local_networks,
        remote_networks=settings.remote_networks,
        dpd_idle=settings.dpd.interval,
        dpd_retry=settings.dpd.retry_interval,
        dpd_max_retries=settings.dpd.retries,
    )


class SiteAgent(ClientAgent):
    settings: SiteSettings  # type: ignore[assignment]

    def __init__(self, settings: SiteSettings, loop: EventLoop, log: EventLog):
        # The client agent reads only what the methods below override or both share.
        super().__init__(settings, loop, log)  # type: ignore[arg-type]

    @property
    def tcp_mode(self) -> bool:
        return False

    def _server(self) -> str:
        return str(self.settings.peer)

    def _new_status(self, state: str, **fields) -> ClientStatus:
        return ClientStatus(
            state, str(self.settings.peer), "LAN-to-LAN", self.settings.node, **fields
        )

    def _initiator_config(self) -> InitiatorConfig:
        return build_site_config(self.settings)

    def _cisco_port(self) -> int | None:
        return None

    def _tun_mtu(self) -> int:
        return DEFAULT_TUNNEL_MTU

    def _tunnel_up(self, e: ChildSaEstablished) -> None:
        """The remote network goes into the TUN, from our LAN address (the selector's side)."""
        network = str(e.remote_ts)
        if network in self.routes:
            return
        src = self.settings.lan_address
        command = ["route", "replace", network, "dev", self.tun.name]
        if src is not None:
            command += ["src", str(src)]
        self.routes.append(network)  # recorded first: the teardown removes it
        run_ip_batch([command])
        self.status.split_networks = list(self.routes)

    def reload(self, settings: SiteSettings) -> str:  # type: ignore[override]
        self.settings = settings
        self.log.set_level(settings.log_level)
        self.log.info("CONFIG/1", "configuration reloaded (used from the next connection)")
        return "reloaded"
