"""Test helpers: key material, forced IVs through the real hot path, hand-built packets."""

from __future__ import annotations

import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from labctl.agent.inet import internet_checksum
from labctl.cryptocompat import TripleDES
from labctl.esp import EspSa, cipher_spec, integrity_spec


def keys(cipher: str, integrity: str, label: str = "k") -> tuple[bytes, bytes]:
    c, i = cipher_spec(cipher), integrity_spec(integrity)
    seed = hashlib.sha512(f"{label}/{cipher}/{integrity}".encode()).digest()
    return seed[: c.key_len], seed[32 : 32 + i.key_len]


def sa_pair(cipher: str, integrity: str, spi: int = 0x1000, **kw) -> tuple[EspSa, EspSa]:
    ek, ak = keys(cipher, integrity)
    return (
        EspSa.outbound(spi, cipher, integrity, ek, ak),
        EspSa.inbound(spi, cipher, integrity, ek, ak, **kw),
    )


def reference_algorithm(cipher: str, key: bytes):
    """cryptography's algorithm for one of our cipher names: the independent reference
    (labctl itself goes through libcrypto by ctypes)."""
    if cipher_spec(cipher).name == "3des-cbc":
        return TripleDES(key)
    return algorithms.AES(key)


class ForcedIv:
    """``random_block`` source that makes a FRESH outbound SA emit a chosen IV first.

    The SA's CBC chain starts at zero, and the sent IV is E(R xor chain), so R = D(IV).
    """

    def __init__(self, cipher: str, enc_key: bytes, iv: bytes) -> None:
        ecb = Cipher(reference_algorithm(cipher, enc_key), modes.ECB()).decryptor()
        self._r = ecb.update(iv)

    def __call__(self, n: int) -> bytes:
        assert n == len(self._r)
        return self._r


def build_esp(
    cipher: str,
    integrity: str,
    enc_key: bytes,
    auth_key: bytes,
    spi: int,
    seq: int,
    iv: bytes,
    plaintext: bytes,
) -> bytes:
    """ESP packet from an arbitrary (already padded) plaintext, with a valid ICV.

    Used to make authenticated packets with broken padding, which seal() cannot produce.
    """
    c, i = cipher_spec(cipher), integrity_spec(integrity)
    if c.is_null:
        body = plaintext
    else:
        body = Cipher(reference_algorithm(cipher, enc_key), modes.CBC(iv)).encryptor()
        body = body.update(plaintext)
    out = struct.pack("!II", spi, seq) + iv + body
    if i.digest is not None:
        out += hmac.new(auth_key, out, i.digest).digest()[: i.icv_len]
    return out


# ---------------------------------------------------------------------- inner packets


def ipv4_packet(src: str, dst: str, proto: int, payload: bytes, ident: int = 1) -> bytes:
    import ipaddress

    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        0x4000,  # DF
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    return header + payload


def icmp_echo(src: str, dst: str, seq: int, data: bytes = b"abcdefgh" * 7) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, 0x1234, seq) + data
    body = body[:2] + struct.pack("!H", internet_checksum(body)) + body[4:]
    return ipv4_packet(src, dst, 1, body, ident=seq)


def tcp_checksum_ok(packet: bytes | bytearray) -> bool:
    ihl = (packet[0] & 0x0F) * 4
    segment = bytes(packet[ihl:])
    pseudo = bytes(packet[12:20]) + struct.pack("!BBH", 0, 6, len(segment))
    return internet_checksum(pseudo + segment) == 0


def tcp_syn(src: str, dst: str, mss: int, sport: int = 40000, dport: int = 5201) -> bytes:
    import ipaddress

    # options: MSS, NOP, NOP, SACK-permitted, NOP, window scale 7  (12 bytes)
    options = struct.pack("!BBH", 2, 4, mss) + b"\x01\x01\x04\x02\x01\x03\x03\x07"
    header = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, (5 + 3) << 4, 0x02, 64240, 0, 0)
    segment = header + options
    pseudo = (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!BBH", 0, 6, len(segment))
    )
    csum = internet_checksum(pseudo + segment)
    segment = segment[:16] + struct.pack("!H", csum) + segment[18:]
    return ipv4_packet(src, dst, 6, segment)


# ---------------------------------------------------------------------- pcap + tshark
LINKTYPE_RAW = 101  # frames are bare IPv4 packets
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0
    return ipv4_packet(src, dst, 17, udp)


def write_pcap(path: str, packets: list[bytes]) -> None:
    """Classic pcap of bare IPv4 packets (LINKTYPE_RAW)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for i, pkt in enumerate(packets):
            f.write(struct.pack("<IIII", 1, i, len(pkt), len(pkt)) + pkt)


def read_pcap_ipv4(path: str) -> list[bytes]:
    """IPv4 packets of a classic pcap (raw, Ethernet or Linux cooked capture)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    skip = {LINKTYPE_RAW: 0, LINKTYPE_ETHERNET: 14, LINKTYPE_LINUX_SLL: 16}[linktype]
    out, pos = [], 24
    while pos + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, pos + 8)[0]
        frame = data[pos + 16 : pos + 16 + caplen]
        pos += 16 + caplen
        if linktype == LINKTYPE_ETHERNET and frame[12:14] != b"\x08\x00":
            continue
        if linktype == LINKTYPE_LINUX_SLL and frame[14:16] != b"\x08\x00":
            continue
        out.append(frame[skip:])
    return out


TSHARK_CIPHER = {
    "null": "NULL",
    "3des-cbc": "TripleDES-CBC [RFC2451]",
    "aes128-cbc": "AES-CBC [RFC3602]",
    "aes192-cbc": "AES-CBC [RFC3602]",
    "aes256-cbc": "AES-CBC [RFC3602]",
}
TSHARK_INTEGRITY = {
    "hmac-md5-96": "HMAC-MD5-96 [RFC2403]",
    "hmac-sha1-96": "HMAC-SHA-1-96 [RFC2404]",
    "hmac-sha2-256-128": "HMAC-SHA-256-128 [RFC4868]",
}


def tshark_esp_sa_option(
    spi: int, cipher: str, integrity: str, enc_key: bytes, auth_key: bytes
) -> str:
    """One ``-o uat:esp_sa:...`` value (Wireshark's ESP SA table, wildcard addresses)."""
    enc = "0x" + enc_key.hex() if enc_key else ""
    fields = [
        "IPv4",
        "*",
        "*",
        f"0x{spi:08x}",
        TSHARK_CIPHER[cipher],
        enc,
        TSHARK_INTEGRITY[integrity],
        "0x" + auth_key.hex(),
    ]
    return "uat:esp_sa:" + ",".join(f'"{f}"' for f in fields)


def tshark_fields(
    pcap: str, fields: list[str], sa_options: list[str] = (), decode_as: list[str] = ()
) -> list[list[str]]:
    """Run tshark over ``pcap`` and return the requested fields per frame."""
    import subprocess

    cmd = ["tshark", "-n", "-r", pcap, "-T", "fields", "-E", "separator=|"]
    if sa_options:
        cmd += [
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
        ]
        for opt in sa_options:
            cmd += ["-o", opt]
    for d in decode_as:
        cmd += ["-d", d]
    for f in fields:
        cmd += ["-e", f]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("|") for line in done.stdout.splitlines()]
