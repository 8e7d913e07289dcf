"""strongSwan's SAs (`swanctl --list-sas --raw`) as the records our agents publish.

`--raw` prints each vici `list-sa` event on one line:

    list-sa event {group-ciscovpn {uniqueid=3 version=1 state=ESTABLISHED
        remote-host=171.69.89.78 remote-port=4500 ... remote-vips=[40.1.1.1]
        child-sas {group-ciscovpn-4 {name=group-ciscovpn ... bytes-in=252 ...}}}}

Records: the concentrator's `sessions` (agent/records.py SessionRecord) and the client's
`status` (ClientStatus), with the same keys. A value strongSwan does not report is None
and its dotted field name is listed in the record's `unreported` (an expectation on it
fails saying so, checks/evaluate.py). `esp` says which ESP the node uses.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .records_common import annotate

# key=[list] | key=value | name { | } | [ ]
_TOKEN = re.compile(r"([\w.-]+)=\[([^\]]*)\]|([\w.-]+)=(\S*)|(\S+) \{|(\})")

_ENCRYPTION = {"3DES_CBC": "3DES", "AES_CBC": "AES", "DES_CBC": "DES"}
_HASH = {"HMAC_MD5_96": "MD5", "HMAC_SHA1_96": "SHA1", "HMAC_SHA2_256_128": "SHA-256"}
_DH = {"MODP_768": 1, "MODP_1024": 2, "MODP_1536": 5, "MODP_2048": 14}
_DH_NAMES = {
    1: "Group 1 (768-bit)",
    2: "Group 2 (1024-bit)",
    5: "Group 5 (1536-bit)",
    14: "Group 14 (2048-bit)",
}

# What strongSwan's list-sa does not say (our agent's screens do).
GATEWAY_UNREPORTED = (
    "client_type",
    "client_version",
    "ike.negotiation_mode",
    "ike.nat_t",
    "ike.rekey_interval",
    "ipsec.dropped",
)
CLIENT_UNREPORTED = (
    "netmask",
    "packets_discarded",
    "packets_bypassed",
    "banner",
    "last_error",
    "reconnects",
    "waiting_for",
    "ike_dropped",
)


def parse_list_sas(text: str) -> list[dict[str, Any]]:
    """Every IKE SA of the output: {"name": ..., <key>: value, "child-sas": {...}}."""
    sas: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.startswith("list-sa event {"):
            continue
        tree = _parse_section(line[len("list-sa event {") :])
        for name, body in tree.items():
            if isinstance(body, dict):
                sas.append({"name": name, **body})
    return sas


def _parse_section(text: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    stack = [root]
    for match in _TOKEN.finditer(text):
        list_key, list_value, key, value, section, close = match.groups()
        current = stack[-1]
        if list_key is not None:
            current[list_key] = list_value.split()
        elif key is not None:
            current[key] = value
        elif section is not None:
            child: dict[str, Any] = {}
            current[section] = child
            stack.append(child)
        elif close is not None and len(stack) > 1:
            stack.pop()
    return root


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def cipher_name(sa: dict[str, Any]) -> str | None:
    alg = sa.get("encr-alg")
    if alg is None:
        return None
    base = _ENCRYPTION.get(alg, alg)
    size = sa.get("encr-keysize") or ("168" if base == "3DES" else "56" if base == "DES" else "")
    return f"{base}-{size}" if size else base


def hash_name(sa: dict[str, Any]) -> str | None:
    alg = sa.get("integ-alg")
    return None if alg is None else _HASH.get(alg, alg)


def _ago(seconds: Any, now: float) -> float | None:
    value = _int(seconds)
    return None if value is None else now - value


def _children(sa: dict[str, Any]) -> list[dict[str, Any]]:
    children = sa.get("child-sas") or {}
    return [c for c in children.values() if isinstance(c, dict)]


def _ts(values: list[str] | None) -> str | None:
    return ",".join(values) if values else None


def _child_lifetime(child: dict[str, Any]) -> int | None:
    """The lifetime charon holds the child SA to (what ours reports as its rekey interval):
    seconds since install plus seconds left -- charon's own figure, whatever was proposed
    ("received 28800s lifetime, configured 60s")."""
    installed, left = _int(child.get("install-time")), _int(child.get("life-time"))
    return installed + left if installed is not None and left is not None else None


def gateway_sessions(sas: list[dict[str, Any]], esp: str) -> list[dict[str, Any]]:
    """The concentrator's sessions: one per established IKE SA with an XAUTH user."""
    now = time.time()
    records = []
    for sa in sas:
        if sa.get("state") != "ESTABLISHED":
            continue
        children = [c for c in _children(sa) if c.get("state") == "INSTALLED"]
        encap = any(c.get("encap") == "yes" for c in children)
        remote_port = _int(sa.get("remote-port"))
        local_port = _int(sa.get("local-port"))
        dh = _DH.get(sa.get("dh-group", ""))
        ipsec = [
            {
                "session_id": _int(c.get("uniqueid")),
                "remote_address": _ts(c.get("remote-ts")),
                "local_address": _ts(c.get("local-ts")),
                "encryption": cipher_name(c),
                "hashing": hash_name(c),
                "encapsulation_mode": "Tunnel" if c.get("mode") == "TUNNEL" else c.get("mode"),
                "udp_source_port": remote_port if c.get("encap") == "yes" else None,
                "udp_destination_port": local_port if c.get("encap") == "yes" else None,
                "rekey_interval": _child_lifetime(c),
                "spi_in": "0x" + c.get("spi-in", ""),
                "spi_out": "0x" + c.get("spi-out", ""),
                "bytes_rx": _int(c.get("bytes-in")) or 0,
                "bytes_tx": _int(c.get("bytes-out")) or 0,
                "packets_rx": _int(c.get("packets-in")) or 0,
                "packets_tx": _int(c.get("packets-out")) or 0,
                "dropped": None,
                "idle_seconds": _int(c.get("use-in")),
                "established_at": _ago(c.get("install-time"), now),
                "tcp_source_port": None,
                "tcp_destination_port": None,
            }
            for c in children
        ]
        name = sa["name"]
        vips = sa.get("remote-vips") or []
        record = {
            "username": sa.get("remote-xauth-id"),
            "group": name.removeprefix("group-"),
            "assigned_ip": vips[0] if vips else None,
            "public_ip": sa.get("remote-host"),
            "public_port": remote_port,
            # no installed child SA (being negotiated or rekeyed): no protocol to show yet
            "protocol": ("IPsec/NAT-T" if encap else "IPsec") if children else None,
            "encryption": cipher_name(children[0]) if children else None,
            "login_time": _ago(sa.get("established"), now),
            "client_type": None,
            "client_version": None,
            "bytes_tx": sum(i["bytes_tx"] for i in ipsec),
            "bytes_rx": sum(i["bytes_rx"] for i in ipsec),
            "ike": {
                "session_id": _int(sa.get("uniqueid")),
                "encryption": cipher_name(sa),
                "hashing": hash_name(sa),
                "dh_group": _DH_NAMES.get(dh, sa.get("dh-group")) if dh else sa.get("dh-group"),
                "auth_mode": "Pre-Shared Keys (XAUTH)"
                if sa.get("remote-xauth-id")
                else "Pre-Shared Keys",
                "negotiation_mode": None,
                "rekey_interval": None,
                "initiator_cookie": sa.get("initiator-spi"),
                "responder_cookie": sa.get("responder-spi"),
                "established_at": _ago(sa.get("established"), now),
                "nat_t": None,
                "local_behind_nat": sa.get("nat-local") == "yes",
                "remote_behind_nat": sa.get("nat-remote") == "yes",
            },
            "ipsec": ipsec,
        }
        records.append(annotate(record, "strongswan", GATEWAY_UNREPORTED, esp))
    return records


def client_status(sas: list[dict[str, Any]], vpn: Any, esp: str) -> dict[str, Any]:
    """The client's status: its one IKE SA (or none: disconnected)."""
    now = time.time()
    established = [sa for sa in sas if sa.get("state") == "ESTABLISHED"]
    sa = established[0] if established else (sas[0] if sas else None)
    children = [c for c in _children(sa) if c.get("state") == "INSTALLED"] if sa else []
    child = children[0] if children else None
    if sa is None:
        state = "disconnected"
    elif sa.get("state") == "ESTABLISHED" and child is not None:
        state = "connected"
    else:
        state = "connecting"
    encap = child is not None and child.get("encap") == "yes"
    vips = (sa or {}).get("local-vips") or []
    remote_ts = (child or {}).get("remote-ts") or []
    record = {
        "state": state,
        "server": str(vpn.host),
        "group": vpn.group,
        "user": vpn.user,
        "assigned_ip": vips[0] if vips else None,
        "netmask": None,
        "local_ip": (sa or {}).get("local-host"),
        "transparent_tunneling": (
            f"Active on UDP port {sa.get('remote-port')}" if sa and encap else "Inactive"
        ),
        "transport": "UDP",
        "local_behind_nat": sa.get("nat-local") == "yes" if sa else None,
        "remote_behind_nat": sa.get("nat-remote") == "yes" if sa else None,
        "local_port": _int((sa or {}).get("local-port")),
        "remote_port": _int((sa or {}).get("remote-port")),
        "encryption": cipher_name(child) if child else "",
        "authentication": hash_name(child) if child else "",
        "spi_in": "0x" + child["spi-in"] if child and "spi-in" in child else None,
        "spi_out": "0x" + child["spi-out"] if child and "spi-out" in child else None,
        "packets_encrypted": _int((child or {}).get("packets-out")) or 0,
        "packets_decrypted": _int((child or {}).get("packets-in")) or 0,
        "packets_discarded": None,
        "packets_bypassed": None,
        "bytes_sent": _int((child or {}).get("bytes-out")) or 0,
        "bytes_received": _int((child or {}).get("bytes-in")) or 0,
        "connected_at": _ago(sa.get("established"), now) if state == "connected" and sa else None,
        "split_networks": [ts for ts in remote_ts if ts != "0.0.0.0/0"],
        "banner": None,
        "last_error": None,
        "reconnects": None,
        "waiting_for": None,
        "ike_dropped": None,
    }
    return annotate(record, "strongswan", CLIENT_UNREPORTED, esp)


def render_sessions(records: list[dict[str, Any]]) -> str:
    from .records_common import render_session_table

    return render_session_table(records)


def render_status(record: dict[str, Any]) -> str:
    from .records_common import render_status_text

    return render_status_text(record)
