"""Protocol numbers of ISAKMP (RFC 2408), the IPsec DOI (RFC 2407), IKE (RFC 2409),
NAT-T (RFC 3947 and its drafts), XAUTH / Mode-Config drafts and Cisco Unity.

Values come from the RFCs and the IANA "ISAKMP" / "IPsec DOI" registries, cross-checked with
vpnc's ``isakmp.h`` and Wireshark's ISAKMP dissector (see
/work/shared/reference/ikev1-natt-facts.md).
"""

from __future__ import annotations

from enum import IntEnum

ISAKMP_VERSION = 0x10
HEADER_LEN = 28
IKE_PORT = 500
NATT_PORT = 4500
CISCO_UDP_DEFAULT_PORT = 10000
NON_ESP_MARKER = b"\x00\x00\x00\x00"
DOI_IPSEC = 1
SIT_IDENTITY_ONLY = 1
NONCE_LEN = 20  # bytes in our nonces (vpnc's length)
ISAKMP_SPI_LEN = 16  # an ISAKMP SA's SPI in notifies and deletes: both cookies
IPPROTO_UDP = 17  # an identity's protocol: IKE runs over UDP


class ExchangeType(IntEnum):
    BASE = 1
    MAIN = 2  # identity protection
    AUTH_ONLY = 3
    AGGRESSIVE = 4
    INFORMATIONAL = 5
    TRANSACTION = 6  # Mode-Config and XAUTH
    QUICK = 32
    NEW_GROUP = 33


class Flag(IntEnum):
    ENCRYPTION = 0x01
    COMMIT = 0x02
    AUTH_ONLY = 0x04


class PayloadType(IntEnum):
    NONE = 0
    SA = 1
    PROPOSAL = 2
    TRANSFORM = 3
    KE = 4
    ID = 5
    CERT = 6
    CR = 7
    HASH = 8
    SIG = 9
    NONCE = 10
    NOTIFY = 11
    DELETE = 12
    VID = 13
    ATTR = 14  # Mode-Config / XAUTH attribute payload
    NAT_D = 20  # RFC 3947
    NAT_OA = 21  # RFC 3947
    NAT_D_DRAFT = 130  # draft-ietf-ipsec-nat-t-ike-02/03
    NAT_OA_DRAFT = 131
    CISCO_FRAGMENT = 132


class ProtocolId(IntEnum):
    ISAKMP = 1
    AH = 2
    ESP = 3
    IPCOMP = 4


class IdType(IntEnum):
    IPV4_ADDR = 1
    FQDN = 2
    USER_FQDN = 3
    IPV4_ADDR_SUBNET = 4
    IPV6_ADDR = 5
    IPV6_ADDR_SUBNET = 6
    IPV4_ADDR_RANGE = 7
    IPV6_ADDR_RANGE = 8
    DER_ASN1_DN = 9
    DER_ASN1_GN = 10
    KEY_ID = 11


class NotifyType(IntEnum):
    INVALID_PAYLOAD_TYPE = 1
    DOI_NOT_SUPPORTED = 2
    SITUATION_NOT_SUPPORTED = 3
    INVALID_COOKIE = 4
    INVALID_MAJOR_VERSION = 5
    INVALID_MINOR_VERSION = 6
    INVALID_EXCHANGE_TYPE = 7
    INVALID_FLAGS = 8
    INVALID_MESSAGE_ID = 9
    INVALID_PROTOCOL_ID = 10
    INVALID_SPI = 11
    INVALID_TRANSFORM_ID = 12
    ATTRIBUTES_NOT_SUPPORTED = 13
    NO_PROPOSAL_CHOSEN = 14
    BAD_PROPOSAL_SYNTAX = 15
    PAYLOAD_MALFORMED = 16
    INVALID_KEY_INFORMATION = 17
    INVALID_ID_INFORMATION = 18
    INVALID_CERT_ENCODING = 19
    INVALID_CERTIFICATE = 20
    CERT_TYPE_UNSUPPORTED = 21
    INVALID_CERT_AUTHORITY = 22
    INVALID_HASH_INFORMATION = 23
    AUTHENTICATION_FAILED = 24
    INVALID_SIGNATURE = 25
    ADDRESS_NOTIFICATION = 26
    NOTIFY_SA_LIFETIME = 27
    CERTIFICATE_UNAVAILABLE = 28
    UNSUPPORTED_EXCHANGE_TYPE = 29
    UNEQUAL_PAYLOAD_LENGTHS = 30
    CONNECTED = 16384
    RESPONDER_LIFETIME = 24576
    REPLAY_STATUS = 24577
    INITIAL_CONTACT = 24578
    DPD_R_U_THERE = 36136
    DPD_R_U_THERE_ACK = 36137
    # Seen in the seed's VPN 3000 log ("Altiga keep-alive"); not in any public registry.
    ALTIGA_KEEPALIVE = 40500
    UNITY_LOAD_BALANCE = 40501
    UNITY_GROUP_HASH = 40503


# Phase-1 (ISAKMP SA) transform attributes, RFC 2409 appendix A.
class P1Attr(IntEnum):
    ENCRYPTION = 1
    HASH = 2
    AUTH_METHOD = 3
    GROUP = 4
    GROUP_TYPE = 5
    GROUP_PRIME = 6
    GROUP_GEN1 = 7
    GROUP_GEN2 = 8
    GROUP_CURVE_A = 9
    GROUP_CURVE_B = 10
    LIFE_TYPE = 11
    LIFE_DURATION = 12
    PRF = 13
    KEY_LENGTH = 14
    FIELD_SIZE = 15
    GROUP_ORDER = 16


class P1Encryption(IntEnum):
    DES_CBC = 1
    IDEA_CBC = 2
    BLOWFISH_CBC = 3
    RC5_CBC = 4
    TRIPLE_DES_CBC = 5
    CAST_CBC = 6
    AES_CBC = 7


class P1Hash(IntEnum):
    MD5 = 1
    SHA1 = 2
    TIGER = 3
    SHA2_256 = 4
    SHA2_384 = 5
    SHA2_512 = 6


class AuthMethod(IntEnum):
    PSK = 1
    DSS = 2
    RSA_SIG = 3
    RSA_ENC = 4
    RSA_REV_ENC = 5
    HYBRID_INIT_RSA = 64221
    HYBRID_RESP_RSA = 64222
    HYBRID_INIT_DSS = 64223
    HYBRID_RESP_DSS = 64224
    XAUTH_INIT_PSK = 65001
    XAUTH_RESP_PSK = 65002
    XAUTH_INIT_RSA = 65005
    XAUTH_RESP_RSA = 65006


# What each authentication method asks of each end (RFC 2409 5.1 and the XAUTH / hybrid
# drafts): who sends CERT + SIG, whose SKEYID comes from the nonces, whether XAUTH follows.
INITIATOR_SIGNS = frozenset({AuthMethod.RSA_SIG, AuthMethod.XAUTH_INIT_RSA})
# hybrid: only the gateway has a certificate; the client sends a plain HASH_I, then XAUTH
RESPONDER_SIGNS = INITIATOR_SIGNS | {AuthMethod.HYBRID_INIT_RSA}
XAUTH_AFTER = frozenset(
    {AuthMethod.XAUTH_INIT_PSK, AuthMethod.XAUTH_INIT_RSA, AuthMethod.HYBRID_INIT_RSA}
)


class LifeType(IntEnum):
    SECONDS = 1
    KILOBYTES = 2


# Phase-2 (IPsec SA) transform attributes, RFC 2407 section 4.5.
class P2Attr(IntEnum):
    LIFE_TYPE = 1
    LIFE_DURATION = 2
    GROUP = 3
    ENCAPSULATION = 4
    AUTH_ALGORITHM = 5
    KEY_LENGTH = 6
    KEY_ROUNDS = 7
    COMPRESS_DICT_SIZE = 8
    COMPRESS_PRIVATE_ALG = 9


class EncapMode(IntEnum):
    TUNNEL = 1
    TRANSPORT = 2
    UDP_TUNNEL = 3  # RFC 3947
    UDP_TRANSPORT = 4  # RFC 3947
    UDP_TUNNEL_DRAFT = 61443  # draft-ietf-ipsec-nat-t-ike-00..03
    UDP_TRANSPORT_DRAFT = 61444


class EspTransform(IntEnum):
    DES = 2
    TRIPLE_DES = 3
    NULL = 11
    AES_CBC = 12


class EspAuth(IntEnum):
    HMAC_MD5 = 1
    HMAC_SHA1 = 2
    HMAC_SHA2_256 = 5


class CfgType(IntEnum):
    REQUEST = 1
    REPLY = 2
    SET = 3
    ACK = 4


class CfgAttr(IntEnum):
    INTERNAL_IP4_ADDRESS = 1
    INTERNAL_IP4_NETMASK = 2
    INTERNAL_IP4_DNS = 3
    INTERNAL_IP4_NBNS = 4
    INTERNAL_ADDRESS_EXPIRY = 5
    INTERNAL_IP4_DHCP = 6
    APPLICATION_VERSION = 7
    INTERNAL_IP6_ADDRESS = 8
    INTERNAL_IP6_NETMASK = 9
    INTERNAL_IP6_DNS = 10
    INTERNAL_IP6_NBNS = 11
    INTERNAL_IP6_DHCP = 12
    INTERNAL_IP4_SUBNET = 13
    SUPPORTED_ATTRIBUTES = 14
    INTERNAL_IP6_SUBNET = 15
    # XAUTH (draft-ietf-ipsec-isakmp-xauth-06)
    XAUTH_TYPE = 16520
    XAUTH_USER_NAME = 16521
    XAUTH_USER_PASSWORD = 16522
    XAUTH_PASSCODE = 16523
    XAUTH_MESSAGE = 16524
    XAUTH_CHALLENGE = 16525
    XAUTH_DOMAIN = 16526
    XAUTH_STATUS = 16527
    XAUTH_NEXT_PIN = 16528
    XAUTH_ANSWER = 16529
    # Cisco Unity
    UNITY_BANNER = 0x7000
    UNITY_SAVE_PASSWD = 0x7001
    UNITY_DEF_DOMAIN = 0x7002
    UNITY_SPLIT_DNS = 0x7003
    UNITY_SPLIT_INCLUDE = 0x7004
    UNITY_NATT_PORT = 0x7005  # "UDP encapsulation port"
    UNITY_LOCAL_LAN = 0x7006  # split exclude
    UNITY_PFS = 0x7007
    UNITY_FW_TYPE = 0x7008
    UNITY_BACKUP_SERVERS = 0x7009
    UNITY_DDNS_HOSTNAME = 0x700A


def name_of(enum_type: type[IntEnum], value: int) -> str:
    """Readable name of a protocol number, or the number itself when unknown."""
    try:
        return enum_type(value).name
    except ValueError:
        return str(value)


_EXCHANGE_NAMES: dict[int, str] = {
    ExchangeType.MAIN: "main mode",
    ExchangeType.AGGRESSIVE: "aggressive mode",
    ExchangeType.INFORMATIONAL: "informational",
    ExchangeType.TRANSACTION: "transaction",
    ExchangeType.QUICK: "quick mode",
}


def exchange_name(exchange: int) -> str:
    """An exchange as people name it ("aggressive mode"), for drop reports."""
    return _EXCHANGE_NAMES.get(exchange) or f"exchange {name_of(ExchangeType, exchange)}"
