"""Configuration of the engine: plain dataclasses, no I/O.  Secrets stay out of repr()."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from .constants import (
    CISCO_UDP_DEFAULT_PORT,
    IKE_PORT,
    INITIATOR_SIGNS,
    NATT_PORT,
    RESPONDER_SIGNS,
    XAUTH_AFTER,
    AuthMethod,
    EspAuth,
    EspTransform,
    IdType,
    P1Encryption,
    P1Hash,
)
from .crypto import MODP_PRIMES, esp_cipher, ike_cipher
from .errors import IkeConfigError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from cryptography.x509 import Certificate

    from .pki import Issued
from .fragments import MIN_FRAGMENT_SIZE
from .modecfg import DEFAULT_REQUEST, ModeConfig
from .vendor import NattVersion

ALL_NETWORKS = IPv4Network("0.0.0.0/0")


class NattMode(StrEnum):
    """How the client gets ESP through NATs (``InitiatorConfig.natt``)."""

    NATT = "natt"  # announce NAT-T, float to the NAT-T port when a NAT is seen
    FORCE = "force"  # NAT-T, and claim to be behind a NAT (fake NAT-D)
    NONE = "none"  # no NAT-T at all: plain ESP
    CISCO_UDP = "cisco-udp"  # ask for the gateway's IPsec-over-UDP port (Mode-Config 0x7005)
    # Both, as the Cisco VPN Client's "IPsec over UDP (NAT / PAT)": NAT-T when the gateway
    # floats, else its IPsec-over-UDP port when it gives one, else plain ESP.
    AUTO = "auto"
    # IPsec over TCP: the caller carries every datagram (``Datagram.tcp``) on one TCP
    # connection; no NAT-T, quick mode in plain tunnel mode.
    TCP = "tcp"

    @property
    def offers_natt(self) -> bool:
        return self in (NattMode.NATT, NattMode.FORCE, NattMode.AUTO)

    @property
    def asks_cisco_udp(self) -> bool:
        return self in (NattMode.CISCO_UDP, NattMode.AUTO)

    @property
    def asks_transport_port(self) -> bool:
        """Ask for Mode-Config 0x7005 (the gateway's IPsec-over-UDP/TCP port): only modes
        that can use it ask, and a gateway answers only what was asked."""
        return self.asks_cisco_udp or self is NattMode.TCP


SUPPORTED_AUTH = frozenset({AuthMethod.PSK, AuthMethod.XAUTH_INIT_PSK}) | RESPONDER_SIGNS


@dataclass(frozen=True)
class Phase1Proposal:
    """One phase-1 transform: cipher (+ key length), hash, DH group, auth method, lifetime."""

    encryption: P1Encryption = P1Encryption.AES_CBC
    key_bits: int | None = 128
    hash: P1Hash = P1Hash.SHA1
    group: int = 2
    auth: AuthMethod = AuthMethod.XAUTH_INIT_PSK
    lifetime: int = 86400

    def __post_init__(self) -> None:
        ike_cipher(self.encryption, self.key_bits)  # raises IkeConfigError when unsupported
        if self.hash not in (P1Hash.MD5, P1Hash.SHA1, P1Hash.SHA2_256):
            raise IkeConfigError(f"unsupported phase-1 hash {self.hash}")
        if self.group not in MODP_PRIMES:
            raise IkeConfigError(f"unsupported DH group {self.group}")
        if self.auth not in SUPPORTED_AUTH:
            raise IkeConfigError(f"unsupported auth method {self.auth}")
        if self.lifetime <= 0:
            raise IkeConfigError("phase-1 lifetime must be positive")

    def describe(self) -> str:
        from .crypto import HASH_NAMES

        cipher = ike_cipher(self.encryption, self.key_bits).name
        return f"{cipher}/{HASH_NAMES[self.hash]}/modp{self.group}/{self.auth.name.lower()}"


@dataclass(frozen=True)
class Phase2Proposal:
    """One ESP transform; ``pfs_group`` None means no PFS."""

    transform: EspTransform = EspTransform.AES_CBC
    key_bits: int | None = 128
    auth: EspAuth = EspAuth.HMAC_SHA1
    pfs_group: int | None = None
    lifetime: int = 28800
    lifetime_kb: int | None = None  # kilobytes each direction may carry (None: no limit)

    def __post_init__(self) -> None:
        esp_cipher(self.transform, self.key_bits)
        if self.lifetime_kb is not None and self.lifetime_kb <= 0:
            raise IkeConfigError("phase-2 kilobyte lifetime must be positive")
        if self.auth not in (EspAuth.HMAC_MD5, EspAuth.HMAC_SHA1, EspAuth.HMAC_SHA2_256):
            raise IkeConfigError(f"unsupported ESP integrity {self.auth}")
        if self.pfs_group is not None and self.pfs_group not in MODP_PRIMES:
            raise IkeConfigError(f"unsupported PFS group {self.pfs_group}")
        if self.lifetime <= 0:
            raise IkeConfigError("phase-2 lifetime must be positive")


def seed_phase1() -> tuple[Phase1Proposal, ...]:
    """The seed lab's IKE policy: 3DES-168 / MD5 / group 2 / PSK+XAUTH / 86400 s."""
    return (Phase1Proposal(P1Encryption.TRIPLE_DES_CBC, None, P1Hash.MD5, 2),)


def seed_phase2() -> tuple[Phase2Proposal, ...]:
    """The seed lab's IPsec policy: 3DES / MD5, 28800 s, no PFS."""
    return (Phase2Proposal(EspTransform.TRIPLE_DES, None, EspAuth.HMAC_MD5),)


def default_phase1(auth: AuthMethod = AuthMethod.XAUTH_INIT_PSK, group: int = 2):
    """AES-256/192/128 and 3DES with SHA1, SHA2-256 and MD5."""
    out = []
    for enc, bits in (
        (P1Encryption.AES_CBC, 256),
        (P1Encryption.AES_CBC, 192),
        (P1Encryption.AES_CBC, 128),
        (P1Encryption.TRIPLE_DES_CBC, None),
    ):
        for h in (P1Hash.SHA1, P1Hash.SHA2_256, P1Hash.MD5):
            out.append(Phase1Proposal(enc, bits, h, group, auth))
    return tuple(out)


def default_phase2(pfs_group: int | None = None):
    out = []
    for tr, bits in (
        (EspTransform.AES_CBC, 256),
        (EspTransform.AES_CBC, 128),
        (EspTransform.TRIPLE_DES, None),
    ):
        for auth in (EspAuth.HMAC_SHA1, EspAuth.HMAC_SHA2_256, EspAuth.HMAC_MD5):
            out.append(Phase2Proposal(tr, bits, auth, pfs_group))
    return tuple(out)


@dataclass(frozen=True)
class VendorIdentity:
    """Which vendor IDs the engine announces (defaults: what the seed's VPN 3000 sent)."""

    unity: bool = True
    xauth: bool = True
    dpd: bool = True
    fragmentation: bool = True
    vpn3000_version: tuple[int, int] | None = (3, 6)
    cisco_client: bool = False  # "ALTIGA NETWORKS": the Cisco VPN Client's ID


@dataclass(frozen=True)
class GroupPolicy:
    """A tunnel group (the IKE ID a client sends in aggressive mode)."""

    name: str
    psk: bytes = field(repr=False)
    xauth: bool = True
    # "psk" (group password), "certificate" (RSA signatures: the client's certificate OU
    # names the group), "hybrid" (the gateway signs, the client is known by XAUTH only)
    auth: str = "psk"
    mode_config: ModeConfig = field(default_factory=ModeConfig)  # settings besides the address
    split_networks: tuple[IPv4Network, ...] = ()  # also acceptable as quick-mode remote IDs

    def __post_init__(self) -> None:
        if not self.psk and self.auth == "psk":
            raise IkeConfigError(f"group {self.name!r}: empty pre-shared key")
        if self.auth not in ("psk", "certificate", "hybrid"):
            raise IkeConfigError(f"group {self.name!r}: unknown auth {self.auth!r}")
        if self.auth == "hybrid" and not self.xauth:
            raise IkeConfigError(f"group {self.name!r}: hybrid auth needs XAUTH users")

    @property
    def accepted_auth(self) -> AuthMethod:
        """The phase-1 auth method this group's clients must negotiate."""
        if self.auth == "hybrid":
            return AuthMethod.HYBRID_INIT_RSA
        if self.auth == "certificate":
            return AuthMethod.XAUTH_INIT_RSA if self.xauth else AuthMethod.RSA_SIG
        return AuthMethod.XAUTH_INIT_PSK if self.xauth else AuthMethod.PSK


@dataclass(frozen=True)
class LanToLanPolicy:
    """A LAN-to-LAN entry (VPN 3000): main mode from ``peer`` uses this PSK and these
    proposals; its quick modes must select networks inside ``remote_networks`` (theirs) and
    ``local_networks`` (ours); NAT-T by its own switch, not the remote-access one."""

    name: str
    peer: str  # the peer's address as the responder sees it (its PAT's outside address)
    psk: bytes = field(repr=False)
    local_networks: tuple[IPv4Network, ...]
    remote_networks: tuple[IPv4Network, ...]
    phase1: tuple[Phase1Proposal, ...]
    phase2: tuple[Phase2Proposal, ...]
    natt_enabled: bool = False
    ike_lifetime: int = 86400
    ipsec_lifetime: int = 28800

    def __post_init__(self) -> None:
        if not self.psk:
            raise IkeConfigError(f"lan-to-lan {self.name!r}: empty pre-shared key")
        if not self.local_networks or not self.remote_networks:
            raise IkeConfigError(f"lan-to-lan {self.name!r}: needs local and remote networks")
        if not self.phase1 or not self.phase2:
            raise IkeConfigError(f"lan-to-lan {self.name!r}: needs phase-1 and phase-2 proposals")
        if any(p.auth != AuthMethod.PSK for p in self.phase1):
            raise IkeConfigError(f"lan-to-lan {self.name!r}: main mode with pre-shared keys only")

    def covers(self, local_ts: IPv4Network, remote_ts: IPv4Network) -> bool:
        """Quick-mode selectors inside this entry's networks."""
        return any(local_ts.subnet_of(n) for n in self.local_networks) and any(
            remote_ts.subnet_of(n) for n in self.remote_networks
        )


@dataclass(frozen=True)
class ResponderPolicy:
    """How the concentrator (responder) behaves."""

    groups: dict[str, GroupPolicy]
    # LAN-to-LAN peers, chosen by address in main mode (before any group)
    lan_to_lan: tuple[LanToLanPolicy, ...] = ()
    # XAUTH and plain-PSK variants: each group's ``xauth`` flag picks which apply to it.
    phase1: tuple[Phase1Proposal, ...] = field(
        default_factory=lambda: default_phase1() + default_phase1(AuthMethod.PSK)
    )
    phase2: tuple[Phase2Proposal, ...] = field(default_factory=default_phase2)
    ike_lifetime: int = 86400
    ipsec_lifetime: int = 28800
    ipsec_lifetime_kb: int | None = None  # kilobytes; the shorter of ours and the offer's
    send_responder_lifetime: bool = True
    # Start phase-2 rekeys on our own lifetime (rekey_margin before it ends), as strongSwan
    # does; off: the client rekeys (a VPN 3000 leaves it to the client).
    initiate_rekeys: bool = False
    rekey_margin: float = 0.2  # earlier than the client's default 0.1: one end leads
    # With initiate_rekeys off: rekey a child the client has not rekeyed this long before
    # its end (None: never). vpnc only renews phase 2 after the gateway's Delete at the
    # end of the lifetime, and seals that SA with its old keys (docs/NOTES.md, swanfix);
    # a gateway's quick mode it answers correctly. Later than any client's own rekey.
    late_rekey_margin: float | None = None
    child_rekey_grace: float = 5.0  # a child we rekeyed lingers this long
    # NAT transparency (the seed's check box).  Off: NAT-T VIDs ignored, no NAT-D, mode 1.
    natt_enabled: bool = True
    natt_versions: tuple[NattVersion, ...] = (
        NattVersion.RFC3947,
        NattVersion.DRAFT_03,
        NattVersion.DRAFT_02N,
        NattVersion.DRAFT_02,
    )
    natt_port: int = NATT_PORT
    # Cisco "IPsec over UDP": Mode-Cfg 0x7005 with this port; IKE stays on 500.
    cisco_udp_port: int | None = None
    # "IPsec over TCP": IKE fed with ``receive(..., tcp=True)`` may start SAs; such SAs never
    # use NAT-T or IPsec over UDP (TCP first, then NAT-T, then UDP, as on a VPN 3000) and
    # report this port in Mode-Cfg 0x7005 (what a VPN 3000 sends there is UNCONFIRMED).
    tcp_port: int | None = None
    xauth_max_attempts: int = 3
    xauth_message: str | None = None
    modecfg_push: bool = False  # True: server SETs after XAUTH instead of answering a REQUEST
    main_mode_group: str | None = None  # group whose PSK main-mode peers use
    allowed_remote_networks: tuple[IPv4Network, ...] = (ALL_NETWORKS,)
    app_version: str = "Cisco Systems, Inc./VPN 3000 Concentrator Version 4.0.1.B built by labctl"
    vendor: VendorIdentity = field(default_factory=VendorIdentity)
    dpd_idle: float | None = 60.0
    dpd_retry: float = 5.0
    dpd_max_retries: int = 5
    retransmit_interval: float = 2.0
    retransmit_max: int = 5
    half_open_timeout: float = 30.0
    exchange_timeout: float = 30.0
    max_half_open_per_peer_ip: int = 64
    # Debian bookworm's vpnc deletes the new SA instead of the old one after a phase-1 rekey;
    # with this on, such a delete (on a just-rekeyed SA, naming itself) removes the old one.
    vpnc_rekey_delete_quirk: bool = True
    # RSA signature authentication (main mode): our certificate, the CA we trust, the group
    # of a certificate peer whose OU names none, the wall clock (certificate validity).
    certificate: Issued | None = field(default=None, repr=False)
    ca: Certificate | None = field(default=None, repr=False)
    certificate_group: str | None = None
    clock: Callable[[], datetime] | None = field(default=None, repr=False)
    # Cisco IKE fragmentation (vendor.fragmentation announces it): phase-1 messages longer
    # than this go out as fragments to a peer that announced it too.
    fragment_size: int = 576

    def __post_init__(self) -> None:
        if not self.groups and not self.lan_to_lan:
            raise IkeConfigError("responder policy without any group or LAN-to-LAN entry")
        peers = [entry.peer for entry in self.lan_to_lan]
        if len(set(peers)) != len(peers):
            raise IkeConfigError("two LAN-to-LAN entries for one peer address")
        for name, group in self.groups.items():
            if name != group.name:
                raise IkeConfigError(f"group key {name!r} differs from its name {group.name!r}")
        if self.groups and (not self.phase1 or not self.phase2):
            raise IkeConfigError("responder policy needs phase-1 and phase-2 proposals")
        if self.main_mode_group is not None and self.main_mode_group not in self.groups:
            raise IkeConfigError(f"main_mode_group {self.main_mode_group!r} is not a group")
        if self.xauth_max_attempts < 1:
            raise IkeConfigError("xauth_max_attempts must be at least 1")
        if not 0 < self.rekey_margin < 1:
            raise IkeConfigError("rekey_margin must be between 0 and 1")
        if self.fragment_size < MIN_FRAGMENT_SIZE:
            raise IkeConfigError(f"fragment_size must be at least {MIN_FRAGMENT_SIZE}")
        signs = any(p.auth in RESPONDER_SIGNS for p in self.phase1)
        if signs and (self.certificate is None or self.ca is None):
            raise IkeConfigError("RSA signature proposals need a certificate and a CA")
        for group in self.groups.values():
            if group.auth != "psk" and not any(p.auth in RESPONDER_SIGNS for p in self.phase1):
                raise IkeConfigError(f"group {group.name!r}: {group.auth} auth needs RSA proposals")

    @staticmethod
    def cisco_udp(port: int = CISCO_UDP_DEFAULT_PORT, **kwargs) -> ResponderPolicy:
        """IPsec over UDP instead of NAT-T (Cisco proprietary)."""
        return ResponderPolicy(natt_enabled=False, cisco_udp_port=port, **kwargs)


@dataclass(frozen=True)
class InitiatorConfig:
    """How the client (initiator) connects."""

    group: str
    psk: bytes = field(repr=False)
    user: str | None = None
    password: bytes = field(default=b"", repr=False)
    exchange: str = "aggressive"  # or "main"
    id_type: IdType = IdType.KEY_ID
    phase1: tuple[Phase1Proposal, ...] = field(default_factory=default_phase1)
    phase2: tuple[Phase2Proposal, ...] = field(default_factory=default_phase2)
    natt: NattMode = NattMode.NATT  # a NattMode or its value ("natt", "auto", ...)
    natt_versions: tuple[NattVersion, ...] = (
        NattVersion.RFC3947,
        NattVersion.DRAFT_03,
        NattVersion.DRAFT_02N,
        NattVersion.DRAFT_02,
    )
    natt_port: int = NATT_PORT
    ike_port: int = IKE_PORT
    modecfg: str = "pull"  # "pull" (REQUEST/REPLY, vpnc), "push" (wait for SET), "none"
    modecfg_request: tuple[int, ...] = DEFAULT_REQUEST
    app_version: str = "Cisco Systems VPN Client 4.0.3 (Rel):Linux"
    hostname: str | None = None
    remote_networks: tuple[IPv4Network, ...] = (ALL_NETWORKS,)
    # LAN-to-LAN: our own networks; one quick mode per (local, remote) pair, with these as
    # our selector instead of our address.  Empty: a remote-access client.
    local_networks: tuple[IPv4Network, ...] = ()
    use_split_networks: bool = False  # one quick mode per split-include network instead
    initial_contact: bool = True
    vendor: VendorIdentity = field(
        default_factory=lambda: VendorIdentity(fragmentation=False, vpn3000_version=None)
    )
    dpd_idle: float | None = 300.0
    dpd_retry: float = 5.0
    dpd_max_retries: int = 5
    altiga_keepalive_interval: float | None = None  # Cisco client "HEARTBEAT" notify 40500
    auto_rekey: bool = True
    rekey_margin: float = 0.1  # rekey when this fraction of the lifetime is left
    child_rekey_grace: float = 5.0  # old child stays this long after its successor is up
    retransmit_interval: float = 2.0
    retransmit_max: int = 5
    fragment_size: int = 576  # see ResponderPolicy.fragment_size
    certificate: Issued | None = field(default=None, repr=False)  # see ResponderPolicy
    ca: Certificate | None = field(default=None, repr=False)
    clock: Callable[[], datetime] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.exchange not in ("aggressive", "main"):
            raise IkeConfigError(f"exchange must be 'aggressive' or 'main', not {self.exchange!r}")
        try:
            object.__setattr__(self, "natt", NattMode(self.natt))  # frozen: set once, here
        except ValueError:
            raise IkeConfigError(f"unknown natt mode {self.natt!r}") from None
        if self.modecfg not in ("pull", "push", "none"):
            raise IkeConfigError(f"unknown modecfg style {self.modecfg!r}")
        if not self.phase1 or not self.phase2:
            raise IkeConfigError("initiator needs phase-1 and phase-2 proposals")
        groups = {p.group for p in self.phase1}
        if self.exchange == "aggressive" and len(groups) != 1:
            raise IkeConfigError(
                "aggressive mode sends one KE: all phase-1 proposals need one group"
            )
        pfs = {p.pfs_group for p in self.phase2}
        if len(pfs) != 1:
            raise IkeConfigError("all phase-2 proposals need the same PFS group (one KE)")
        needs_xauth = any(p.auth in XAUTH_AFTER for p in self.phase1)
        if needs_xauth and self.user is None:
            raise IkeConfigError("XAUTH proposals need a user name")
        if not 0 < self.rekey_margin < 1:
            raise IkeConfigError("rekey_margin must be between 0 and 1")
        if self.fragment_size < MIN_FRAGMENT_SIZE:
            raise IkeConfigError(f"fragment_size must be at least {MIN_FRAGMENT_SIZE}")
        if any(p.auth in INITIATOR_SIGNS for p in self.phase1) and self.certificate is None:
            raise IkeConfigError("RSA signature proposals need a certificate and a CA")
        if any(p.auth in RESPONDER_SIGNS for p in self.phase1) and self.ca is None:
            raise IkeConfigError("RSA signature proposals need a certificate and a CA")
