"""The cipher of a burst of ESP packets on two threads: one half overlaps the other.

Why: 3DES-CBC costs ~60 us to encrypt and ~27 us to decrypt a 1400-byte packet on the nodes
(OpenSSL through cryptography; libgcrypt through ctypes), the largest part of what a 3DES
agent spends per packet, and it is serial within one CBC chain. Every ESP packet starts a
chain of its own (a random lead block, its IV), so packets can go through the cipher side
by side with one CBC context each (``EspSa.lanes``). cryptography's cffi calls and ctypes
calls release the GIL, so a second thread runs the cipher of one half of a burst while the
calling thread does the other half: measured in the vpn image, sealing a burst of 32
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

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from labctl.esp.sa import EspSa

MIN_PARALLEL = 4  # packets in a burst before the second thread takes half ...
MIN_PARALLEL_BYTES = 4096  # ... and bytes: a burst of TCP ACKs is not worth a hand-off

Prepared = tuple[EspSa, int, bytes]  # (SA, sequence number, EspSa.prepare's plaintext)
Authenticated = tuple[EspSa, Any, int]  # (SA, ESP packet, EspSa.authenticate's body end)

_Job = tuple[Callable[[Any, int], list[Any]], Any]


def _encrypt(items: Sequence[Prepared], lane: int) -> list[bytearray]:
    return [sa.encrypt_prepared(seq, plain, lane) for sa, seq, plain in items]


def _decrypt(items: Sequence[Authenticated], lane: int) -> list[bytes]:
    return [sa.decrypt_authenticated(esp, body_end, lane) for sa, esp, body_end in items]


class TwoLanes:
    """Runs ``work(items, lane)`` over a burst: the first half on a worker thread (lane
    1), the rest on the calling thread (lane 0) -- or all of it on the calling thread
    (lane 0) when the burst is small or an SA has one lane."""

    __slots__ = ("_done", "_jobs", "_thread", "bursts")

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[list[Any] | BaseException] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.bursts = 0  # bursts run on two threads (status, tests)

    def seal(self, items: list[Prepared]) -> list[bytearray]:
        """ESP packets for what ``EspSa.prepare`` returned, in the same order."""
        if len(items) < MIN_PARALLEL or sum(len(i[2]) for i in items) < MIN_PARALLEL_BYTES:
            return _encrypt(items, 0)
        return self._run(_encrypt, items)

    def decrypt(self, items: list[Authenticated]) -> list[bytes]:
        """``EspSa.decrypt_authenticated`` of each authenticated packet, in order."""
        if len(items) < MIN_PARALLEL or sum(i[2] for i in items) < MIN_PARALLEL_BYTES:
            return _decrypt(items, 0)
        return self._run(_decrypt, items)

    def _run(self, work: Callable[[Any, int], list[Any]], items: list[Any]) -> list[Any]:
        if any(item[0].lanes < 2 for item in items):
            return work(items, 0)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="esp-lane", daemon=True)
            self._thread.start()
        half = len(items) // 2
        self._jobs.put((work, items[:half]))
        try:
            mine = work(items[half:], 0)
        finally:
            theirs = self._done.get()  # always collected, so the next burst gets its own
        if isinstance(theirs, BaseException):
            raise theirs
        self.bursts += 1
        theirs.extend(mine)
        return theirs

    def _work(self) -> None:
        jobs, done = self._jobs, self._done
        while True:
            job = jobs.get()
            if job is None:
                return
            work, items = job
            result: list[Any] | BaseException
            try:
                result = work(items, 1)
            except BaseException as exc:  # handed to the caller, which raises it
                result = exc
            done.put(result)

    def close(self) -> None:
        """Let the worker thread end (it is a daemon thread either way)."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None
