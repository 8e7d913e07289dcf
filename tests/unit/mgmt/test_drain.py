"""_drain sleeps on the channel instead of polling every 2 ms (issue 13: `up`'s push waits
on 8 commands at a time), and still collects every byte: output after the exit status,
an exit status after EOF, a command that never ends (timeout)."""

from __future__ import annotations

import io
import os
import threading
import time

import pytest

from labctl.mgmt.ssh import _drain


class FakeChannel:
    """The parts of a paramiko Channel _drain uses; fileno() is a real pipe that is
    readable while output is buffered or after EOF, as paramiko's is."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        self._lock = threading.Lock()
        self.stdout, self.stderr = bytearray(), bytearray()
        self.eof_received = self.closed = False
        self.status_event = threading.Event()
        self.looks = 0

    # the remote side
    def send(self, data: bytes = b"", error: bytes = b"") -> None:
        with self._lock:
            self.stdout += data
            self.stderr += error
            os.write(self._w, b"x")

    def eof(self) -> None:
        self.eof_received = True
        os.write(self._w, b"x")

    def exit(self) -> None:
        self.status_event.set()

    # what _drain calls
    def fileno(self) -> int:
        return self._r

    def recv_ready(self) -> bool:
        self.looks += 1
        return bool(self.stdout)

    def recv_stderr_ready(self) -> bool:
        return bool(self.stderr)

    def _take(self, buffer: bytearray) -> bytes:
        with self._lock:
            data = bytes(buffer)
            buffer.clear()
            if not self.stdout and not self.stderr and not self.eof_received:
                os.set_blocking(self._r, False)
                try:
                    while os.read(self._r, 4096):
                        pass
                except BlockingIOError:
                    pass
            return data

    def recv(self, size: int) -> bytes:
        return self._take(self.stdout)

    def recv_stderr(self, size: int) -> bytes:
        return self._take(self.stderr)

    def exit_status_ready(self) -> bool:
        return self.status_event.is_set()


def _later(delay: float, *steps) -> threading.Thread:
    def run() -> None:
        for step in steps:
            time.sleep(delay)
            step()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_slow_command_is_waited_for_without_polling() -> None:
    channel, out, err = FakeChannel(), io.BytesIO(), io.BytesIO()
    remote = _later(
        0.4,
        lambda: channel.send(b"started\n"),
        lambda: channel.send(error=b"warning\n"),
        lambda: (channel.exit(), channel.send(b"tail after the status\n"), channel.eof()),
    )
    started = time.monotonic()
    _drain(channel, out, err, timeout=10)
    took = time.monotonic() - started
    remote.join()
    assert out.getvalue() == b"started\ntail after the status\n"
    assert err.getvalue() == b"warning\n"
    assert 1.1 < took < 3.0  # (bounded loosely: a loaded machine delays threads)
    # 1.2 s of waiting: the old 2 ms loop looked ~600 times; ticks of 50 ms and wake-ups
    # on output make it a few dozen at most
    assert channel.looks < 60


def test_an_exit_status_after_eof_ends_the_wait_at_once() -> None:
    channel = FakeChannel()
    remote = _later(0.3, lambda: (channel.send(b"done\n"), channel.eof()), channel.exit)
    out = io.BytesIO()
    started = time.monotonic()
    _drain(channel, out, io.BytesIO(), timeout=10)
    remote.join()
    assert out.getvalue() == b"done\n" and time.monotonic() - started < 2.0
    assert channel.looks < 40  # the EOF pipe stays readable: no spinning on it


def test_a_command_that_never_ends_times_out() -> None:
    channel = FakeChannel()
    with pytest.raises(TimeoutError):
        _drain(channel, io.BytesIO(), io.BytesIO(), timeout=0.3)
    assert channel.looks < 20
