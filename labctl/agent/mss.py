"""TCP MSS clamping for packets crossing the tunnel (pure functions).

Locally originated TCP already picks its MSS from the TUN MTU, but hosts behind a gateway
(e.g. the concentrator's LAN) announce 1460 and rely on PMTUD, which breaks whenever some
firewall eats ICMP "fragmentation needed". Rewriting the MSS option of SYNs that cross
the tunnel (like ``iptables ... TCPMSS --clamp-mss-to-pmtu``) avoids that class of
"ping works, TCP stalls" failure. The checksum is patched incrementally (RFC 1624).
"""

from __future__ import annotations

IPPROTO_TCP = 6
TCP_SYN = 0x02
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MSS = 0, 1, 2


def mss_for_mtu(mtu: int) -> int:
    """MSS that keeps a TCP/IPv4 segment (no options beyond the 20-byte headers) in ``mtu``."""
    return mtu - 40


def clamp_mss(
    packet: bytes | bytearray | memoryview, max_mss: int
) -> bytes | bytearray | memoryview:
    """Return ``packet`` with a SYN's MSS option lowered to ``max_mss`` if it was larger.

    Returns the same object when nothing changes (the common case: not a SYN), otherwise a
    patched copy. Malformed or truncated packets are returned unchanged.
    """
    n = len(packet)
    if n < 40 or packet[9] != IPPROTO_TCP:
        return packet
    ihl = (packet[0] & 0x0F) * 4
    if n < ihl + 20 or (packet[6] & 0x1F) or packet[7]:  # fragment: no TCP header here
        return packet
    if not packet[ihl + 13] & TCP_SYN:
        return packet
    data_off = (packet[ihl + 12] >> 4) * 4
    end = min(ihl + data_off, n)
    pos = ihl + 20
    while pos < end:
        kind = packet[pos]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            pos += 1
            continue
        if pos + 1 >= end:
            break
        length = packet[pos + 1]
        if length < 2 or pos + length > end:
            break
        if kind == TCPOPT_MSS and length == 4:
            old = (packet[pos + 2] << 8) | packet[pos + 3]
            if old <= max_mss:
                return packet
            out = bytearray(packet)
            out[pos + 2 : pos + 4] = max_mss.to_bytes(2, "big")
            check_at = ihl + 16
            old_sum = (out[check_at] << 8) | out[check_at + 1]
            new_sum = _patch_checksum(old_sum, old, max_mss)
            out[check_at : check_at + 2] = new_sum.to_bytes(2, "big")
            return out
        pos += length
    return packet


def _patch_checksum(checksum: int, old_word: int, new_word: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')."""
    total = (~checksum & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
