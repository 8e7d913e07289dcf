"""Single-threaded event loop: epoll (selectors) over file descriptors plus a timer heap.

Why not asyncio: the data plane's hot path is "fd readable -> drain it"; a plain selector
loop with direct callbacks has less per-event overhead than asyncio's protocol machinery,
and the IKE engine is sans-I/O anyway (it only needs "call me at time T" and "bytes in").

Time is ``time.monotonic()`` (injectable) and is passed into the sans-I/O engines; no
callback should read the wall clock for protocol decisions.

A callback that raises is logged and counted, and the loop carries on: one bad packet or
bug in one handler must not take the node's tunnels down.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

from .lazylog import LazyLogger

log = LazyLogger(__name__)


_READ, _WRITE = 0, 1  # slots in an fd's [reader, writer] handler list
_READ_EVENT, _WRITE_EVENT = selectors.EVENT_READ, selectors.EVENT_WRITE
_EVENTS = (_READ_EVENT, _WRITE_EVENT)


class HasFileno(Protocol):
    def fileno(self) -> int: ...


FileLike = int | HasFileno


class Timer:
    """Handle for a scheduled callback; ``cancel()`` is idempotent."""

    __slots__ = ("args", "callback", "cancelled", "interval", "when")

    def __init__(
        self,
        when: float,
        callback: Callable[..., Any],
        args: tuple[Any, ...],
        interval: float | None,
    ) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.interval = interval
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()  # tie-breaker: equal times run in scheduling order
        self._running = False
        self._signal_handlers: dict[int, Callable[[], None]] = {}
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self.callback_errors = 0

    # ------------------------------------------------------------------ time & timers
    def time(self) -> float:
        return self._clock()

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        timer = Timer(when, callback, args, None)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        return self.call_at(self._clock() + delay, callback, *args)

    def call_every(self, interval: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback`` every ``interval`` seconds (first run one interval from now)."""
        if interval <= 0:
            raise ValueError(f"timer interval must be positive, got {interval}")
        timer = Timer(self._clock() + interval, callback, args, interval)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    # ------------------------------------------------------------------ file descriptors
    # Each registered fd carries a [reader, writer] list; a writer is only wanted while a
    # stream socket has bytes the kernel would not take yet (see tcp_transport).
    def add_reader(self, fileobj: FileLike, callback: Callable[[], Any]) -> None:
        self._watch(fileobj, _READ, callback)

    def remove_reader(self, fileobj: FileLike) -> None:
        self._unwatch(fileobj, _READ)

    def add_writer(self, fileobj: FileLike, callback: Callable[[], Any]) -> None:
        self._watch(fileobj, _WRITE, callback)

    def remove_writer(self, fileobj: FileLike) -> None:
        self._unwatch(fileobj, _WRITE)

    def _watch(self, fileobj: FileLike, slot: int, callback: Callable[[], Any]) -> None:
        try:
            key = self._selector.get_key(fileobj)
        except KeyError:
            handlers: list[Callable[[], Any] | None] = [None, None]
            handlers[slot] = callback
            self._selector.register(fileobj, _EVENTS[slot], handlers)
            return
        handlers = key.data
        if handlers[slot] is not None:
            raise KeyError(f"{fileobj!r} already has a {('reader', 'writer')[slot]}")
        handlers[slot] = callback
        self._selector.modify(fileobj, key.events | _EVENTS[slot], handlers)

    def _unwatch(self, fileobj: FileLike, slot: int) -> None:
        try:
            key = self._selector.get_key(fileobj)
        except (KeyError, ValueError):
            return
        handlers = key.data
        handlers[slot] = None  # in place: a dispatch already under way sees it
        events = key.events & ~_EVENTS[slot]
        with contextlib.suppress(KeyError, ValueError):
            if events:
                self._selector.modify(fileobj, events, handlers)
            else:
                self._selector.unregister(fileobj)

    # ------------------------------------------------------------------ signals
    def add_signal_handler(self, signum: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` inside the loop when ``signum`` arrives (main thread only)."""
        if self._wake_r is None:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
            self.add_reader(self._wake_r, self._drain_signals)
        self._signal_handlers[signum] = callback
        # A Python-level handler is needed so the default action (terminate) does not run;
        # the C handler writes the signal number to the wakeup fd.
        signal.signal(signum, lambda *_: None)

    def _drain_signals(self) -> None:
        assert self._wake_r is not None
        try:
            data = self._wake_r.recv(512)
        except BlockingIOError:
            return
        for signum in data:
            handler = self._signal_handlers.get(signum)
            if handler is not None:
                self._guarded(handler, ())

    # ------------------------------------------------------------------ running
    def stop(self) -> None:
        """Make ``run()`` return after the current iteration."""
        self._running = False

    def run(self, duration: float | None = None) -> None:
        """Dispatch events until ``stop()`` (or for ``duration`` seconds)."""
        deadline = None if duration is None else self._clock() + duration
        self._running = True
        select = self._selector.select
        timers = self._timers
        guarded = self._guarded
        while self._running:
            now = self._clock()
            if deadline is not None and now >= deadline:
                break
            timeout: float | None = None
            if timers:
                timeout = max(0.0, timers[0][0] - now)
            if deadline is not None:
                timeout = deadline - now if timeout is None else min(timeout, deadline - now)
            for key, mask in select(timeout):
                handlers = key.data
                if mask & _READ_EVENT and handlers[0] is not None:
                    guarded(handlers[0], ())
                if mask & _WRITE_EVENT and handlers[1] is not None:
                    guarded(handlers[1], ())
            if timers:
                self._run_due_timers()

    def _run_due_timers(self) -> None:
        now = self._clock()
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            if timer.interval is not None:
                # Re-arm from the scheduled time, not "now", so periodic work does not drift;
                # after a long stall run once and resume from now instead of catching up.
                timer.when += timer.interval
                if timer.when <= now:
                    timer.when = now + timer.interval
                heapq.heappush(timers, (timer.when, next(self._order), timer))
            self._guarded(timer.callback, timer.args)

    def _guarded(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except Exception:
            self.callback_errors += 1
            log.exception("event loop callback %r failed; continuing", callback)

    def close(self) -> None:
        if self._wake_r is not None:
            signal.set_wakeup_fd(-1)
            self.remove_reader(self._wake_r)
            self._wake_r.close()
            assert self._wake_w is not None
            self._wake_w.close()
            self._wake_r = self._wake_w = None
        self._selector.close()
