"""IKEv1 + NAT-T protocol engine, sans-I/O.

The engine never touches sockets, threads or clocks.  The caller (the agent) feeds it
datagrams and the current time and gets back an :class:`Output`: datagrams to send, typed
events, and the time at which ``tick`` must be called next (``Output.next_deadline``; also
``engine.next_deadline()``).  ``now`` is a float in seconds from any monotonic clock.
Endpoints are ``(ip: str, port: int)`` tuples.

Responder (the concentrator)
----------------------------
``Responder(policy: ResponderPolicy, hooks: ResponderHooks)`` -- many peers at once::

    receive(data: bytes, remote: Endpoint, local: Endpoint, now: float, *, tcp=False) -> Output
    tick(now: float) -> Output
    delete(handle: SaHandle, now: float) -> Output                 # log a client out
    delete_child(handle: SaHandle, inbound_spi: int, now: float) -> Output
    dpd(handle: SaHandle, now: float) -> Output                    # R-U-THERE now
    note_traffic(handle: SaHandle, now: float) -> None             # ESP seen: postpone DPD
    sa_for_spi(inbound_spi: int) -> SaHandle | None
    sessions() -> list[SessionInfo]                                # status tables, no keys
    established() -> list[IkeSa]; stats: Counter[str]              # received, dropped, ...

Rules it follows (the seed's PAT case): SAs are keyed by cookies, never by address; after an
authenticated message it answers the latest source (ip, port) and reports
:class:`PeerEndpointChanged`; INITIAL-CONTACT removes only SAs of the same group AND XAUTH user
AND peer IP (plain PSK: same group and same ip:port); a datagram identical to one already
answered gets the cached answer and changes nothing.  Policy switches: ``natt_enabled=False``
(the seed's trouble case: NAT-T VIDs ignored, no NAT-D, quick mode in plain tunnel mode),
``cisco_udp_port`` (IPsec over UDP: Mode-Cfg 0x7005, IKE stays on 500, quick mode mode 1),
``tcp_port`` (IPsec over TCP, below),
``modecfg_push``, ``main_mode_group``, ``natt_versions`` (``(NattVersion.DRAFT_02N,)`` sends
the seed's VPN 3000 VID and NAT-D payload 130).

Initiator (the client)
----------------------
``Initiator(config: InitiatorConfig)`` -- one connection to one gateway::

    start(now: float, local: Endpoint, remote: Endpoint) -> Output
    receive(data: bytes, remote: Endpoint, local: Endpoint, now: float, *, tcp=False) -> Output
    tick(now: float) -> Output
    delete(now: float) -> Output                  # disconnect (deletes children + phase 1)
    dpd(now: float) -> Output
    rekey_phase1(now: float) -> Output            # also automatic (auto_rekey, rekey_margin)
    rekey_child(inbound_spi: int, now: float) -> Output
    add_child(remote_network: str | IPv4Network, now: float) -> Output
    handle -> SaHandle | None; mode_config -> ModeConfig | None; children(); sessions()

Datagrams and the non-ESP marker
--------------------------------
``Datagram.data`` is the ISAKMP message WITHOUT the 4-byte non-ESP marker.  Send it from
local UDP port ``Datagram.local_port`` to ``Datagram.remote``; when ``non_esp_marker`` is true
(always, and only, on the NAT-T port 4500) prepend ``00 00 00 00`` -- ``wire_bytes()`` does.
Incoming on the NAT-T port: first four bytes zero -> IKE (strip them, then ``receive``); a
lone ``0xFF`` -> NAT keepalive (drop); anything else -> ESP (to the ESP layer).  On 500
everything is IKE.  With Cisco IPsec over UDP IKE stays on 500 and ESP travels without
marker on the configured port; ``ChildSaEstablished.udp_port`` is then the configured port
and the client's real (translated) source port must be learned from its first ESP packet.

IPsec over TCP
--------------
The caller runs one TCP connection per client session (labctl.agent.tcp_transport frames
it as Cisco cTCP records) and feeds what arrives with ``receive(..., tcp=True)``; the initiator
uses ``InitiatorConfig(natt="tcp")``.  Such SAs emit ``Datagram.tcp`` (send ``data`` on the
connection to ``remote``; no marker), never float, ignore NAT-T and IPsec-over-UDP requests
(TCP first, then NAT-T, then UDP), and their children have encapsulation ``"tcp"`` with
``udp_port``/``local_port`` holding the TCP ports.  A message of a TCP SA arriving over UDP
or on another connection is dropped (``stats["wrong_transport"]``); a TCP first message
when ``ResponderPolicy.tcp_port`` is None is dropped (``stats["tcp_disabled"]``).

Hooks (responder, synchronous, must not block)
----------------------------------------------
``authenticate(XauthRequest) -> bool``; ``assign_address(SessionContext) -> ModeConfig | None``
(address plus per-user settings; merged over the group's ``GroupPolicy.mode_config``, the
hook's values win); ``release_address(SessionContext, ModeConfig) -> None`` (called when a
session ends for good -- not when a phase-1 rekey moves it to a new SA).
:class:`SimpleHooks` (user table + :class:`AddressPool`) covers labs.

Events
------
:class:`Phase1Established` (algorithms, DH group, auth and negotiation mode, lifetime,
:class:`NatStatus`: local/remote behind NAT, NAT-T version, float, encapsulation),
:class:`XauthResult`, :class:`ModeConfigApplied` (responder; style pull/push/inherited),
:class:`ModeConfigReceived` (initiator), :class:`ChildSaEstablished` (SPIs, cipher and
integrity with keys per direction, encapsulation tunnel / udp-tunnel / udp-tunnel-draft /
cisco-udp / tcp, traffic selectors, lifetimes, ``rekey_of``), :class:`ChildSaDeleted`,
:class:`Phase1Rekeyed`, :class:`Phase1Deleted` (``replaced_by`` after a rekey),
:class:`PeerDead`, :class:`PeerEndpointChanged`, :class:`NotifyReceived`,
:class:`ExchangeFailed` (stage + reason + notify), :class:`PacketDropped` (category, exchange,
payload, reason; ``stale`` for late messages of an SA removed a moment ago),
:class:`RequestRetransmitted` (a request still unanswered: what it waits for, how long).
``engine.waiting()`` lists the unanswered requests (:class:`Waiting`) for status displays.
Key material is
``bytes`` in fields excluded from repr(); so are PSKs and passwords in the config classes.

Children (ESP SAs) belong to their phase-1 SA: they move to the SA that replaced it (phase-1
rekey) and are deleted with it otherwise.  Malformed, unauthenticated or replayed input never
raises: it is counted in ``stats`` and reported as :class:`PacketDropped`, and never changes
an established SA (a property test checks this).  Only :class:`IkeError` subclasses are
expected from the codec; anything else escaping ``receive`` is a bug.

Compatibility notes: vpnc (Debian bookworm) names the new SA when deleting the old one after
its phase-1 rekey; ``ResponderPolicy.vpnc_rekey_delete_quirk`` (default on) maps it back.

Lab-only key export: :mod:`labctl.ike.keyexport` formats Wireshark ``ikev1_decryption_table``
and ``esp_sa`` lines from :class:`Phase1Established` / :class:`ChildSaEstablished`; agents
must keep writing them behind an off-by-default debug switch.

Layout: :mod:`labctl.ike.engine` (receive, timers, bookkeeping), one table
:mod:`labctl.ike.transitions` ((role, state, exchange, kind) -> step), one module per
exchange in :mod:`labctl.ike.exchanges` holding both roles' steps, the roles' policy and
API in :mod:`.initiator` / :mod:`.responder`; the wire format in :mod:`.codec` and its
payload-family modules; docs/architecture.md has the map and the recipes.

Crypto: OpenSSL's, through the stdlib's ``hashlib`` (hashes, HMAC) and
:mod:`labctl.libcrypto` (CBC contexts and MODP exponentiation by ctypes, with cryptography /
``pow()`` fallbacks where libcrypto cannot be loaded); all of it behind
:mod:`labctl.ike.crypto`. ``cryptography`` serves certificates only (:mod:`.pki`, imported
where a certificate is used), so a pre-shared-key agent never loads it.
"""

from .codec import (
    Attribute,
    AttributePayload,
    DeletePayload,
    EncryptedMessage,
    HashPayload,
    IdPayload,
    KePayload,
    Message,
    NatDPayload,
    NatOaPayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    RawPayload,
    SaPayload,
    Transform,
    VendorIdPayload,
    decode_chain,
    decode_header,
    decode_message,
    encode_chain,
)
from .config import (
    GroupPolicy,
    InitiatorConfig,
    LanToLanPolicy,
    NattMode,
    Phase1Proposal,
    Phase2Proposal,
    ResponderPolicy,
    VendorIdentity,
    default_phase1,
    default_phase2,
    seed_phase1,
    seed_phase2,
)
from .encapsulation import Encapsulation
from .errors import DropCategory, IkeConfigError, IkeDecodeError, IkeError, IkeProtocolError
from .events import (
    ChildInfo,
    ChildSaDeleted,
    ChildSaEstablished,
    Datagram,
    Endpoint,
    Event,
    ExchangeFailed,
    ModeConfigApplied,
    ModeConfigReceived,
    NatStatus,
    NotifyReceived,
    Output,
    PacketDropped,
    PeerDead,
    PeerEndpointChanged,
    Phase1Algorithms,
    Phase1Deleted,
    Phase1Established,
    Phase1Rekeyed,
    RequestRetransmitted,
    SaHandle,
    SessionInfo,
    Waiting,
    XauthResult,
)
from .hooks import (
    AddressPool,
    Refused,
    ResponderHooks,
    SessionContext,
    SimpleHooks,
    StaticUsers,
    XauthRequest,
)
from .initiator import Initiator
from .modecfg import ModeConfig
from .responder import Responder
from .states import ModeCfgState, Phase1State, Role, XauthState
from .vendor import NattVersion, PeerVendorInfo

__all__ = [
    "AddressPool",
    "Attribute",
    "AttributePayload",
    "ChildInfo",
    "ChildSaDeleted",
    "ChildSaEstablished",
    "Datagram",
    "DeletePayload",
    "DropCategory",
    "Encapsulation",
    "EncryptedMessage",
    "Endpoint",
    "Event",
    "ExchangeFailed",
    "GroupPolicy",
    "HashPayload",
    "IdPayload",
    "IkeConfigError",
    "IkeDecodeError",
    "IkeError",
    "IkeProtocolError",
    "Initiator",
    "InitiatorConfig",
    "KePayload",
    "LanToLanPolicy",
    "Message",
    "ModeCfgState",
    "ModeConfig",
    "ModeConfigApplied",
    "ModeConfigReceived",
    "NatDPayload",
    "NatOaPayload",
    "NatStatus",
    "NattMode",
    "NattVersion",
    "NoncePayload",
    "NotifyPayload",
    "NotifyReceived",
    "Output",
    "PacketDropped",
    "PeerDead",
    "PeerEndpointChanged",
    "PeerVendorInfo",
    "Phase1Algorithms",
    "Phase1Deleted",
    "Phase1Established",
    "Phase1Proposal",
    "Phase1Rekeyed",
    "Phase1State",
    "Phase2Proposal",
    "Proposal",
    "RawPayload",
    "Refused",
    "RequestRetransmitted",
    "Responder",
    "ResponderHooks",
    "ResponderPolicy",
    "Role",
    "SaHandle",
    "SaPayload",
    "SessionContext",
    "SessionInfo",
    "SimpleHooks",
    "StaticUsers",
    "Transform",
    "VendorIdPayload",
    "VendorIdentity",
    "Waiting",
    "XauthRequest",
    "XauthResult",
    "XauthState",
    "decode_chain",
    "decode_header",
    "decode_message",
    "default_phase1",
    "default_phase2",
    "encode_chain",
    "seed_phase1",
    "seed_phase2",
]
