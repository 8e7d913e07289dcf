"""Management sessions: administrators logged in to the concentrator's manager.

A VPN 3000 lists its own management sessions (the Manager in a browser, Telnet, SSH) in
Administer Sessions' "Management Sessions" table and counts them in the Session Summary.
Here the web console (`labctl ui`) logs in while someone looks at the concentrator's pages
and out when they leave. A login holds a lease that the console renews: a console that dies
without logging out leaves no session behind once its lease runs out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from .control import ControlError

DEFAULT_LEASE = 30.0
MAX_LEASE = 3600.0
MAX_SESSIONS = 64  # a runaway client cannot grow the table without bound
MAX_TEXT = 64


@dataclass
class ManagementSession:
    session_id: int
    administrator: str
    address: str  # where the administrator connects from
    protocol: str  # "HTTP", "SSH" ...
    encryption: str  # "None" for plain HTTP, as the Manager shows it
    login_time: float
    expires: float  # monotonic

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        del record["expires"]
        return record


def _text(value: Any, what: str) -> str:
    text = str(value or "").strip()
    if not text or len(text) > MAX_TEXT or not text.isprintable():
        raise ControlError(f"admin login: {what} must be 1-{MAX_TEXT} printable characters")
    return text


class AdminSessions:
    def __init__(self, clock=time.monotonic, wall=time.time) -> None:
        self.clock = clock
        self.wall = wall
        self.sessions: dict[int, ManagementSession] = {}
        self.next_id = 1

    def login(self, args: dict[str, Any]) -> dict[str, Any]:
        self._expire()
        if len(self.sessions) >= MAX_SESSIONS:
            raise ControlError(f"too many management sessions ({MAX_SESSIONS})")
        lease = min(max(float(args.get("lease") or DEFAULT_LEASE), 1.0), MAX_LEASE)
        session = ManagementSession(
            session_id=self.next_id,
            administrator=_text(args.get("administrator"), "administrator"),
            address=_text(args.get("address") or "local", "address"),
            protocol=_text(args.get("protocol") or "HTTP", "protocol"),
            encryption=_text(args.get("encryption") or "None", "encryption"),
            login_time=self.wall(),
            expires=self.clock() + lease,
        )
        self.next_id += 1
        self.sessions[session.session_id] = session
        return session.to_json()

    def touch(self, session_id: Any, lease: Any = None) -> dict[str, Any]:
        session = self._get(session_id)
        session.expires = self.clock() + min(max(float(lease or DEFAULT_LEASE), 1.0), MAX_LEASE)
        return session.to_json()

    def logout(self, session_id: Any) -> int:
        session = self._get(session_id)
        del self.sessions[session.session_id]
        return 1

    def active(self) -> list[ManagementSession]:
        self._expire()
        return sorted(self.sessions.values(), key=lambda s: s.session_id)

    def _get(self, session_id: Any) -> ManagementSession:
        self._expire()
        try:
            return self.sessions[int(session_id)]
        except (KeyError, TypeError, ValueError):
            raise ControlError(f"no management session {session_id!r}") from None

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, s in self.sessions.items() if s.expires <= now]:
            del self.sessions[key]
