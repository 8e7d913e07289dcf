"""IKEv1 + NAT-T protocol engine, sans-I/O.

The engine never touches sockets, threads or clocks.  The caller (the agent) feeds it
datagrams and the current time and gets back an :class:`Output`: datagrams to send, typed
events, and the time at which :meth:`tick` must be called next.

Roles
-----
``Responder(policy: ResponderPolicy, hooks: ResponderHooks)``: the concentrator.  Many peers
at once; SAs are keyed by cookies, never by address; replies go to the latest authenticated
source (ip, port).

    responder.receive(data, remote, local, now) -> Output
    responder.tick(now) -> Output
    responder.delete(handle, now) -> Output              # phase 1 + children, tells the peer
    responder.delete_child(handle, inbound_spi, now) -> Output
    responder.dpd(handle, now) -> Output                 # R-U-THERE now
    responder.note_traffic(handle, now) -> None          # ESP seen: postpone DPD
    responder.sa_for_spi(inbound_spi) -> SaHandle | None
    responder.stats: Counter[str]                        # received, dropped, malformed, ...

``Initiator(config: InitiatorConfig)``: the client, one connection to one gateway.

    initiator.start(now, local, remote) -> Output        # local/remote: (ip, port)
    initiator.receive(data, remote, local, now) -> Output
    initiator.tick(now) -> Output
    initiator.delete(now) -> Output                      # disconnect
    initiator.dpd(now) -> Output
    initiator.rekey_phase1(now) -> Output
    initiator.rekey_child(inbound_spi, now) -> Output
    initiator.add_child(remote_network, now) -> Output   # one more quick mode

``remote`` and ``local`` are ``(ip: str, port: int)``; ``now`` is a float in seconds from any
monotonic clock (the engine only compares and adds).

Datagrams and the non-ESP marker
--------------------------------
``Output.datagrams`` holds :class:`Datagram` objects: ``data`` is the ISAKMP message WITHOUT
the 4-byte non-ESP marker.  Send it from local UDP port ``local_port`` to ``remote``; when
``non_esp_marker`` is true (always so on the NAT-T port, 4500) prepend ``00 00 00 00``
(``Datagram.wire_bytes()`` does it).  Incoming: on the NAT-T port, a datagram whose first four
bytes are zero is IKE (strip them before ``receive``), a 1-byte ``0xFF`` is a NAT keepalive
(drop it), anything else is ESP (route it to the ESP layer).  On port 500 everything is IKE.
With Cisco IPsec-over-UDP (``NatStatus.encapsulation == "cisco-udp"``) IKE stays on 500 and
ESP travels without marker on the negotiated UDP port.

Hooks (responder)
-----------------
Called synchronously, must not block (see :mod:`labctl.ike.hooks`):
``authenticate(XauthRequest) -> bool``, ``assign_address(SessionContext) -> ModeConfig | None``,
``release_address(SessionContext, ModeConfig) -> None``.  :class:`SimpleHooks` (users dict +
:class:`AddressPool`) covers labs.

Events
------
:class:`Phase1Established`, :class:`XauthResult`, :class:`ModeConfigApplied` (responder),
:class:`ModeConfigReceived` (initiator), :class:`ChildSaEstablished`, :class:`ChildSaDeleted`,
:class:`Phase1Deleted`, :class:`PeerDead`, :class:`PeerEndpointChanged`,
:class:`NotifyReceived`, :class:`ExchangeFailed`, :class:`PacketDropped`.  Keys are ``bytes``
fields excluded from repr().  Malformed or unauthenticated input never raises: it is counted
in ``stats`` and reported as :class:`PacketDropped`, and never changes an established SA.

Lab-only key export: :mod:`labctl.ike.keyexport` formats Wireshark ``ikev1_decryption_table``
and ``esp_sa`` lines from the events.

Crypto: only ``cryptography`` (38.0.4 in the containers, 46 on the host); the TripleDES
compatibility import and the single DH function live in :mod:`labctl.ike.crypto`.
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
    Phase1Proposal,
    Phase2Proposal,
    ResponderPolicy,
    VendorIdentity,
    default_phase1,
    default_phase2,
    seed_phase1,
    seed_phase2,
)
from .errors import IkeConfigError, IkeDecodeError, IkeError, IkeProtocolError
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
    SaHandle,
    SessionInfo,
    XauthResult,
)
from .hooks import (
    AddressPool,
    ResponderHooks,
    SessionContext,
    SimpleHooks,
    StaticUsers,
    XauthRequest,
)
from .initiator import Initiator
from .modecfg import ModeConfig
from .responder import Responder
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
    "Message",
    "ModeConfig",
    "ModeConfigApplied",
    "ModeConfigReceived",
    "NatDPayload",
    "NatOaPayload",
    "NatStatus",
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
    "Phase2Proposal",
    "Proposal",
    "RawPayload",
    "Responder",
    "ResponderHooks",
    "ResponderPolicy",
    "SaHandle",
    "SaPayload",
    "SessionContext",
    "SessionInfo",
    "SimpleHooks",
    "StaticUsers",
    "Transform",
    "VendorIdPayload",
    "VendorIdentity",
    "XauthRequest",
    "XauthResult",
    "decode_chain",
    "decode_header",
    "decode_message",
    "default_phase1",
    "default_phase2",
    "encode_chain",
    "seed_phase1",
    "seed_phase2",
]
