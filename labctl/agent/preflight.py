"""`vpn service check FILE`: could the agent run with these settings?

Parses the file as the daemon would, parses every proposal (the daemon only does that when
it builds its policy), and probes every socket the settings need that the running agent
does not hold already: a public address the node does not have, or a port another program
holds, is refused before labctl installs the file. Nothing is changed.
"""

from __future__ import annotations

import errno
import socket

from .settings import Listener, SettingsError, check_proposals, listeners, load_settings


class PreflightError(Exception):
    """The settings cannot be used; the message names the file and the problem."""


def check_settings_file(path: str, held: set[tuple[str, str, int]]) -> str:
    """A one-line summary when the agent could run with `path`, else PreflightError.
    `held`: the (protocol, address, port) sockets the running agent has open."""
    try:
        settings = load_settings(path)  # its errors name the file already
    except SettingsError as exc:
        raise PreflightError(str(exc)) from None
    try:
        check_proposals(settings)
    except SettingsError as exc:
        raise PreflightError(f"{path}: {exc}") from None
    wanted = listeners(settings)
    for listener in wanted:
        if listener.key not in held:
            problem = _probe(listener)
            if problem:
                raise PreflightError(f"{path}: {problem}")
    sockets = ", ".join(f"{w.protocol.upper()} {w.address}:{w.port}" for w in wanted)
    return f"{path}: ok ({type(settings).__name__}; {sockets})"


def _probe(listener: Listener) -> str | None:
    kind = socket.SOCK_DGRAM if listener.protocol == "udp" else socket.SOCK_STREAM
    where = f"{listener.protocol.upper()} {listener.address}:{listener.port}"
    with socket.socket(socket.AF_INET, kind) as sock:
        if listener.protocol == "tcp":  # as the agent's listener: TIME_WAIT is no conflict
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listener.address, listener.port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return (
                    f"{listener.purpose}: cannot bind {where}: "
                    f"{listener.address} is not an address of this node"
                )
            if exc.errno == errno.EADDRINUSE:
                return f"{listener.purpose}: {where} is in use by another program"
            return f"{listener.purpose}: cannot bind {where}: {exc.strerror}"
    return None
