"""An in-memory network for engine tests and the benchmark: clients behind an optional PAT
(Linux-masquerade-like: keep the source port when free, else pick another), one responder,
virtual time, a capture of every datagram, and hooks to drop or tamper with packets."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from labctl.ike import Initiator, Output, Responder

Endpoint = tuple[str, int]


@dataclass
class Flight:
    data: bytes
    src: Endpoint
    dst: Endpoint
    marker: bool
    sender: str
    tcp: bool = False  # IPsec over TCP: carried by the session's connection


@dataclass
class Client:
    name: str
    engine: Initiator
    ip: str
    events: list = field(default_factory=list)


class Lab:
    def __init__(
        self,
        responder: Responder,
        *,
        server_ip: str = "172.16.172.50",
        public_ip: str = "171.69.89.78",
        nat: bool = True,
        hop_delay: float = 0.001,
    ) -> None:
        self.responder = responder
        self.server_ip = server_ip
        self.public_ip = public_ip
        self.nat = nat
        self.hop_delay = hop_delay
        self.clients: dict[str, Client] = {}
        self.queue: deque[Flight] = deque()
        self.now = 1000.0
        self.server_events: list = []
        self.capture: list[Flight] = []
        self.capture_times: list[float] = []
        self.drop: Callable[[Flight], bool] | None = None
        self._pat: dict[Endpoint, int] = {}
        self._pat_rev: dict[int, Endpoint] = {}
        self._next_port = 1025

    # -- topology ------------------------------------------------------------------------------

    def add_client(self, name: str, engine: Initiator, ip: str) -> Client:
        c = Client(name, engine, ip)
        self.clients[name] = c
        return c

    def _translate_out(self, src: Endpoint) -> Endpoint:
        if not self.nat:
            return src
        if src not in self._pat:
            port = src[1] if src[1] not in self._pat_rev else None
            if port is None:
                while self._next_port in self._pat_rev:
                    self._next_port += 1
                port = self._next_port
                self._next_port += 1
            self._pat[src] = port
            self._pat_rev[port] = src
        return (self.public_ip, self._pat[src])

    def _translate_in(self, dst: Endpoint) -> Endpoint | None:
        if not self.nat:
            return dst
        if dst[0] != self.public_ip:
            return None
        return self._pat_rev.get(dst[1])

    # -- driving -------------------------------------------------------------------------------

    def collect(self, sender: str, out: Output) -> Output:
        events = self.server_events if sender == "server" else self.clients[sender].events
        events.extend(out.events)
        for d in out.datagrams:
            on_4500 = d.local_port == 4500 and not d.tcp
            assert d.non_esp_marker == on_4500, "marker only (and always) on UDP 4500"
            src_ip = self.server_ip if sender == "server" else self.clients[sender].ip
            self.queue.append(
                Flight(d.data, (src_ip, d.local_port), d.remote, d.non_esp_marker, sender, d.tcp)
            )
        return out

    def start(self, name: str, local_port: int = 500, remote_port: int = 500) -> None:
        c = self.clients[name]
        remote = (self.server_ip, remote_port)
        self.collect(name, c.engine.start(self.now, (c.ip, local_port), remote))

    def inject(self, flight: Flight) -> None:
        self.queue.append(flight)

    def _deliver(self, f: Flight) -> None:
        self.capture.append(f)
        self.capture_times.append(self.now)
        if f.dst[0] == self.server_ip:
            remote = self._translate_out(f.src)
            out = self.responder.receive(f.data, remote, f.dst, self.now, tcp=f.tcp)
            self.collect("server", out)
            return
        real = self._translate_in(f.dst)
        if real is None:
            return
        for c in self.clients.values():
            if c.ip == real[0]:
                self.collect(c.name, c.engine.receive(f.data, f.src, real, self.now, tcp=f.tcp))
                return

    def step(self) -> bool:
        if not self.queue:
            return False
        f = self.queue.popleft()
        self.now += self.hop_delay
        if self.drop is not None and self.drop(f):
            return True
        self._deliver(f)
        return True

    def deadlines(self) -> list[tuple[float, str]]:
        out = []
        d = self.responder.next_deadline()
        if d is not None:
            out.append((d, "server"))
        for c in self.clients.values():
            d = c.engine.next_deadline()
            if d is not None:
                out.append((d, c.name))
        return out

    def run(self, duration: float = 5.0) -> None:
        """Deliver packets; when idle, jump virtual time to the next timer, up to duration."""
        end = self.now + duration
        while True:
            if self.step():
                continue
            pending = [d for d in self.deadlines() if d[0] <= end]
            if not pending:
                self.now = max(self.now, end)
                return
            self.now = max(self.now, min(d for d, _ in pending))
            self.tick_all()

    def tick_all(self) -> None:
        self.collect("server", self.responder.tick(self.now))
        for c in self.clients.values():
            self.collect(c.name, c.engine.tick(self.now))

    def advance(self, seconds: float) -> None:
        self.run(seconds)

    def wire_view(self) -> list[tuple[float, Flight]]:
        """Captured datagrams as seen on the concentrator's side of the PAT."""
        out = []
        for t, f in zip(self.capture_times, self.capture, strict=True):
            if f.sender == "server" or f.dst[0] != self.server_ip:
                out.append((t, f))
            else:
                seen = Flight(f.data, self._translate_out(f.src), f.dst, f.marker, f.sender)
                out.append((t, seen))
        return out

    def events_of(self, who: str, cls: type) -> list:
        events = self.server_events if who == "server" else self.clients[who].events
        return [e for e in events if isinstance(e, cls)]
