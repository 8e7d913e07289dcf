"""What the third-party state readers share: the fields every record carries beyond the
agent's (`implementation`, `esp`, `unreported`) and the text views of the records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def annotate(
    record: dict[str, Any], implementation: str, unreported: Iterable[str], esp: str | None
) -> dict[str, Any]:
    """`record` plus who produced it, which ESP it uses, and the fields it cannot report
    (dotted names without list indexes: "ipsec.dropped")."""
    return {
        **record,
        "implementation": implementation,
        "esp": esp,
        "unreported": sorted(unreported),
    }


def unreported_field(row: Any, path: str) -> str | None:
    """The implementation that cannot report `path` of this row, or None."""
    if not isinstance(row, dict):
        return None
    names = row.get("unreported") or []
    plain = ".".join(part for part in path.split(".") if not part.isdigit())
    if plain in names:
        return str(row.get("implementation") or "this implementation")
    return None


def _cell(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def render_session_table(records: list[dict[str, Any]]) -> str:
    header = (
        "Username",
        "Group",
        "Assigned IP",
        "Public IP:port",
        "Protocol",
        "Encryption",
        "Bytes Tx",
        "Bytes Rx",
    )
    rows = [
        (
            _cell(r["username"]),
            _cell(r["group"]),
            _cell(r["assigned_ip"]),
            f"{_cell(r['public_ip'])}:{_cell(r['public_port'])}",
            _cell(r["protocol"]),
            _cell(r["encryption"]),
            str(r["bytes_tx"]),
            str(r["bytes_rx"]),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    esp = records[0]["esp"] if records else None
    implementation = records[0]["implementation"] if records else "-"
    lines.append(f"{len(records)} sessions ({implementation}, ESP: {_cell(esp)})")
    return "\n".join(lines) + "\n"


def render_status_text(record: dict[str, Any]) -> str:
    order = (
        "state",
        "server",
        "group",
        "user",
        "assigned_ip",
        "local_ip",
        "transparent_tunneling",
        "local_port",
        "remote_port",
        "encryption",
        "authentication",
        "packets_encrypted",
        "packets_decrypted",
        "bytes_sent",
        "bytes_received",
        "split_networks",
        "implementation",
        "esp",
    )
    lines = [f"{key.replace('_', ' ').capitalize():24} {_cell(record.get(key))}" for key in order]
    lines.append(f"{'Not reported':24} {', '.join(record.get('unreported') or []) or '-'}")
    return "\n".join(lines) + "\n"
