"""A deliberately tiny ESP (RFC 4303) tunnel-mode codec and ICMP echo builder, for one job:
prove that the KEYMAT our responder derived matches what an independent client (vpnc) derived,
by sending it an encrypted ping and decrypting its encrypted answer.

Test support only; the real data plane is labctl/esp (another package)."""

from __future__ import annotations

import ipaddress
import os
import struct

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from labctl.agent.inet import internet_checksum
from labctl.cryptocompat import TripleDES

_HASH = {
    "hmac-md5-96": (hashes.MD5, 12),
    "hmac-sha1-96": (hashes.SHA1, 12),
    "hmac-sha2-256-128": (hashes.SHA256, 16),
}


def _algo(name: str, key: bytes):
    return TripleDES(key) if name.startswith("3des") else algorithms.AES(key)


def _block(name: str) -> int:
    return 8 if name.startswith("3des") else 16


def _icv(integrity: str, key: bytes, data: bytes) -> bytes:
    cls, n = _HASH[integrity]
    mac = hmac.HMAC(key, cls())
    mac.update(data)
    return mac.finalize()[:n]


class EspError(Exception):
    pass


class EspTunnel:
    """One child SA seen from our side (keys named as in ChildSaEstablished)."""

    def __init__(self, child: dict) -> None:
        self.encryption = child["encryption"]
        self.integrity = child["integrity"]
        self.spi_out = child["outbound_spi"]
        self.spi_in = child["inbound_spi"]
        self.enc_out = bytes.fromhex(child["enc_key_out"])
        self.auth_out = bytes.fromhex(child["auth_key_out"])
        self.enc_in = bytes.fromhex(child["enc_key_in"])
        self.auth_in = bytes.fromhex(child["auth_key_in"])
        self.seq = 0
        self.received = 0

    def seal(self, inner: bytes) -> bytes:
        bs = _block(self.encryption)
        self.seq += 1
        pad_len = (-(len(inner) + 2)) % bs
        plain = inner + bytes(range(1, pad_len + 1)) + bytes([pad_len, 4])
        iv = os.urandom(bs)
        enc = Cipher(_algo(self.encryption, self.enc_out), modes.CBC(iv)).encryptor()
        body = struct.pack("!II", self.spi_out, self.seq) + iv + enc.update(plain) + enc.finalize()
        return body + _icv(self.integrity, self.auth_out, body)

    def open(self, packet: bytes) -> bytes:
        bs = _block(self.encryption)
        n = _HASH[self.integrity][1]
        spi, _seq = struct.unpack_from("!II", packet, 0)
        if spi != self.spi_in:
            raise EspError(f"SPI {spi:08x} is not ours ({self.spi_in:08x})")
        body, icv = packet[:-n], packet[-n:]
        if _icv(self.integrity, self.auth_in, body) != icv:
            raise EspError("ICV mismatch: inbound keys differ from the peer's")
        iv = body[8 : 8 + bs]
        dec = Cipher(_algo(self.encryption, self.enc_in), modes.CBC(iv)).decryptor()
        plain = dec.update(body[8 + bs :]) + dec.finalize()
        pad_len, next_header = plain[-2], plain[-1]
        if next_header != 4:
            raise EspError(f"next header {next_header}, expected 4 (IPv4)")
        if plain[-2 - pad_len : -2] != bytes(range(1, pad_len + 1)):
            raise EspError("bad ESP padding")
        self.received += 1
        return plain[: -2 - pad_len]


def icmp_echo(src: str, dst: str, ident: int, seq: int, payload: bytes = b"labctl-ike") -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", internet_checksum(icmp)) + icmp[4:]
    total = 20 + len(icmp)
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        ident,
        0,
        64,
        1,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    hdr = hdr[:10] + struct.pack("!H", internet_checksum(hdr)) + hdr[12:]
    return hdr + icmp


def parse_icmp_reply(packet: bytes) -> tuple[str, str, int, int] | None:
    """(src, dst, ident, seq) of an ICMP echo reply, else None."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 1:
        return None
    ihl = (packet[0] & 0xF) * 4
    icmp = packet[ihl:]
    if icmp[0] != 0:
        return None
    ident, seq = struct.unpack_from("!HH", icmp, 4)
    src = str(ipaddress.IPv4Address(packet[12:16]))
    dst = str(ipaddress.IPv4Address(packet[16:20]))
    return src, dst, ident, seq
