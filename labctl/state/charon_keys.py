"""LAB ONLY: charon's key dumps turned into Wireshark's key tables (vpn.debug.export-keys).

Debian builds no save-keys plugin, but with filelog levels `ike = 4` and `chd = 4` charon
logs every key as a hex dump on the lines after its name (the strongSwan kinds render such
a log of its own, kinds/third_party.py KEYS_LOG). This pure function reads that text and
writes the same lines our agent exports (labctl/ike/keyexport.py):

* phase 1 (per IKE SA, `<conn|N>`): `encryption key Ka` -- the cipher key itself, expanded
  from SKEYID_e when the cipher needs more bytes (what the agent exports and what tshark's
  ikev1_decryption_table wants) -- and the initiator cookie, from the first `natd_chunk`
  (CKY-I | CKY-R | address | port) or else from `HASH_I data` (g^xi | g^xr | CKY-I | ...,
  each public value as long as the logged DH secret);
* ESP (per quick mode, on one thread): `initiator SA seed` / `responder SA seed` are
  protocol | SPI | nonces, so each seed names the SPI the following `encryption|integrity
  initiator|responder key` belongs to (no guessing from the node's role, rekeys included);
  the outer addresses come from `adding inbound|outbound ESP SA` / `SPI 0x..., src A dst B`,
  the algorithms from `using X for encryption|integrity`; the SA counts once `CHILD_SA ...
  established with SPIs` follows on that thread. A node whose IKE SA logged `local host is
  behind NAT` cannot know its translated address: its own address is written as `*`
  (Wireshark's wildcard), so its keys decrypt a capture on either side of the NAT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..ike.keyexport import esp_sa_line, ikev1_line

_LINE = re.compile(
    r"^\S+ \S+ (?P<thread>\d+)\[(?P<group>[A-Z]+)\] (?:<(?P<sa>[^>]*)> )?(?P<msg>.*)$"
)
_DUMP = re.compile(r"^(?P<name>.+?) => (?P<size>\d+) bytes @ 0x[0-9a-f]+$")
_HEX = re.compile(r"^\s*\d+: (?P<hex>(?:[0-9A-F]{2} )*[0-9A-F]{2})")
_USING = re.compile(r"^\s*using (?P<alg>\S+) for (?P<what>encryption|integrity)$")
_SA_ADDR = re.compile(r"^\s*SPI 0x(?P<spi>[0-9a-f]{8}), src (?P<src>\S+) dst (?P<dst>\S+)$")
_ESTABLISHED = re.compile(
    r"CHILD_SA \S+ established with SPIs (?P<i>[0-9a-f]{8})_i (?P<o>[0-9a-f]{8})_o"
)
_CHILD_KEY = re.compile(r"^(?P<what>encryption|integrity) (?P<role>initiator|responder) key$")

# charon's algorithm names -> the agent's (keyexport's tables); AES by key length.
_INTEGRITY = {
    "HMAC_MD5_96": "hmac-md5-96",
    "HMAC_SHA1_96": "hmac-sha1-96",
    "HMAC_SHA2_256_128": "hmac-sha2-256-128",
}


def _encryption(alg: str, key: bytes) -> str | None:
    if alg == "3DES_CBC":
        return "3des-cbc"
    if alg == "AES_CBC" and len(key) in (16, 24, 32):
        return f"aes{len(key) * 8}-cbc"
    return None


@dataclass
class _Phase1:
    dh_len: int = 0
    ka: bytes = b""
    icookie: bytes = b""
    behind_nat: bool = False


@dataclass
class _Child:
    algs: dict[str, str] = field(default_factory=dict)  # encryption/integrity -> charon name
    seeds: dict[str, int] = field(default_factory=dict)  # initiator/responder -> SPI
    keys: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (what, role)
    addresses: dict[int, tuple[str, str]] = field(default_factory=dict)  # SPI -> (src, dst)


@dataclass
class CharonKeys:
    """Wireshark's table lines (each once, in log order) and what could not be exported."""

    ikev1: list[str] = field(default_factory=list)
    esp: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def parse_charon_keys(text: str) -> CharonKeys:
    out = CharonKeys()
    phase1: dict[str, _Phase1] = {}  # the current IKE SA of each `<conn|N>`
    finished: list[_Phase1] = []
    dumps: dict[str, tuple[str, str, int, bytearray]] = {}  # thread -> (sa, name, size, data)
    children: dict[tuple[str, str], _Child] = {}  # (sa, thread) -> the quick mode in progress

    def dump_done(sa: str, thread: str, name: str, data: bytes) -> None:
        p1 = phase1.get(sa)
        if name == "shared Diffie Hellman secret":
            phase1.setdefault(sa, _Phase1()).dh_len = len(data)
        elif name == "SKEYID":  # a new phase 1 (unique ids restart when charon restarts)
            dh_len = p1.dh_len if p1 else 0
            phase1[sa] = _Phase1(dh_len=dh_len)
            finished.append(phase1[sa])
        elif p1 is not None and name == "encryption key Ka":
            p1.ka = data
        elif p1 is not None and name == "natd_chunk" and not p1.icookie and len(data) >= 16:
            p1.icookie = data[:8]
        elif p1 is not None and name == "HASH_I data" and not p1.icookie and p1.dh_len:
            start = 2 * p1.dh_len
            if len(data) >= start + 16:
                p1.icookie = data[start : start + 8]
        elif name.endswith("SA seed") and len(data) >= 5:
            role = name.split()[0]
            child = children.setdefault((sa, thread), _Child())
            child.seeds[role] = int.from_bytes(data[1:5], "big")
        elif match := _CHILD_KEY.match(name):
            child = children.setdefault((sa, thread), _Child())
            child.keys[(match["what"], match["role"])] = data

    for raw in text.splitlines():
        line = _LINE.match(raw)
        if line is None:
            continue
        # `<conn|N>`, or `<N>` before a responder knows the connection: N is the IKE SA
        thread, sa, msg = line["thread"], (line["sa"] or "").rpartition("|")[2], line["msg"]
        pending = dumps.get(thread)
        if pending is not None:
            hexline = _HEX.match(msg)
            if hexline is not None:
                pending[3].extend(bytes.fromhex(hexline["hex"]))
                if len(pending[3]) >= pending[2]:
                    del dumps[thread]
                    dump_done(pending[0], thread, pending[1], bytes(pending[3][: pending[2]]))
                continue
            del dumps[thread]  # a dump cut short: ignore it
        if match := _DUMP.match(msg):
            dumps[thread] = (sa, match["name"], int(match["size"]), bytearray())
            if int(match["size"]) == 0:
                del dumps[thread]
            continue
        if msg.startswith("local host is behind NAT") and sa in phase1:
            phase1[sa].behind_nat = True
        elif match := _USING.match(msg):
            children.setdefault((sa, thread), _Child()).algs[match["what"]] = match["alg"]
        elif match := _SA_ADDR.match(msg):
            child = children.setdefault((sa, thread), _Child())
            child.addresses[int(match["spi"], 16)] = (match["src"], match["dst"])
        elif match := _ESTABLISHED.search(msg):
            done = children.pop((sa, thread), None)
            p1 = phase1.get(sa)
            spis = (int(match["i"], 16), int(match["o"], 16))
            if done is None:
                out.skipped.append(
                    f"IKE SA {sa}: no keys logged for SPIs {match['i']}/{match['o']}"
                )
                continue
            _child_lines(out, sa, done, spis, behind_nat=bool(p1 and p1.behind_nat))

    for p1 in finished:
        if p1.ka and p1.icookie:
            _add(out.ikev1, ikev1_line(p1.icookie, p1.ka))
    return out


def _child_lines(
    out: CharonKeys, sa: str, child: _Child, spis: tuple[int, int], *, behind_nat: bool
) -> None:
    inbound, outbound = spis
    integrity = _INTEGRITY.get(child.algs.get("integrity", ""))
    for role, spi in child.seeds.items():
        enc_key = child.keys.get(("encryption", role))
        auth_key = child.keys.get(("integrity", role))
        if spi not in spis or enc_key is None or auth_key is None:
            out.skipped.append(f"IKE SA {sa}: SPI {spi:08x}: keys incomplete")
            continue
        encryption = _encryption(child.algs.get("encryption", ""), enc_key)
        if encryption is None or integrity is None:
            algs = "/".join(child.algs.values())
            out.skipped.append(f"IKE SA {sa}: SPI {spi:08x}: no Wireshark name for {algs}")
            continue
        src, dst = child.addresses.get(spi, ("*", "*"))
        if behind_nat:  # our own address is not what the other side of the NAT sees
            if spi == inbound:
                dst = "*"
            elif spi == outbound:
                src = "*"
        line = esp_sa_line(src, dst, spi, encryption, enc_key, integrity, auth_key)
        _add(out.esp, line)


def _add(lines: list[str], line: str) -> None:
    if line not in lines:
        lines.append(line)
