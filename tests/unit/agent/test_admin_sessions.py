"""Management sessions on the concentrator (the web console's): counted in the summary,
listed in the Management table, gone on logout or when their lease runs out."""

from __future__ import annotations

import pytest

from labctl.agent.admin import MAX_SESSIONS, AdminSessions
from labctl.agent.control import ControlError
from labctl.agent.records import SessionSummary
from labctl.agent.tables import render_sessions


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_login_touch_logout_and_lease_expiry() -> None:
    clock = Clock()
    admins = AdminSessions(clock=clock, wall=lambda: 1_700_000_000.0)
    first = admins.login({"administrator": "admin", "address": "172.30.0.1", "lease": 30})
    second = admins.login({"administrator": "admin", "address": "172.30.0.1", "lease": 30})
    assert (first["session_id"], second["session_id"]) == (1, 2)
    assert first["protocol"] == "HTTP" and first["encryption"] == "None"
    assert "expires" not in first
    clock.now += 20
    admins.touch(1, 30)  # renewed until 150
    clock.now += 15  # 135: the second's lease (130) ran out
    assert [s.session_id for s in admins.active()] == [1]
    assert admins.logout(1) == 1
    assert admins.active() == []
    with pytest.raises(ControlError, match="no management session 1"):
        admins.touch(1)


def test_bad_logins_are_refused_and_the_table_is_bounded() -> None:
    admins = AdminSessions()
    for bad in ({}, {"administrator": "x" * 65}, {"administrator": "ad\nmin"}):
        with pytest.raises(ControlError, match="administrator"):
            admins.login(bad)
    for _ in range(MAX_SESSIONS):
        admins.login({"administrator": "admin"})
    with pytest.raises(ControlError, match="too many"):
        admins.login({"administrator": "admin"})


def test_the_sessions_screen_lists_management_sessions() -> None:
    summary = SessionSummary(0, 0, 1, 1, 100, 0)
    management = [
        {
            "session_id": 1,
            "administrator": "admin",
            "address": "172.30.0.1",
            "protocol": "HTTP",
            "encryption": "None",
            "login_time": 1000.0,
        }
    ]
    text = render_sessions([], summary, 1065.0, management=management)
    assert "Management Sessions" in text
    line = next(line for line in text.splitlines() if line.startswith("admin "))
    assert "172.30.0.1" in line and "HTTP" in line and line.endswith("0:01:05")
    assert "No Management Sessions" in render_sessions([], summary, 0.0)
