"""The agent's event log, in the spirit of the seed's VPN 3000 / VPN Client logs.

Lines look like ``12 2026-11-29 16:00:01.123 SEV=4 IKE/41 171.69.89.78 <text>``:
a running number, time, severity (1 fault .. 9 debug, as a VPN 3000 numbers them),
class/id and the peer. Secrets never reach this module: callers pass only public facts.

Three guarantees, all kept here so no caller has to remember them:

* one line per record: every character that is not printable (newlines, other controls,
  bidi overrides) is escaped as ``\\xNN`` / ``\\uNNNN`` and a backslash as ``\\\\``, so a
  peer-supplied string (group or user name, client version, vendor text) can never forge a
  record of its own;
* a flood cannot fill the log: lines given a ``limit`` key are rate-limited per (class,
  peer, key) -- the first of a window is written, the rest counted and summarised
  ("... 312 more like this in the last 10 s") -- and at most ``max_keys`` such keys may
  start in one window (the rest summarised in one line);
* the log is bounded: when the file the stream writes to passes ``max_bytes`` it is
  rotated (``vpn.log`` -> ``vpn.log.1`` ..., ``backups`` old files kept).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

LEVELS = {"error": 3, "warning": 4, "info": 5, "debug": 9}
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_BACKUPS = 1
LIMIT_WINDOW = 10.0  # seconds a rate-limit window lasts
LIMIT_MAX_KEYS = 50  # rate-limited keys that may start writing within one window


def escape(text: str) -> str:
    """``text`` on one line, every non-printable character spelled out."""
    text = text.replace("\\", "\\\\")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


@dataclass
class _Window:
    """One rate-limited key: when its window started, what it suppressed since."""

    started: float
    severity: int
    event_class: str
    peer: str
    what: str
    suppressed: int = 0


class EventLog:
    def __init__(
        self,
        stream: TextIO | None = None,
        level: str = "info",
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
        window: float = LIMIT_WINDOW,
        max_keys: int = LIMIT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream or sys.stderr
        self.threshold = LEVELS.get(level, 5)
        self.number = 0
        self.max_bytes = max_bytes
        self.backups = max(1, backups)
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._budget_started = clock()
        self._budget_used = 0
        self._overflow = 0
        self._overflow_peers: set[str] = set()
        self.suppressed = 0  # lines summarised instead of written, since start
        self.rotations = 0
        self._path = _file_path(self.stream)
        self._bytes = _size(self.stream) if self._path else 0

    def set_level(self, level: str) -> None:
        self.threshold = LEVELS.get(level, 5)

    # -- writing -------------------------------------------------------------------------------

    def log(
        self,
        severity: int,
        event_class: str,
        text: str,
        peer: str = "",
        *,
        limit: str | None = None,
    ) -> None:
        """Write one record; with ``limit``, at most one per window per (class, peer, limit)."""
        if severity > self.threshold:
            return
        if limit is not None and not self._admit(severity, event_class, peer, limit):
            return
        self._write(severity, event_class, text, peer)

    def _write(self, severity: int, event_class: str, text: str, peer: str) -> None:
        self.number += 1
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        millis = int((now % 1) * 1000)
        line = (
            f"{self.number} {stamp}.{millis:03d} SEV={severity} {escape(event_class)} "
            f"{escape(peer)} {escape(text)}"
        ).replace("  ", " ")
        print(line, file=self.stream, flush=True)
        if self._path is not None:
            self._bytes += len(line.encode("utf-8", "replace")) + 1
            if self._bytes > self.max_bytes:
                self._rotate()

    def info(self, event_class: str, text: str, peer: str = "", *, limit: str | None = None):
        self.log(5, event_class, text, peer, limit=limit)

    def warning(self, event_class: str, text: str, peer: str = "", *, limit: str | None = None):
        self.log(4, event_class, text, peer, limit=limit)

    def error(self, event_class: str, text: str, peer: str = "", *, limit: str | None = None):
        self.log(3, event_class, text, peer, limit=limit)

    def debug(self, event_class: str, text: str, peer: str = "", *, limit: str | None = None):
        self.log(9, event_class, text, peer, limit=limit)

    # -- rate limiting -------------------------------------------------------------------------

    def _admit(self, severity: int, event_class: str, peer: str, what: str) -> bool:
        now = self.clock()
        key = (event_class, peer, what)
        window = self._windows.get(key)
        if window is not None:
            if now - window.started < self.window:
                window.suppressed += 1
                self.suppressed += 1
                return False
            self._close(key, window)  # its window is over: summary, then a fresh one
        if now - self._budget_started >= self.window:
            self._close_budget(now)
        if self._budget_used >= self.max_keys:
            self._overflow += 1
            self.suppressed += 1
            if len(self._overflow_peers) < 10_000:
                self._overflow_peers.add(peer)
            return False
        self._budget_used += 1
        self._windows[key] = _Window(now, severity, event_class, peer, what)
        return True

    def flush(self) -> None:
        """Write the summaries of windows that are over (call it every second or so)."""
        now = self.clock()
        for key, window in list(self._windows.items()):
            if now - window.started >= self.window:
                self._close(key, window)
        if now - self._budget_started >= self.window:
            self._close_budget(now)

    def _close(self, key: tuple[str, str, str], window: _Window) -> None:
        del self._windows[key]
        if window.suppressed and window.severity <= self.threshold:
            self._write(
                window.severity,
                window.event_class,
                f"... {window.suppressed} more like this ({window.what}) "
                f"in the last {self.window:.0f} s",
                window.peer,
            )

    def _close_budget(self, now: float) -> None:
        if self._overflow:
            peers = len(self._overflow_peers)
            self._write(
                4,
                "LOG/1",
                f"... {self._overflow} more rate-limited events from {peers} peer(s) "
                f"suppressed in the last {self.window:.0f} s (too many distinct sources)",
                "",
            )
        self._budget_started = now
        self._budget_used = 0
        self._overflow = 0
        self._overflow_peers = set()

    # -- size bound ----------------------------------------------------------------------------

    def _rotate(self) -> None:
        """vpn.log -> vpn.log.1 (-> .2 ...), then a fresh vpn.log on the same descriptor
        (and on stderr too when it is the same file: tracebacks follow the log)."""
        path = self._path
        assert path is not None
        try:
            self.stream.flush()
            fd = self.stream.fileno()
            same_stderr = fd != 2 and _same_file(fd, 2)
            for i in range(self.backups - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{path}.{i}", f"{path}.{i + 1}")
            os.replace(path, f"{path}.1")
            fresh = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.dup2(fresh, fd)
                if same_stderr:
                    os.dup2(fresh, 2)
            finally:
                os.close(fresh)
        except OSError as exc:  # keep logging into the big file rather than not at all
            self._bytes = 0
            self._write(3, "LOG/3", f"log rotation failed: {exc.strerror or exc}", "")
            return
        self._bytes = 0
        self.rotations += 1
        self._write(5, "LOG/2", f"log rotated; older lines in {path}.1", "")


def _file_path(stream: TextIO) -> str | None:
    """The path of the regular file ``stream`` writes to, None when it is not one (a
    terminal, a pipe, a StringIO): only a file is rotated."""
    try:
        fd = stream.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        path = os.readlink(f"/proc/self/fd/{fd}")
    except (AttributeError, OSError, ValueError):
        return None
    if not path.startswith("/") or path.endswith(" (deleted)"):
        return None
    return path


def _size(stream: TextIO) -> int:
    try:
        return os.fstat(stream.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return 0


def _same_file(fd_a: int, fd_b: int) -> bool:
    try:
        a, b = os.fstat(fd_a), os.fstat(fd_b)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
