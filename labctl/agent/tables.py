"""Cisco-like text tables for the agents' status records (pure formatting)."""

from __future__ import annotations

import time

from .records import (
    ClientStatus,
    IkeSaRecord,
    IpsecSaRecord,
    LanToLanRecord,
    SessionRecord,
    SessionSummary,
)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _login(epoch: float) -> str:
    return time.strftime("%b %d %H:%M:%S", time.localtime(epoch))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def render_sessions(
    sessions: list[SessionRecord],
    summary: SessionSummary,
    now: float,
    detail: bool = False,
    management: list[dict] | None = None,
    lan_to_lan: list[LanToLanRecord] | None = None,
) -> str:
    lines = ["Session Summary", ""]
    lines += _table(
        [
            "Active LAN-to-LAN",
            "Active Remote Access",
            "Active Management",
            "Total Active",
            "Peak Concurrent",
            "Concurrent Limit",
            "Total Cumulative",
        ],
        [
            [
                str(summary.active_lan_to_lan),
                str(summary.active_remote_access),
                str(summary.active_management),
                str(summary.total_active),
                str(summary.peak_concurrent),
                str(summary.concurrent_limit),
                str(summary.total_cumulative),
            ]
        ],
    )
    lines += ["", "LAN-to-LAN Sessions", ""]
    if not lan_to_lan:
        lines.append("No LAN-to-LAN Sessions")
    else:
        lines += _table(
            [
                "Connection Name",
                "IP Address",
                "Protocol",
                "Encryption",
                "Login Time",
                "Duration",
                "Bytes Tx",
                "Bytes Rx",
            ],
            [
                [
                    r.connection_name,
                    r.ip_address,
                    r.protocol,
                    r.encryption,
                    _login(r.login_time),
                    _duration(now - r.login_time),
                    str(r.bytes_tx),
                    str(r.bytes_rx),
                ]
                for r in lan_to_lan
            ],
        )
    lines += ["", "Remote Access Sessions", ""]
    if not sessions:
        lines.append("No Remote Access Sessions")
    else:
        rows = []
        for s in sessions:
            rows.append(
                [
                    s.username,
                    s.assigned_ip,
                    s.group,
                    s.protocol,
                    _login(s.login_time),
                    f"{s.client_type}",
                    str(s.bytes_tx),
                ]
            )
            rows.append(
                [
                    "",
                    s.public_ip,
                    "",
                    s.encryption,
                    _duration(now - s.login_time),
                    s.client_version,
                    str(s.bytes_rx),
                ]
            )
        lines += _table(
            [
                "Username",
                "Assigned IP / Public IP",
                "Group",
                "Protocol / Encryption",
                "Login Time / Duration",
                "Client Type / Version",
                "Bytes Tx / Rx",
            ],
            rows,
        )
    lines += ["", "Management Sessions", ""]
    if not management:
        lines.append("No Management Sessions")
    else:
        lines += _table(
            ["Administrator", "IP Address", "Protocol", "Encryption", "Login Time", "Duration"],
            [
                [
                    m["administrator"],
                    m["address"],
                    m["protocol"],
                    m["encryption"],
                    _login(m["login_time"]),
                    _duration(now - m["login_time"]),
                ]
                for m in management
            ],
        )
    if detail:
        for r in lan_to_lan or []:
            lines += ["", *render_lan_to_lan_detail(r).rstrip("\n").splitlines()]
        for s in sessions:
            lines += ["", *render_session_detail(s, now).rstrip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def render_session_detail(session: SessionRecord, now: float) -> str:
    lines = [
        f"Session detail: {session.username} ({session.assigned_ip} via "
        f"{session.public_ip}:{session.public_port})"
    ]
    return "\n".join(lines + _sa_detail(session.ike, session.ipsec, session.protocol)) + "\n"


def render_lan_to_lan_detail(record: LanToLanRecord) -> str:
    lines = [
        f"LAN-to-LAN detail: {record.connection_name} ({record.ip_address}:{record.public_port}; "
        f"local {', '.join(record.local_networks) or '-'}, "
        f"remote {', '.join(record.remote_networks) or '-'})"
    ]
    return "\n".join(lines + _sa_detail(record.ike, record.ipsec, record.protocol)) + "\n"


def _sa_detail(ike: IkeSaRecord | None, ipsecs: list[IpsecSaRecord], protocol: str) -> list[str]:
    lines: list[str] = []
    if ike:
        lines += [
            "  IKE Session",
            *_pairs(
                [
                    ("Session ID", str(ike.session_id)),
                    ("Encryption Algorithm", ike.encryption),
                    ("Hashing Algorithm", ike.hashing),
                    ("Diffie-Hellman Group", ike.dh_group),
                    ("Authentication Mode", ike.auth_mode),
                    ("IKE Negotiation Mode", ike.negotiation_mode),
                    ("Rekey Time Interval", f"{ike.rekey_interval} seconds"),
                    ("NAT-T", ike.nat_t or "not negotiated"),
                ]
            ),
        ]
    for sa in ipsecs:
        title = protocol.replace("IPsec", "IPSec") + " Session"
        if sa.tcp_source_port is not None:  # IPsec over TCP: the ports are TCP ports
            ports = [
                ("TCP Source Port", str(sa.tcp_source_port)),
                ("TCP Destination Port", str(sa.tcp_destination_port or "-")),
            ]
        else:
            ports = [
                ("UDP Source Port", str(sa.udp_source_port or "-")),
                ("UDP Destination Port", str(sa.udp_destination_port or "-")),
            ]
        lines += [
            f"  {title}",
            *_pairs(
                [
                    ("Session ID", str(sa.session_id)),
                    ("Remote Address", sa.remote_address),
                    ("Local Address", sa.local_address),
                    ("Encryption Algorithm", sa.encryption),
                    ("Hashing Algorithm", sa.hashing),
                    ("Idle Time", _duration(sa.idle_seconds)),
                    ("Encapsulation Mode", sa.encapsulation_mode),
                    *ports,
                    ("Rekey Time Interval", f"{sa.rekey_interval} seconds"),
                    ("SPI In / Out", f"{sa.spi_in} / {sa.spi_out}"),
                    ("Bytes Received", str(sa.bytes_rx)),
                    ("Bytes Transmitted", str(sa.bytes_tx)),
                ]
            ),
        ]
    return lines


def _pairs(items: list[tuple[str, str]]) -> list[str]:
    lines = []
    for i in range(0, len(items), 2):
        left = items[i]
        text = f"    {left[0]:<22}{left[1]:<26}"
        if i + 1 < len(items):
            right = items[i + 1]
            text += f"{right[0]:<22}{right[1]}"
        lines.append(text.rstrip())
    return lines


def render_client_status(status: ClientStatus, now: float) -> str:
    connected = (
        _duration(now - status.connected_at)
        if status.connected_at and status.state == "connected"
        else "-"
    )
    lines = [
        f"Connection:   {status.state}  (server {status.server}, group {status.group}, "
        f"user {status.user})",
        "",
        "Tunnel Details",
        f"  Client address:        {status.assigned_ip or '-'}"
        + (f" / {status.netmask}" if status.netmask else ""),
        f"  Server address:        {status.server}",
        f"  Local address:         {status.local_ip or '-'}",
        f"  Encryption:            {status.encryption or '-'}",
        f"  Authentication:        {status.authentication or '-'}",
        f"  Transparent Tunneling: {status.transparent_tunneling or 'Inactive'}",
        f"  {status.transport + ' ports:':<23}local {status.local_port or '-'} -> remote "
        f"{status.remote_port or '-'}",
        f"  SPIs:                  in {status.spi_in or '-'}  out {status.spi_out or '-'}",
        f"  Time connected:        {connected}",
        "",
        "Statistics",
        f"  Bytes received:        {status.bytes_received}",
        f"  Bytes sent:            {status.bytes_sent}",
        f"  Packets encrypted:     {status.packets_encrypted}",
        f"  Packets decrypted:     {status.packets_decrypted}",
        f"  Packets discarded:     {status.packets_discarded}",
        f"  Packets bypassed:      {status.packets_bypassed}",
    ]
    if status.split_networks:
        lines += ["", "Secured routes", *(f"  {n}" for n in status.split_networks)]
    nat = status.nat_lines()
    if nat:
        lines += ["", *nat]
    if status.waiting_for:
        lines += ["", f"Waiting: {status.waiting_for}"]
    dropped = {k: v for k, v in status.ike_dropped.items() if v}
    if dropped:
        counts = ", ".join(f"{k} {v}" for k, v in dropped.items())
        lines += ["", f"IKE messages dropped: {counts}"]
    if status.last_error:
        lines += ["", f"Last error: {status.last_error}"]
    return "\n".join(lines) + "\n"
