"""Event loop, MSS clamping and the prefix table (the data plane's building blocks)."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from labctl.agent.loop import EventLoop
from labctl.agent.mss import clamp_mss
from labctl.agent.prefix_table import PrefixTable
from tests.unit.esp.esp_helpers import icmp_echo, tcp_checksum_ok, tcp_syn


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timers_run_in_order_and_cancel() -> None:
    loop = EventLoop()
    ran: list[str] = []
    loop.call_later(0.03, ran.append, "c")
    loop.call_later(0.01, ran.append, "a")
    loop.call_later(0.01, ran.append, "b")  # same time: scheduling order
    loop.call_later(0.02, ran.append, "x").cancel()
    loop.call_later(0.04, loop.stop)
    loop.run(2)
    assert ran == ["a", "b", "c"]
    loop.close()


def test_periodic_timer_and_injected_clock() -> None:
    clock = FakeClock()
    loop = EventLoop(clock=clock)
    ticks: list[float] = []
    timer = loop.call_every(1.0, lambda: ticks.append(clock.now))
    for _ in range(5):
        clock.now += 1.0
        loop._run_due_timers()
    assert ticks == [101.0, 102.0, 103.0, 104.0, 105.0]
    clock.now += 10  # a long stall runs the timer once, not ten times
    loop._run_due_timers()
    assert len(ticks) == 6
    timer.cancel()
    with pytest.raises(ValueError):
        loop.call_every(0, lambda: None)
    loop.close()


def test_failing_callbacks_do_not_stop_the_loop() -> None:
    loop = EventLoop()
    r, w = socket.socketpair()
    r.setblocking(False)
    got: list[bytes] = []

    def reader() -> None:
        data = r.recv(100)
        got.append(data)
        raise RuntimeError("handler bug")

    loop.add_reader(r, reader)
    loop.call_later(0.0, lambda: 1 / 0)
    w.send(b"one")
    loop.run(0.1)
    w.send(b"two")
    loop.run(0.1)
    assert got == [b"one", b"two"]
    assert loop.callback_errors == 3
    loop.remove_reader(r)
    loop.remove_reader(r)  # idempotent
    r.close()
    w.close()
    loop.close()


def test_signal_handler_runs_inside_the_loop() -> None:
    loop = EventLoop()
    seen: list[str] = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (seen.append("usr1"), loop.stop()))
    loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
    loop.run(2)
    assert seen == ["usr1"]
    loop.close()
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)


def test_mss_clamp() -> None:
    syn = tcp_syn("10.0.0.1", "10.0.0.2", mss=1460)
    clamped = clamp_mss(syn, 1360)
    assert clamped is not syn
    assert int.from_bytes(clamped[42:44], "big") == 1360
    assert tcp_checksum_ok(clamped) and tcp_checksum_ok(syn)
    assert clamped[:40] == syn[:36] + clamped[36:40]  # only checksum and MSS bytes changed
    small = tcp_syn("10.0.0.1", "10.0.0.2", mss=1200)
    assert clamp_mss(small, 1360) is small
    icmp = icmp_echo("10.0.0.1", "10.0.0.2", 1)
    assert clamp_mss(icmp, 1360) is icmp
    ack = bytearray(syn)
    ack[33] = 0x10  # ACK, no SYN
    assert clamp_mss(ack, 1360) is ack
    fragment = bytearray(syn)
    fragment[6:8] = b"\x20\x10"  # MF + offset: not a first fragment
    assert clamp_mss(fragment, 1360) is fragment
    broken = bytearray(syn)
    broken[41] = 40  # option length runs past the header: left alone
    assert clamp_mss(broken, 1360) is broken
    for n in range(len(syn)):
        clamp_mss(syn[:n], 1360)  # truncated input never raises


def test_prefix_table_longest_match_and_cache() -> None:
    table: PrefixTable[str] = PrefixTable()
    table.add("0.0.0.0/0", "default")
    table.add("192.168.0.0/16", "wide")
    table.add("192.168.2.0/24", "lan")
    table.add("40.1.1.1/32", "client1")
    ip = socket.inet_aton
    assert table.lookup(ip("192.168.2.10")) == "lan"
    assert table.lookup(ip("192.168.9.1")) == "wide"
    assert table.lookup(ip("40.1.1.1")) == "client1"
    assert table.lookup(ip("40.1.1.2")) == "default"
    table.remove("192.168.2.0/24")  # cache must not keep the stale answer
    assert table.lookup(ip("192.168.2.10")) == "wide"
    table.remove_owner("default")
    assert table.lookup(ip("40.1.1.2")) is None
    with pytest.raises(ValueError, match="already belongs"):
        table.add("40.1.1.1/32", "client2")
    assert sorted(str(n) for n, _ in table.routes()) == ["192.168.0.0/16", "40.1.1.1/32"]
