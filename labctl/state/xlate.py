"""The PAT translation table ("show xlate"), read from the firewall's conntrack table.

A flow is a translation when its reply is addressed to something other than the flow's
original source: the original tuple holds the inside (local) endpoint, the reply tuple
the global address and port the PAT chose.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Network

from ..errors import LabctlError

XLATE_COMMAND = "conntrack -L -o xml 2>/dev/null"


class ConntrackParseError(LabctlError, ValueError):
    """The firewall's `conntrack -o xml` output could not be read."""


@dataclass(frozen=True)
class Flow:
    protocol: str
    orig_src: str
    orig_dst: str
    orig_sport: int | None
    orig_dport: int | None
    reply_src: str
    reply_dst: str
    reply_sport: int | None
    reply_dport: int | None
    state: str | None
    timeout: int | None
    assured: bool
    unreplied: bool
    packets: int | None
    bytes: int | None
    reply_packets: int | None
    reply_bytes: int | None


@dataclass(frozen=True)
class XlateEntry:
    protocol: str
    local_ip: str
    local_port: int | None
    global_ip: str
    global_port: int | None
    remote_ip: str
    remote_port: int | None
    state: str
    timeout: int | None
    packets_out: int | None
    bytes_out: int | None
    packets_in: int | None
    bytes_in: int | None

    def to_json(self) -> dict:
        return asdict(self)

    def pix_line(self) -> str:
        """PIX 6.3 'show xlate' style; ports only where the protocol has them."""
        if self.global_port is None:
            return f"PAT Global {self.global_ip} Local {self.local_ip} ({self.protocol})"
        return (
            f"PAT Global {self.global_ip}({self.global_port}) "
            f"Local {self.local_ip}({self.local_port})"
        )


def _int(element: ET.Element | None) -> int | None:
    return int(element.text) if element is not None and element.text else None


def parse_conntrack_xml(text: str) -> list[Flow]:
    if not text.strip():
        return []
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ConntrackParseError(f"conntrack XML: {exc}") from None
    flows = []
    for flow in root.iter("flow"):
        metas = {m.get("direction"): m for m in flow.findall("meta")}
        original, reply = metas.get("original"), metas.get("reply")
        independent = metas.get("independent")
        if original is None or reply is None:
            raise ConntrackParseError("conntrack XML: a flow without original/reply tuples")
        layer4 = original.find("layer4")
        flows.append(
            Flow(
                protocol=layer4.get("protoname", "?") if layer4 is not None else "?",
                orig_src=original.findtext("layer3/src", ""),
                orig_dst=original.findtext("layer3/dst", ""),
                orig_sport=_int(original.find("layer4/sport")),
                orig_dport=_int(original.find("layer4/dport")),
                reply_src=reply.findtext("layer3/src", ""),
                reply_dst=reply.findtext("layer3/dst", ""),
                reply_sport=_int(reply.find("layer4/sport")),
                reply_dport=_int(reply.find("layer4/dport")),
                state=independent.findtext("state") if independent is not None else None,
                timeout=_int(independent.find("timeout")) if independent is not None else None,
                assured=independent is not None and independent.find("assured") is not None,
                unreplied=independent is not None and independent.find("unreplied") is not None,
                packets=_int(original.find("counters/packets")),
                bytes=_int(original.find("counters/bytes")),
                reply_packets=_int(reply.find("counters/packets")),
                reply_bytes=_int(reply.find("counters/bytes")),
            )
        )
    return flows


def xlate_entries(flows: list[Flow], inside: list[IPv4Network]) -> list[XlateEntry]:
    """Translations of flows that started on an inside network, sorted like a PIX does."""
    entries = []
    for flow in flows:
        try:
            source = IPv4Address(flow.orig_src)
        except ValueError:
            continue
        if not any(source in network for network in inside):
            continue
        if flow.reply_dst == flow.orig_src and flow.reply_dport == flow.orig_sport:
            continue  # not translated (e.g. traffic to the firewall itself)
        if flow.unreplied:
            state = "UNREPLIED"
        else:
            state = flow.state or ("ASSURED" if flow.assured else "REPLIED")
        entries.append(
            XlateEntry(
                protocol=flow.protocol,
                local_ip=flow.orig_src,
                local_port=flow.orig_sport,
                global_ip=flow.reply_dst,
                global_port=flow.reply_dport,
                remote_ip=flow.orig_dst,
                remote_port=flow.orig_dport,
                state=state,
                timeout=flow.timeout,
                packets_out=flow.packets,
                bytes_out=flow.bytes,
                packets_in=flow.reply_packets,
                bytes_in=flow.reply_bytes,
            )
        )
    return sorted(entries, key=lambda e: (e.global_ip, e.protocol, e.global_port or 0))


def render_xlate(entries: list[XlateEntry], verbose: bool = False) -> str:
    lines = [f"{len(entries)} in use"]
    for entry in entries:
        line = entry.pix_line()
        if verbose:
            remote = entry.remote_ip + (f"({entry.remote_port})" if entry.remote_port else "")
            line += f" {entry.protocol} -> {remote} {entry.state} timeout {entry.timeout}s"
        lines.append(line)
    return "\n".join(lines) + "\n"
