"""`labctl capture LINK|NODE:IF`: a live pcap of a lab link, to a file or a pipe, with the
lab's IKE/ESP keys kept current in a Wireshark configuration folder (--keys)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ..checks.artifacts import (
    LinkCapture,
    capture_target,
    key_exporting_nodes,
    read_key_tables,
    write_wireshark_keys,
)
from ..lifecycle import LabHandle
from ..mgmt.ssh import MgmtError
from ..runtime import DockerRuntime
from .context import CliError, open_running_lab

KEY_REFRESH_SECONDS = 2.0


class _Stop(Exception):
    """SIGTERM/SIGHUP: end the capture the way Ctrl-C does."""


def run_capture(args) -> int:
    with open_running_lab(DockerRuntime(), args.lab) as handle:
        target = capture_target(handle.lab, args.target)
        if args.keys is not None and not key_exporting_nodes(handle.lab):
            raise CliError(
                f"lab {handle.lab.name}: no VPN node exports its keys; set the lab-only "
                "vpn.debug.export-keys: true on the concentrator (or a client) and push it",
                status=2,
            )
        if args.write == "-" and os.isatty(sys.stdout.fileno()):
            raise CliError(
                "will not write pcap to a terminal: use -w FILE, or pipe it "
                "(labctl capture ... | tshark -r -)",
                status=2,
            )
        keys = KeyWriter(handle, args.keys) if args.keys is not None else None
        if keys is not None:
            keys.refresh()  # SAs already up are decryptable from the first packet
        with _output(args.write) as out_fd:
            return _capture(handle, target, out_fd, args, keys)


@contextlib.contextmanager
def _output(path: str):
    if path == "-":
        yield sys.stdout.fileno()
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        yield fd
    finally:
        os.close(fd)


def _capture(handle: LabHandle, target, out_fd: int, args, keys: KeyWriter | None) -> int:
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    capture = LinkCapture(handle.lab.name, target, out_fd, args.count)
    # SIGINT too: started from a script's background job, a process inherits SIGINT ignored,
    # and `kill -INT` (or a test harness) would then never stop the capture.
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in stopping}
    try:
        capture.start()
        say(f"capturing {target.describe(handle.lab.name)}; Ctrl-C stops")
        if keys is not None:
            say(f"keys: {keys.directory} (WIRESHARK_CONFIG_DIR={keys.directory} tshark -r FILE)")
            keys.start()
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while capture.running():
            if deadline is not None and time.monotonic() >= deadline:
                break
            capture.wait(0.2)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        capture.stop()  # tcpdump flushes its last packets and exits; never left behind
        if keys is not None:
            keys.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if capture.summary():
        say(capture.summary())
    return 0


def _raise_stop(signum, frame) -> None:
    raise _Stop()


class KeyWriter:
    """Keeps the Wireshark key folder current while the capture runs: new IKE and ESP SAs
    (connects, rekeys) appear in it within KEY_REFRESH_SECONDS."""

    def __init__(self, handle: LabHandle, directory: Path):
        self.handle = handle
        self.directory = directory
        self._written: dict[str, str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        try:
            tables = read_key_tables(self.handle)
        except (MgmtError, OSError) as exc:
            raise CliError(f"reading the lab's keys failed: {exc}") from None
        if tables != self._written:
            write_wireshark_keys(self.directory, tables)
            self._written = tables

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(KEY_REFRESH_SECONDS):
            with contextlib.suppress(CliError):
                self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(CliError):
            self.refresh()  # the SAs of the capture's last seconds
