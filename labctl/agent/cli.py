"""`vpn`: the command line of a VPN node (runs inside the node, talks to the agent daemon).

vpn service start|stop|restart|reload|status
vpn service check FILE                   (can the agent run with FILE? changes nothing)
vpn show sessions [--json] [-v]          (concentrator)
vpn logout USER | --lan-to-lan NAME      (concentrator)
vpn admin login NAME [--protocol P] [--lease S] | touch ID | logout ID
                                         (concentrator: management sessions)
vpn connect [--wait] [--timeout S]       (client)
vpn disconnect                           (client)
vpn status [--json]                      (client; a fleet: one row per simulated client)
vpn fleet [--json]                       (fleet: summary, connect times, pings, memory)
vpn fleet connect [--wait] [--timeout S] | disconnect
vpn fleet ping ADDRESS [--waves N] [--interval S] [--max-loss PCT]
vpn stats
vpn log [-n N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING

from .control import ControlError, ServiceError, request

if TYPE_CHECKING:
    from pathlib import Path

# `service` (subprocess, shutil, pathlib) is imported by the commands that use it: every
# `vpn` call pays the interpreter's start, and `vpn connect --wait` is on the path that
# `make bench` times from connect to the first reply.


def _print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def cmd_service(args) -> int:
    from . import service

    action = args.action
    if action == "start":
        print(service.start())
    elif action == "stop":
        print(service.stop())
    elif action == "restart":
        service.stop()
        print(service.start())
    elif action == "reload":
        print(service.reload())
    elif action == "check":
        if not args.file:
            print("vpn: usage: vpn service check FILE", file=sys.stderr)
            return 2
        print(service.check(args.file))
    else:
        print("running" if service.running() else "stopped")
        return 0 if service.running() else 3
    return 0


def cmd_show(args) -> int:
    result = request("sessions", {"detail": args.verbose})
    if args.json:
        _print_json(
            {
                "summary": result["summary"],
                "lan_to_lan": result.get("lan_to_lan", []),
                "sessions": result["sessions"],
                "management": result.get("management", []),
            }
        )
    else:
        sys.stdout.write(result["text"])
    return 0


def cmd_logout(args) -> int:
    if args.lan_to_lan:
        count = request("logout", {"lan_to_lan": args.lan_to_lan})["logged_out"]
        print(f"logged out {count} LAN-to-LAN session(s) of {args.lan_to_lan}")
        return 0
    if not args.user:
        raise SystemExit("vpn logout: give a USER or --lan-to-lan CONNECTION")
    count = request("logout", {"user": args.user})["logged_out"]
    print(f"logged out {count} session(s) of {args.user}")
    return 0


def cmd_admin(args) -> int:
    """Management sessions; the address is where this command was reached from (the SSH
    client's address: labctl's end of the management plane)."""
    if args.action == "login":
        address = (os.environ.get("SSH_CLIENT") or "local").split()[0]
        result = request(
            "admin-login",
            {
                "administrator": args.target,
                "address": address,
                "protocol": args.protocol,
                "lease": args.lease,
            },
        )
    elif args.action == "touch":
        result = request("admin-touch", {"id": args.target, "lease": args.lease})
    else:
        result = request("admin-logout", {"id": args.target})
    _print_json(result)
    return 0


def cmd_connect(args) -> int:
    state = request("connect")["state"]
    if not args.wait:
        print(state)
        return 0
    # The agent answers when the state settles (no polling: that cost ~50 ms a connect).
    status = request("wait-settled", {"timeout": args.timeout}, timeout=args.timeout + 10)["status"]
    if status["state"] == "connected":
        print(f"connected: {status['assigned_ip']} via {status['server']}")
        return 0
    if status["state"] == "failed":
        print(f"failed: {status.get('last_error')}", file=sys.stderr)
        return 1
    print(
        f"not connected after {args.timeout:.0f}s (state {status.get('state')}, "
        f"last error: {status.get('last_error')})",
        file=sys.stderr,
    )
    return 1


def cmd_disconnect(args) -> int:
    print(request("disconnect")["state"])
    return 0


def _print_record_or_text(args, result: dict, key: str) -> int:
    """--json: the reply's record under ``key``; else its table text."""
    if args.json:
        _print_json(result[key])
    else:
        sys.stdout.write(result["text"])
    return 0


def cmd_status(args) -> int:
    return _print_record_or_text(args, request("status"), "status")


def cmd_fleet(args) -> int:
    if args.action == "disconnect":
        return cmd_disconnect(args)
    if args.action == "connect":
        request("connect")
        return _fleet_wait(args, lambda s: s["connecting"] == 0 and s["disconnected"] == 0)
    if args.action == "ping":
        if not args.address:
            print("vpn: usage: vpn fleet ping ADDRESS", file=sys.stderr)
            return 2
        request("fleet-ping", {"to": args.address, "waves": args.waves, "interval": args.interval})
        args.wait = True
        return _fleet_wait(args, lambda s: (s["ping"] or {}).get("state") == "done")
    return _print_record_or_text(args, request("fleet"), "summary")


def _fleet_wait(args, done) -> int:
    """Poll the fleet's summary until ``done``; print it; 0 when every member is connected
    (connect) or no echo went unanswered beyond --max-loss (ping)."""
    deadline = time.monotonic() + args.timeout
    while True:
        result = request("fleet")
        summary = result["summary"]
        finished = done(summary)
        if finished or time.monotonic() >= deadline or not args.wait:
            break
        time.sleep(0.5)
    sys.stdout.write(result["text"])
    if not args.wait:
        return 0
    if not finished:
        print(f"vpn: not finished after {args.timeout:.0f}s", file=sys.stderr)
        return 1
    if args.action == "connect":
        # the last line is what a scenario's step log keeps
        print(
            f"{summary['connected']}/{summary['members']} connected, all after "
            f"{summary['storm_seconds']} s; connect p50 {summary['connect_p50']} s, p99 "
            f"{summary['connect_p99']} s; IKE retransmissions {summary['ike_retransmits']}"
        )
        return 0 if summary["connected"] == summary["members"] else 1
    ping = summary["ping"]
    allowed = ping["sent"] * args.max_loss / 100.0
    return 0 if ping["sent"] > 0 and ping["lost"] <= allowed else 1


def cmd_stats(args) -> int:
    _print_json(request("stats"))
    return 0


def log_tail(path: Path, count: int) -> list[str] | None:
    """The last ``count`` lines of the event log, reaching into the rotated files
    (``vpn.log.1``, ``.2`` ...) when the current one is shorter; None if there is no log."""
    lines: list[str] = []
    found = False
    for index in range(0, 10):
        part = path if index == 0 else path.with_name(f"{path.name}.{index}")
        try:
            text = part.read_text(errors="replace")
        except FileNotFoundError:
            if index:
                break
            continue
        except OSError:
            break
        found = True
        lines = text.splitlines() + lines
        if len(lines) >= count:
            break
    if not found:
        return None
    return lines[-count:] if count > 0 else []


def cmd_log(args) -> int:
    from . import service

    lines = log_tail(service.LOG_FILE, args.lines)
    if lines is None:
        print("no log yet", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpn", description="VPN node control")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("service")
    p.add_argument("action", choices=("start", "stop", "restart", "reload", "status", "check"))
    p.add_argument("file", nargs="?", help="check: the settings file to check")
    p.set_defaults(func=cmd_service)
    p = sub.add_parser("show")
    p.add_argument("what", choices=("sessions",))
    p.add_argument("--json", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true", help="per-session detail")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("logout")
    p.add_argument("user", nargs="?", help="a remote-access user")
    p.add_argument("--lan-to-lan", metavar="CONNECTION", help="a LAN-to-LAN entry's name")
    p.set_defaults(func=cmd_logout)
    p = sub.add_parser("admin")
    p.add_argument("action", choices=("login", "touch", "logout"))
    p.add_argument("target", help="login: the administrator's name; touch/logout: session id")
    p.add_argument("--protocol", default="HTTP")
    p.add_argument("--lease", type=float, help="seconds the session lives without a touch")
    p.set_defaults(func=cmd_admin)
    p = sub.add_parser("connect")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(func=cmd_connect)
    p = sub.add_parser("disconnect")
    p.set_defaults(func=cmd_disconnect)
    p = sub.add_parser("status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("fleet")
    p.add_argument("action", nargs="?", choices=("summary", "connect", "disconnect", "ping"))
    p.add_argument("address", nargs="?", help="ping: where every simulated client pings")
    p.add_argument("--json", action="store_true")
    p.add_argument("--wait", action="store_true", help="connect: until every client is done")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--waves", type=int, default=3)
    p.add_argument("--interval", type=float, default=1.0, help="ping: seconds between waves")
    p.add_argument("--max-loss", type=float, default=0.0, help="ping: percent allowed")
    p.set_defaults(func=cmd_fleet)
    p = sub.add_parser("stats")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("log")
    p.add_argument("-n", "--lines", type=int, default=50)
    p.set_defaults(func=cmd_log)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ControlError as exc:
        print(f"vpn: {exc}", file=sys.stderr)
        return 1
    except ServiceError as exc:
        print(f"vpn: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
