"""EventLoop: a reader and a writer on the same fd, added and removed independently."""

from __future__ import annotations

import socket

import pytest

from labctl.agent.loop import EventLoop


def test_reader_and_writer_share_an_fd() -> None:
    loop = EventLoop()
    a, b = socket.socketpair()
    a.setblocking(False)
    calls: list[str] = []
    try:
        loop.add_writer(a, lambda: (calls.append("w"), loop.remove_writer(a)))
        loop.add_reader(a, lambda: (calls.append("r"), a.recv(10)))
        with pytest.raises(KeyError, match="already has a reader"):
            loop.add_reader(a, lambda: None)
        loop.run(0.05)
        assert calls == ["w"]  # writable once, then the writer removed itself
        b.send(b"x")
        loop.run(0.05)
        assert calls == ["w", "r"]  # the reader is still registered
        loop.remove_reader(a)
        loop.remove_reader(a)  # idempotent
        loop.remove_writer(a)
        b.send(b"y")
        loop.run(0.05)
        assert calls == ["w", "r"]
        loop.add_writer(a, lambda: calls.append("w2"))  # fd fully unregistered: fresh start
        loop.run(0.02)
        assert calls[-1] == "w2"
    finally:
        loop.close()
        a.close()
        b.close()
