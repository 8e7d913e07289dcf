"""The concentrator's pages, laid out like the VPN 3000 Concentrator Series Manager of the
seed note: Administration > Administer Sessions (Session Summary; LAN-to-LAN, Remote
Access and Management Sessions; Logout; the per-session IKE / IPsec detail), Monitoring >
Sessions, and the event log.

Looking at these pages is a management session on the concentrator, as on the real box:
`ConsoleLogin` logs the console in through the agent's `vpn admin` command while a page's
update stream is open, renews its lease and logs out when the page goes away.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from .labs import LabRegistry

ADMINISTRATOR = "admin"  # the Manager's default administrator
LEASE_SECONDS = 30.0
TOUCH_EVERY = 10.0

SUMMARY_COLUMNS = (
    ("active_lan_to_lan", "Active LAN-to-LAN Sessions"),
    ("active_remote_access", "Active Remote Access Sessions"),
    ("active_management", "Active Management Sessions"),
    ("total_active", "Total Active Sessions"),
    ("peak_concurrent", "Peak Concurrent Sessions"),
    ("concurrent_limit", "Concurrent Sessions Limit"),
    ("total_cumulative", "Total Cumulative Sessions"),
)


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def login_time(epoch: float) -> str:
    return time.strftime("%b %d %H:%M:%S", time.localtime(epoch))


@dataclass
class AdministerView:
    """What the Administer Sessions screen shows, from the `administer` collector."""

    summary: list[tuple[str, int]]
    remote_access: list[dict[str, Any]]
    management: list[dict[str, Any]]
    lan_to_lan: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, records: dict[str, Any], now: float) -> AdministerView:
        summary = records.get("summary") or {}
        sessions = []
        for s in records.get("sessions") or []:
            sessions.append(
                {
                    **s,
                    "login": login_time(s["login_time"]),
                    "duration": duration(now - s["login_time"]),
                }
            )
        management = [
            {**m, "login": login_time(m["login_time"]), "duration": duration(now - m["login_time"])}
            for m in records.get("management") or []
        ]
        lan_to_lan = [
            {**r, "login": login_time(r["login_time"]), "duration": duration(now - r["login_time"])}
            for r in records.get("lan_to_lan") or []
        ]
        return cls(
            [(title, int(summary.get(key, 0))) for key, title in SUMMARY_COLUMNS],
            sessions,
            management,
            lan_to_lan,
        )


def session_detail(records: dict[str, Any], username: str, now: float) -> dict[str, Any] | None:
    """The IKE Session and IPSec/NAT-T Session tables of one user, as rows of two pairs."""
    session = next((s for s in records.get("sessions") or [] if s["username"] == username), None)
    if session is None:
        return None
    ike = session.get("ike") or {}
    ike_pairs = [
        ("Session ID", ike.get("session_id")),
        ("Encryption Algorithm", ike.get("encryption")),
        ("Hashing Algorithm", ike.get("hashing")),
        ("Diffie-Hellman Group", ike.get("dh_group")),
        ("Authentication Mode", ike.get("auth_mode")),
        ("IKE Negotiation Mode", ike.get("negotiation_mode")),
        ("Rekey Time Interval", f"{ike.get('rekey_interval')} seconds"),
        ("NAT-T", ike.get("nat_t") or "not negotiated"),
    ]
    title = session["protocol"].replace("IPsec", "IPSec") + " Session"
    ipsec_tables = []
    for sa in session.get("ipsec") or []:
        if sa.get("tcp_source_port") is not None:
            ports = [
                ("TCP Source Port", sa["tcp_source_port"]),
                ("TCP Destination Port", sa.get("tcp_destination_port")),
            ]
        else:
            ports = [
                ("UDP Source Port", sa.get("udp_source_port") or "-"),
                ("UDP Destination Port", sa.get("udp_destination_port") or "-"),
            ]
        pairs = [
            ("Session ID", sa["session_id"]),
            ("Remote Address", sa["remote_address"]),
            ("Local Address", sa["local_address"]),
            ("Encryption Algorithm", sa["encryption"]),
            ("Hashing Algorithm", sa["hashing"]),
            ("Idle Time", duration(sa.get("idle_seconds") or 0)),
            ("Encapsulation Mode", sa["encapsulation_mode"]),
            ("", ""),
            *ports,
            ("Rekey Time Interval", f"{sa['rekey_interval']} seconds"),
            ("SPI In / Out", f"{sa['spi_in']} / {sa['spi_out']}"),
            ("Bytes Received", sa.get("bytes_rx", 0)),
            ("Bytes Transmitted", sa.get("bytes_tx", 0)),
        ]
        ipsec_tables.append({"title": title, "rows": _rows_of_two(pairs)})
    return {
        "session": {**session, "duration": duration(now - session["login_time"])},
        "ike_rows": _rows_of_two(ike_pairs),
        "ipsec_tables": ipsec_tables,
    }


def _rows_of_two(pairs: list[tuple[str, Any]]) -> list[list[tuple[str, Any]]]:
    return [pairs[i : i + 2] for i in range(0, len(pairs), 2)]


class ConsoleLogin:
    """One management session of the console on a concentrator, for one open page."""

    def __init__(self, labs: LabRegistry, lab: str, node: str):
        self.labs = labs
        self.lab = lab
        self.node = node
        self.session_id: int | None = None
        self._touched = 0.0

    def login(self) -> int:
        status, out, err = self.labs.run(
            self.lab,
            self.node,
            f"vpn admin login {ADMINISTRATOR} --protocol HTTP --lease {LEASE_SECONDS:g}",
        )
        if status != 0:
            raise RuntimeError(f"management login on {self.node} failed: {(err or out).strip()}")
        self.session_id = int(json.loads(out)["session_id"])
        self._touched = time.monotonic()
        return self.session_id

    def keep_alive(self) -> None:
        """Renew the lease; log in again if the agent forgot the session (it restarted)."""
        if self.session_id is None or time.monotonic() - self._touched < TOUCH_EVERY:
            return
        status, _, _ = self.labs.run(
            self.lab,
            self.node,
            f"vpn admin touch {self.session_id} --lease {LEASE_SECONDS:g}",
        )
        self._touched = time.monotonic()
        if status != 0:
            self.login()

    def logout(self) -> None:
        if self.session_id is None:
            return
        session, self.session_id = self.session_id, None
        self.labs.run(self.lab, self.node, f"vpn admin logout {session}")


def logout_user(labs: LabRegistry, lab: str, node: str, user: str) -> str:
    """The Logout button: the agent's own `vpn logout USER`."""
    status, out, err = labs.run(lab, node, f"vpn logout {shlex.quote(user)}")
    text = (out if status == 0 else err or out).strip()
    return text if status == 0 else f"logout failed: {text}"


def logout_lan_to_lan(labs: LabRegistry, lab: str, node: str, connection: str) -> str:
    """Logout on a LAN-to-LAN row: `vpn logout --lan-to-lan NAME`."""
    status, out, err = labs.run(lab, node, f"vpn logout --lan-to-lan {shlex.quote(connection)}")
    text = (out if status == 0 else err or out).strip()
    return text if status == 0 else f"logout failed: {text}"


def logout_management(labs: LabRegistry, lab: str, node: str, session_id: int) -> str:
    status, out, err = labs.run(lab, node, f"vpn admin logout {int(session_id)}")
    return "logged out" if status == 0 else f"logout failed: {(err or out).strip()}"
