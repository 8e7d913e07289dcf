"""labctl: containerized VPN/NAT network labs.

labctl validate FILE...        check topology files
labctl up FILE [--name N]      bring a lab up (idempotent)
labctl down [NAME|FILE|--all]  remove a lab and everything it made
labctl status [--json]         labs and nodes that are up
labctl exec NODE -- CMD        run a command in a node (over SSH)
labctl show NODE WHAT          xlate, arp, route, sessions ... (--json)
labctl push NODE               re-render and reload a node's configuration
labctl inspect [LAB] [--json]  every lab, node, address and link
labctl capture LINK|NODE:IF    live pcap of a link (-w FILE|-, --keys DIR for Wireshark)
labctl ui                      the web console (127.0.0.1, a token in the URL)
labctl graph FILE              DOT / SVG / Mermaid picture of a topology
labctl test PATH... [--shard K/N] [--repeat N]
labctl junit-merge -o OUT FILE...
labctl completion bash|zsh     shell completion script
labctl images build|list|prune
labctl schema                  the topology JSON Schema, for editors
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

from ..errors import LabctlError
from ..naming import LAB_NAME_RULE, LabNameError, check_lab_name
from ..topology.secrets import redact
from .context import CliError

COMPLETE_COMMAND = "__complete"


def _lab_prefix(value: str) -> str:
    """Lab names are a-z, 0-9 and '-'; a prefix leaves room for the rest (24 at most)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,11}", value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: 1-12 characters a-z, 0-9 or '-', starting with a letter or digit"
        )
    return value


def _lab_name(value: str) -> str:
    """Every command that takes a lab name checks it here, before anything else runs."""
    try:
        return check_lab_name(value)
    except LabNameError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a lab name ({LAB_NAME_RULE})") from None


def _common_options(suppress: bool) -> argparse.ArgumentParser:
    """-q and --debug, accepted before and after the subcommand (`labctl down X -q`).
    On subcommands their default is SUPPRESS, so an absent flag keeps the global value."""
    common = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else False
    common.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="no progress lines"
    )
    common.add_argument(
        "--debug", action="store_true", default=default, help="print the traceback of an error too"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(
        prog="labctl",
        description="Containerized VPN/NAT network labs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common_options(suppress=True)]

    def command(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, parents=common)
        p.set_defaults(func=func)
        return p

    p = command("validate", "check topology files", commands.cmd_validate)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument(
        "--expand",
        action="store_true",
        help="print each topology with patterns and inherited settings expanded (secrets masked)",
    )

    command("schema", "print the topology JSON Schema", commands.cmd_schema)

    p = command("up", "bring a lab up", commands.cmd_up)
    p.add_argument("file", type=Path)
    p.add_argument(
        "--name", type=_lab_name, help="run under another lab name (two copies side by side)"
    )
    p.add_argument(
        "--keep-on-failure",
        action="store_true",
        help="leave a failed lab for inspection instead of removing it",
    )
    p.add_argument(
        "--recreate",
        action="store_true",
        help="if the lab runs with another structure (nodes, links, addresses), rebuild it",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be done; do nothing")

    p = command("down", "remove a lab and everything it made", commands.cmd_down)
    p.add_argument("target", nargs="?", help="lab name or topology file")
    p.add_argument("--all", action="store_true", help="every labctl lab on this host")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed")

    p = command("status", "labs and nodes that are up", commands.cmd_status)
    p.add_argument("lab", nargs="?", type=_lab_name)
    p.add_argument("--json", action="store_true")

    p = command("inspect", "every lab, node, address and link", commands.cmd_inspect)
    p.add_argument("lab", nargs="?", type=_lab_name)
    p.add_argument("--json", action="store_true")

    p = command("exec", "run a command in a node", commands.cmd_exec)
    p.add_argument("node")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.add_argument("--lab", type=_lab_name)
    p.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")

    p = command("show", "show a node's state (xlate, arp, sessions, ...)", commands.cmd_show)
    p.add_argument("node")
    p.add_argument("what", nargs="?", help="omit to list what the node can show")
    p.add_argument("--lab", type=_lab_name)
    p.add_argument("--json", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")

    p = command("push", "re-render a node's configuration and reload it", commands.cmd_push)
    p.add_argument("nodes", nargs="+")
    p.add_argument("--lab", type=_lab_name)
    p.add_argument(
        "--dry-run", action="store_true", help="list the files that would change; do nothing"
    )

    p = command(
        "capture", "stream a live pcap of a link (into tshark/Wireshark)", commands.cmd_capture
    )
    p.add_argument("target", help="a link name, or NODE:INTERFACE for one node's side")
    p.add_argument("--lab", type=_lab_name)
    p.add_argument(
        "-w", "--write", default="-", help="pcap file, or - for standard output (the default)"
    )
    p.add_argument(
        "--keys",
        type=Path,
        help="write the lab's IKE/ESP keys into this folder as Wireshark's "
        "ikev1_decryption_table and esp_sa (use it as WIRESHARK_CONFIG_DIR)",
    )
    p.add_argument("-c", "--count", type=int, help="stop after this many packets")
    p.add_argument("--seconds", type=float, help="stop after this many seconds")

    p = command("ui", "serve the web console", commands.cmd_ui)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8047, help="port (default 8047; 0: any free one)")
    p.add_argument(
        "--reports", type=Path, default=Path("reports"), help="where `labctl test` writes reports"
    )
    p.add_argument("--token", help="access token (default: a random one)")
    p.add_argument(
        "--stop-after", type=float, help="stop by itself after this many seconds (tests, demos)"
    )

    p = command("graph", "draw a topology", commands.cmd_graph)
    p.add_argument("file", type=Path)
    p.add_argument("--format", choices=("dot", "svg", "mermaid"), default="dot")
    p.add_argument("-o", "--output", type=Path)

    p = command("test", "run the expectations and scenarios of topologies", commands.cmd_test)
    p.add_argument("paths", nargs="+", type=Path, help="topology files or folders")
    p.add_argument(
        "--keep",
        action="store_true",
        help="run on the lab that is up (bring it up if not) and leave it up",
    )
    p.add_argument("--lab", type=_lab_name, help="with --keep: the running lab's name")
    p.add_argument("--scenario", action="append", help="only this scenario (repeatable)")
    p.add_argument(
        "--matrix",
        action="store_true",
        help="run every case for each gateway x client implementation (ours, strongswan, "
        "vpnc); combinations an implementation cannot express are reported not applicable",
    )
    p.add_argument("--report-dir", type=Path, default=Path("reports"))
    p.add_argument("--junit", type=Path, help="JUnit XML path (default REPORT_DIR/junit.xml)")
    p.add_argument(
        "--lab-prefix",
        default="t",
        type=_lab_prefix,
        help="names of the labs made for the cases start with PREFIX- (default t)",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="run only shard K of N (cases split round-robin over their sorted ids)",
    )
    p.add_argument(
        "--repeat", type=_positive, default=1, metavar="N", help="run each case N times (flakes)"
    )

    p = command(
        "junit-merge", "merge JUnit files (the shards of a run) into one", commands.cmd_junit_merge
    )
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)

    p = command("completion", "print a shell completion script", commands.cmd_completion)
    p.add_argument("shell", choices=("bash", "zsh"))

    p = command("images", "build, list or prune node images", commands.cmd_images)
    p.add_argument("action", choices=("build", "list", "prune"))
    p.add_argument(
        "roles",
        nargs="*",
        metavar="ROLE",
        help="build: these roles and their parents (default: base node vpn; strongswan is "
        "built on demand by up, or when named here)",
    )
    p.add_argument("--force", action="store_true", help="build: rebuild even if present")
    p.add_argument("--json", action="store_true")
    return parser


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a whole number of 1 or more")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [COMPLETE_COMMAND]:  # every TAB runs this: skip the full parser
        from .complete import complete

        return complete(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_privileges(args)
        return int(args.func(args) or 0)
    except LabctlError as exc:
        if args.debug:
            traceback.print_exception(exc)
        print(redact(exc.user_message()), file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `labctl show ... | head`: the reader is gone, so are we
        sys.stderr.close()
        return 141
    except Exception as exc:
        if args.debug:
            traceback.print_exception(exc)
        return internal_error(exc, args.command)  # a bug: one line, the traceback in a file


# What needs root: namespaces, veths and containers are made and removed; the lab's SSH
# key and host state are root's. validate, schema and graph read files only.
_NEEDS_ROOT = {
    "up": "it creates network namespaces, veth pairs and containers",
    "down": "it removes network namespaces, veth pairs and containers",
    "test": "it brings labs up and down",
    "exec": "it uses the lab's SSH key, readable by root only",
    "show": "it uses the lab's SSH key, readable by root only",
    "push": "it uses the lab's SSH key, readable by root only",
    "capture": "it captures inside the lab's network namespace",
    "ui": "it reads labs with the lab's SSH key, readable by root only",
    "inspect": "it reads the labs' records, readable by root only",
}
_NEEDS_DOCKER = {"status", "images"}
DOCKER_SOCKET = Path("/var/run/docker.sock")


def check_privileges(args: argparse.Namespace) -> None:
    """Refuse early, with the reason, what would otherwise fail half-way as non-root."""
    command = args.command
    reason: str | None
    if command == "images" and args.action == "build":
        reason = "debootstrap builds the base image as root"
    else:
        reason = _NEEDS_ROOT.get(command)
    if reason and os.geteuid() != 0:
        raise CliError(f"labctl {command} needs root ({reason}); run it as root", status=77)
    if (
        command in _NEEDS_DOCKER
        and not os.environ.get("DOCKER_HOST")
        and DOCKER_SOCKET.exists()
        and not os.access(DOCKER_SOCKET, os.R_OK | os.W_OK)
    ):
        raise CliError(
            f"permission denied on the Docker socket {DOCKER_SOCKET}: run labctl {command} "
            "as root (or as a member of the docker group)",
            status=77,
        )


EX_SOFTWARE = 70  # sysexits.h: internal software error


def internal_error(exc: BaseException, command: str) -> int:
    """Print one line naming the error and where its traceback went; never a secret.
    (The report names the command only: arguments may carry anything.)"""
    report = f"labctl {command} at {time.ctime()}\n" + "".join(traceback.format_exception(exc))
    saved = _save_crash_report(redact(report))
    summary = redact(f"{type(exc).__name__}: {exc}").strip().splitlines() or [""]
    line = summary[0][:300]
    print(f"labctl: internal error: {line}; {saved}", file=sys.stderr)
    return EX_SOFTWARE


def _save_crash_report(report: str) -> str:
    """Write the traceback to <state dir>/crash/ (or the temp dir); say where it went."""
    state_base = Path(os.environ.get("LABCTL_STATE_DIR", "/var/lib/labctl"))
    problems = []
    for directory in (state_base / "crash", Path(tempfile.gettempdir())):
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, path = tempfile.mkstemp(prefix="labctl-crash-", suffix=".txt", dir=directory)
            with os.fdopen(fd, "w") as handle:
                handle.write(report)
            return f"details in {path}"
        except OSError as error:
            problems.append(f"{directory}: {error.strerror}")
    return "details not saved (" + "; ".join(problems) + ")"


def print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
