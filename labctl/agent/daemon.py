"""The VPN agent daemon: `python3 -m labctl.agent.daemon [--config PATH]`.

Runs the agent of the node's kind in one event loop with its control socket. Its output is
the event log (the service wrapper appends it to /var/log/labctl/vpn.log).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from typing import Any

from . import dataclass_cache
from .control import ControlError, ControlServer, Deferred
from .eventlog import EventLog
from .fleet_settings import FleetSettings
from .loop import EventLoop
from .preflight import PreflightError, check_settings_file
from .settings import (
    CONFIG_PATH,
    ClientSettings,
    SettingsError,
    SiteSettings,
    listeners,
    load_settings,
)
from .tables import render_client_status, render_sessions
from .udp_offload import segment_before_the_wire


class Daemon:
    def __init__(self, config_path: str):
        self.config_path = config_path
        settings = load_settings(config_path)
        self.log = EventLog(sys.stdout, settings.log_level)
        self.loop = EventLoop()
        # Only the node's own role is imported: a client container does not carry the
        # concentrator's, the site's or the fleet's modules in its memory (one agent per
        # client container, hundreds per lab).
        self.agent: Any
        self.role: str
        if isinstance(settings, ClientSettings):
            from .client import ClientAgent

            self.role, self.agent = "client", ClientAgent(settings, self.loop, self.log)
        elif isinstance(settings, SiteSettings):
            from .site import SiteAgent

            self.role, self.agent = "site", SiteAgent(settings, self.loop, self.log)
        elif isinstance(settings, FleetSettings):
            from .fleet import FleetAgent

            self.role, self.agent = "fleet", FleetAgent(settings, self.loop, self.log)
        else:
            from .concentrator import ConcentratorAgent

            self.role = "concentrator"
            self.agent = ConcentratorAgent(settings, self.loop, self.log)
        self.started = time.time()
        self.control = ControlServer(self._handlers())
        self.control.attach(self.loop)
        self.loop.add_signal_handler(signal.SIGTERM, self.loop.stop)
        self.loop.add_signal_handler(signal.SIGINT, self.loop.stop)
        self.loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
        if isinstance(settings, ClientSettings | SiteSettings | FleetSettings) and (
            settings.auto_connect
        ):
            self.loop.call_later(0.0, self.agent.connect)

    def _handlers(self) -> dict:
        handlers = {
            "ping": lambda args: {
                "kind": type(self.agent).__name__,
                "uptime": time.time() - self.started,
            },
            "reload": self._reload,
            "check": self._check,
            "stats": lambda args: self.agent.stats(),
            "shutdown": self._shutdown,
        }
        if self.role == "concentrator":
            handlers |= {
                "sessions": self._sessions,
                "logout": self._logout,
                "admin-login": self._admin_login,
                "admin-touch": lambda args: self.agent.admins.touch(
                    args.get("id"), args.get("lease")
                ),
                "admin-logout": self._admin_logout,
            }
        elif self.role == "fleet":
            from .fleet import render_summary

            handlers |= {
                "status": self._fleet_status,
                "fleet": lambda args: {
                    "summary": (summary := self.agent.summary()),
                    "text": render_summary(summary),
                },
                "fleet-ping": lambda args: self.agent.ping(
                    str(args["to"]), int(args.get("waves", 3)), float(args.get("interval", 1.0))
                ),
                "connect": lambda args: {"state": self.agent.connect()},
                "disconnect": lambda args: {"state": self.agent.disconnect()},
            }
        else:
            handlers |= {
                "status": self._status,
                "wait-settled": self._wait_settled,
                "connect": lambda args: {"state": self.agent.connect()},
                "disconnect": lambda args: {"state": self.agent.disconnect()},
            }
        return handlers

    def _sessions(self, args: dict) -> dict:
        records = self.agent.session_records()
        lan_to_lan = self.agent.lan_to_lan_records()
        summary = self.agent.summary()
        management = [m.to_json() for m in self.agent.admins.active()]
        return {
            "summary": summary.to_json(),
            "lan_to_lan": [r.to_json() for r in lan_to_lan],
            "sessions": [r.to_json() for r in records],
            "management": management,
            "text": render_sessions(
                records, summary, time.time(), bool(args.get("detail")), management, lan_to_lan
            ),
        }

    def _logout(self, args: dict) -> dict:
        if args.get("lan_to_lan") is not None:
            return {"logged_out": self.agent.logout_lan_to_lan(str(args["lan_to_lan"]))}
        return {"logged_out": self.agent.logout(str(args.get("user")))}

    def _admin_login(self, args: dict) -> dict:
        session = self.agent.admins.login(args)
        self.log.info(
            "ADMIN/1",
            f"management session {session['session_id']}: {session['administrator']} "
            f"from {session['address']} ({session['protocol']}) logged in",
        )
        return session

    def _admin_logout(self, args: dict) -> dict:
        count = self.agent.admins.logout(args.get("id"))
        self.log.info("ADMIN/2", f"management session {args.get('id')} logged out")
        return {"logged_out": count}

    def _status(self, args: dict) -> dict:
        status = self.agent.client_status()
        return {"status": status.to_json(), "text": render_client_status(status, time.time())}

    def _wait_settled(self, args: dict) -> dict | Deferred:
        """The status once the client is connected, failed or disconnected, or when
        ``timeout`` seconds have passed (answered at once if it already is)."""
        if self.agent.status.state != "connecting":
            return self._status(args)
        reply = Deferred()
        timer = self.loop.call_later(
            float(args.get("timeout", 60.0)), lambda: reply.resolve(self._status(args))
        )

        def settled() -> None:
            timer.cancel()
            reply.resolve(self._status(args))

        self.agent.state_watchers.append(settled)
        return reply

    def _fleet_status(self, args: dict) -> dict:
        from .fleet import render_rows

        rows = self.agent.rows()
        return {"status": rows, "text": render_rows(rows)}

    def _reload_on_signal(self) -> None:
        """SIGHUP: re-read the settings file, as `vpn service reload` does."""
        self._reload({})

    def _reload(self, args: dict) -> dict:
        try:
            settings = load_settings(self.config_path)
        except SettingsError as exc:
            raise ControlError(str(exc)) from None
        if type(settings) is not type(self.agent.settings):
            return {"result": "restart"}
        try:
            return {"result": self.agent.reload(settings)}
        except SettingsError as exc:  # e.g. a proposal the policy cannot use: refuse it
            raise ControlError(str(exc)) from None

    def _check(self, args: dict) -> str:
        """`vpn service check FILE` while running: the sockets this agent holds are no
        conflict for the file's settings."""
        held = {listener.key for listener in listeners(self.agent.settings)}
        try:
            return check_settings_file(str(args.get("path")), held)
        except PreflightError as exc:
            raise ControlError(str(exc)) from None

    def _shutdown(self, args: dict) -> dict:
        self.loop.call_later(0.05, self.loop.stop)
        return {"stopping": True}

    def run(self) -> None:
        self.log.info("SYS/1", f"VPN agent started ({type(self.agent).__name__})")
        try:
            self.loop.run()
        finally:
            if self.role in ("client", "fleet"):
                with contextlib.suppress(Exception):
                    self.agent.disconnect()
                    self.loop.run(duration=0.2)  # let the Delete leave
            self.control.close()
            self.log.info("SYS/2", "VPN agent stopped")


USAGE = "usage: vpn-agent [--config PATH] [--detach]"


def parse_arguments(argv: list[str]) -> tuple[str, bool]:
    """(config path, detach) from ``--config PATH`` / ``--config=PATH`` and ``--detach``
    (in the background, as `vpn service start` would have started it: service.detach).
    By hand, not argparse: its import is ~10 ms of every agent's start; the only callers
    are the `vpn` wrapper and service.py. ValueError names what was wrong."""
    config, detach = CONFIG_PATH, False
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--detach":
            detach = True
        elif arg == "--config":
            if not rest:
                raise ValueError("--config needs a path")
            config = rest.pop(0)
        elif arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        else:
            raise ValueError(f"unexpected argument {arg!r}")
    return config, detach


def main(argv: list[str] | None = None) -> int:
    try:
        config, in_background = parse_arguments(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"vpn agent: {exc}\n{USAGE}", file=sys.stderr, flush=True)
        return 2
    ready = None
    if in_background:
        from .service import detach

        ready = detach()  # the caller's process exits in there; this is the agent
    segment_before_the_wire()  # before any data plane opens its sockets
    try:
        daemon = Daemon(config)
    except (SettingsError, OSError) as exc:
        print(f"vpn agent: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    dataclass_cache.release()  # its role's classes are defined: the table's memory back
    if ready is not None:
        ready()  # its control socket listens: the parent says "started"
    daemon.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
