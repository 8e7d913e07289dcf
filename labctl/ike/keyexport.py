"""LAB-ONLY key export in Wireshark's formats, so captures of a lab can be decrypted.

Pure formatting functions: nothing here writes files.  Agents must keep the export behind an
explicit, off-by-default debug switch; these lines contain live keys.

* ``ikev1_decryption_table`` (Protocols > ISAKMP > IKEv1 Decryption Table): one line per
  phase-1 SA, ``<initiator cookie hex>,<encryption key hex>`` (byte fields: unquoted hex).
* ``esp_sa`` (Protocols > ESP > ESP SAs): one line per direction, fields protocol, source,
  destination, SPI, encryption, key, authentication, key (Wireshark 3.x/4.0 layout).

Both formats are also usable on the tshark command line as
``-o 'uat:ikev1_decryption_table:<line>'`` and ``-o 'uat:esp_sa:<line>'``.
"""

from __future__ import annotations

from .events import ChildSaEstablished, Phase1Established

# Wireshark's names for the algorithms (value strings of its ESP dissector).
_ESP_ENCRYPTION = {
    "3des-cbc": "TripleDES-CBC [RFC2451]",
    "aes128-cbc": "AES-CBC [RFC3602]",
    "aes192-cbc": "AES-CBC [RFC3602]",
    "aes256-cbc": "AES-CBC [RFC3602]",
}
_ESP_INTEGRITY = {
    "hmac-md5-96": "HMAC-MD5-96 [RFC2403]",
    "hmac-sha1-96": "HMAC-SHA-1-96 [RFC2404]",
    "hmac-sha2-256-128": "HMAC-SHA-256-128 [RFC4868]",
}


def _q(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


def ikev1_line(icookie: bytes, enc_key: bytes) -> str:
    return f"{icookie.hex()},{enc_key.hex()}"


def ikev1_line_for(event: Phase1Established) -> str:
    return ikev1_line(event.handle.icookie, event.enc_key)


def esp_sa_line(
    src: str,
    dst: str,
    spi: int,
    encryption: str,
    enc_key: bytes,
    integrity: str,
    auth_key: bytes,
) -> str:
    try:
        enc_name = _ESP_ENCRYPTION[encryption]
        auth_name = _ESP_INTEGRITY[integrity]
    except KeyError as exc:
        raise ValueError(f"no Wireshark name for {exc.args[0]}") from None
    fields = [
        "IPv4",
        src,
        dst,
        f"0x{spi:08x}",
        enc_name,
        "0x" + enc_key.hex(),
        auth_name,
        "0x" + auth_key.hex(),
    ]
    return ",".join(_q(f) for f in fields)


def esp_sa_lines_for(
    event: ChildSaEstablished, *, local_behind_nat: bool = False, peer_behind_nat: bool = False
) -> list[str]:
    """Both directions of a child SA, with the outer (tunnel endpoint) addresses.

    An end behind NAT has one address on each side of the PAT (private inside, translated
    outside), so it is written as ``*`` (Wireshark's any address): the lines then match a
    capture of either link, as the SPI alone tells the SAs apart."""
    local = "*" if local_behind_nat else event.local[0]
    peer = "*" if peer_behind_nat else event.peer[0]
    return [
        esp_sa_line(
            peer,
            local,
            event.inbound_spi,
            event.encryption,
            event.enc_key_in,
            event.integrity,
            event.auth_key_in,
        ),
        esp_sa_line(
            local,
            peer,
            event.outbound_spi,
            event.encryption,
            event.enc_key_out,
            event.integrity,
            event.auth_key_out,
        ),
    ]
