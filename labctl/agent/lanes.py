"""The cipher of a burst of ESP packets on two threads at once.

Why: 3DES-CBC costs ~60 us to encrypt and ~27 us to decrypt a 1400-byte packet on the nodes
(OpenSSL through cryptography; libgcrypt through ctypes), the largest part of what a 3DES
agent spends per packet, and it is serial within one CBC chain. Every ESP packet starts a
chain of its own (a random lead block, its IV), so packets can go through the cipher side
by side with one CBC context each (``EspSa.lanes``). cryptography's cffi calls and ctypes
calls release the GIL, so a second thread runs the cipher of some packets of a burst while
the calling thread does the others: measured in the vpn image, sealing a burst of 32
packets took 53 -> 36 us of wall time per packet with a core free, the same CPU per packet.

Only bursts are worth it: handing work to the thread and waiting for it costs a few tens
of microseconds (two futex wake-ups), so fewer than ``MIN_PARALLEL`` packets or
``MIN_PARALLEL_BYTES`` (a burst of TCP ACKs) stay on the calling thread. Everything with
an order -- sequence numbers, counters, random lead blocks, the replay window, ICV
checks, padding checks, writes -- stays on the calling thread; the worker only runs the
cipher (and the outbound HMAC) and results come back in the order given, so the wire is
what serial sealing makes and drops are counted as before.

The worker thread starts with the first parallel burst (after an agent daemonized) and is
a daemon thread: it keeps no state between bursts.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from labctl.esp.sa import EspSa

MIN_PARALLEL = 4  # packets in a burst before the second thread is asked to help ...
MIN_PARALLEL_BYTES = 4096  # ... and bytes: a burst of TCP ACKs is not worth a hand-off

Prepared = tuple[EspSa, int, bytes]  # (SA, sequence number, EspSa.prepare's plaintext)
Authenticated = tuple[EspSa, Any, int]  # (SA, ESP packet, EspSa.authenticate's body end)


def _encrypt(items: Sequence[Prepared], lane: int) -> list[bytearray]:
    return [sa.encrypt_prepared(seq, plain, lane) for sa, seq, plain in items]


def _decrypt(items: Sequence[Authenticated], lane: int) -> list[bytes]:
    return [sa.decrypt_authenticated(esp, body_end, lane) for sa, esp, body_end in items]


def _encrypt_one(item: Prepared, lane: int) -> bytearray:
    return item[0].encrypt_prepared(item[1], item[2], lane)


def _decrypt_one(item: Authenticated, lane: int) -> bytes:
    return item[0].decrypt_authenticated(item[1], item[2], lane)


class _Burst:
    """One burst shared by both threads: each takes the next packet from ``claim`` until
    none is left, so the calling thread never waits for a worker that has not started."""

    __slots__ = ("claim", "error", "items", "one", "results")

    def __init__(self, one: Callable[[Any, int], Any], items: list[Any]) -> None:
        self.one = one
        self.items = items
        self.results: list[Any] = [None] * len(items)
        self.claim = itertools.count().__next__  # atomic under the GIL
        self.error: BaseException | None = None

    def drain(self, lane: int) -> int:
        """Work until no packet is left; returns how many this thread did."""
        claim, items, results, one = self.claim, self.items, self.results, self.one
        count, done = len(items), 0
        while (index := claim()) < count:
            results[index] = one(items[index], lane)
            done += 1
        return done


class TwoLanes:
    """Runs the cipher over a burst on the calling thread (lane 0) and a worker thread
    (lane 1), each taking the next packet until none is left -- or all of it on the
    calling thread when the burst is small or an SA has one lane. The calling thread
    waits only for a packet the worker is on: under CPU contention the worker may wake
    late, and the burst must not wait for a thread that has not started."""

    __slots__ = ("_done", "_jobs", "_thread", "bursts", "helped")

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Burst | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[_Burst] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.bursts = 0  # bursts offered to the second thread (status, tests)
        self.helped = 0  # packets the second thread did

    def seal(self, items: list[Prepared]) -> list[bytearray]:
        """ESP packets for what ``EspSa.prepare`` returned, in the same order."""
        if len(items) < MIN_PARALLEL or sum(len(i[2]) for i in items) < MIN_PARALLEL_BYTES:
            return _encrypt(items, 0)
        return self._run(_encrypt_one, items)

    def decrypt(self, items: list[Authenticated]) -> list[bytes]:
        """``EspSa.decrypt_authenticated`` of each authenticated packet, in order."""
        if len(items) < MIN_PARALLEL or sum(i[2] for i in items) < MIN_PARALLEL_BYTES:
            return _decrypt(items, 0)
        return self._run(_decrypt_one, items)

    def _run(self, one: Callable[[Any, int], Any], items: list[Any]) -> list[Any]:
        if any(item[0].lanes < 2 for item in items):
            return [one(item, 0) for item in items]
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="esp-lane", daemon=True)
            self._thread.start()
        burst = _Burst(one, items)
        self._jobs.put(burst)
        self.bursts += 1
        burst.drain(0)
        results = burst.results
        if None in results:  # the worker is on a packet (or failed): wait for it
            while self._done.get() is not burst:
                pass  # a token of an earlier burst the worker was too late for
            if burst.error is not None:
                raise burst.error
        return results

    def _work(self) -> None:
        jobs, done = self._jobs, self._done
        while True:
            burst = jobs.get()
            if burst is None:
                return
            try:
                self.helped += burst.drain(1)
            except BaseException as exc:  # handed to the caller, which raises it
                burst.error = exc
            done.put(burst)

    def close(self) -> None:
        """Let the worker thread end (it is a daemon thread either way)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None
