"""IPsec over TCP: the connections that carry a session's IKE and ESP.

The VPN 3000 model (cTCP): a client in TCP mode opens ONE connection to the concentrator's
IPsec-over-TCP port and everything of that session rides it, from the first IKE message
on. The connection is the session: when it dies, the session ends. Records are Cisco's
cTCP records (labctl.esp.tcp_framing, with the sources), on a real TCP connection.

- ``StreamConnection``: one connected non-blocking socket. Reads are deframed into IKE
  (handed to ``on_ike``) and ESP (handed to ``on_esp``, normally the data plane's
  ``receive_stream_esp``). Each record goes to the kernel in one send with MSG_EOR (with
  TCP_NODELAY: one record per segment while the path keeps up, as cTCP peers expect);
  what the kernel does not take waits in a bounded queue of records, drained when the
  socket is writable; a new ESP packet that would push that queue past ``max_pending`` is
  dropped and counted, never a partly written record (that would corrupt the stream). A
  dead connection (EOF, reset, framing damage, send error) is closed once and reported
  through ``on_closed(conn, reason)``.
- ``TcpServer``: the concentrator's listening socket, many connections keyed by the
  client's (translated) address and port, each bound to the session negotiated on it
  (``conn.owner``, set by the agent once the session's tunnel is up). Guarded like the UDP
  side's half-open limit: at most ``max_pending_per_address`` connections without a
  session per source address; a connection without a session is closed after
  ``handshake_idle`` seconds without data or ``handshake_timeout`` seconds in all, one with
  a session after ``established_idle`` seconds without data (a VPN 3000's default idle
  timeout is 30 minutes; DPD keeps a live session busier than that); when the global
  limit is reached the oldest idle connection without a session makes room. Refusals,
  evictions and idle closes are counted in ``stats()``.
- ``TcpConnector``: the client's non-blocking connect with a deadline.

No NAT-keepalives are sent on TCP: the TCP session holds the PAT mapping, and DPD (plus
TCP keepalives) detects a dead peer. (IOS's cTCP has a keepalive of its own, ``crypto ctcp
keepalive``, default 5 s; its format is unknown, so we send none.)
"""

from __future__ import annotations

import errno
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from ..esp.encap import Kind
from ..esp.tcp_framing import ESP_TRAILER, TRAILER_LEN, StreamDeframer, frame_ike
from .lazylog import LazyLogger
from .loop import EventLoop, Timer
from .tunnel import Endpoint

log = LazyLogger(__name__)

# A client's tunnel MTU in TCP mode: the ESP of a 1300-byte packet plus the 16-byte trailer
# (at most ~1366 bytes) fits one segment of a 1500-byte path (1448 bytes with TCP
# timestamps), so every record can travel alone in its segment.
TCP_TUNNEL_MTU = 1300
DEFAULT_MAX_PENDING = 256 * 1024  # bytes queued in user space beyond the kernel's buffer
# One readable event handles at most READ_BUDGET x RECV_CHUNK bytes (~90 full records, like
# the UDP path's 64 datagrams): bigger batches starved the TUN and halved AES throughput.
RECV_CHUNK = 64 * 1024
READ_BUDGET = 2
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_MAX_PENDING_PER_ADDRESS = 64  # like the UDP side's half-open SAs per peer address
FIRST_RECORD_TIMEOUT = 30.0  # an accepted connection must carry IKE by then
HANDSHAKE_IDLE = 30.0  # no session yet and nothing received for this long: closed
HANDSHAKE_TIMEOUT = 120.0  # no session this long after connecting: closed
ESTABLISHED_IDLE = 1800.0  # a session's connection with nothing received for this long
SWEEP_INTERVAL = 1.0
CONNECT_TIMEOUT = 20.0
TCP_KEEPALIVE = (30, 10, 3)  # idle s, interval s, probes: a vanished peer's socket errors out

IkeHandler = Callable[[bytes, "StreamConnection"], None]
EspHandler = Callable[[bytes, "StreamConnection"], None]
ClosedHandler = Callable[["StreamConnection", str], None]


def tune_stream_socket(sock: socket.socket) -> None:
    """Non-blocking, no Nagle delay (each record goes out at once), TCP keepalives."""
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle, interval, count = TCP_KEEPALIVE
    for option, value in (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", count),
    ):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, "error")


class StreamConnection:
    """One framed TCP connection (either end). See the module docstring."""

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        *,
        accepted: bool,
        on_ike: IkeHandler,
        on_esp: EspHandler,
        on_closed: ClosedHandler,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self.peer: Endpoint = sock.getpeername()
        self.local: Endpoint = sock.getsockname()
        self.accepted = accepted
        self._on_ike = on_ike
        self._on_esp = on_esp
        self._on_closed = on_closed
        self.max_pending = max_pending
        self.deframer = StreamDeframer()
        self._pending: deque[bytes] = deque()  # whole records (the head may be a tail end)
        self._pending_bytes = 0
        self._eor: int = socket.MSG_EOR  # 0 if the kernel refuses it on TCP
        self._ike_seq = 0
        self._writer_armed = False
        self.closed = False
        self.close_reason: str | None = None
        self.opened_at = loop.time()
        self.last_rx: float | None = None
        self.bytes_rx = self.bytes_tx = 0
        self.ike_rx = self.ike_tx = self.esp_rx = self.esp_tx = 0
        self.partial_writes = 0
        self.drops: dict[str, int] = {}
        self.owner: Any = None  # what the agent bound to this connection (a session)
        loop.add_reader(sock, self._on_readable)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<StreamConnection {self.peer[0]}:{self.peer[1]} {state}>"

    # ------------------------------------------------------------------ sending
    def send_ike(self, message: bytes) -> bool:
        """One IKE message as a cTCP record (never dropped for backlog)."""
        self._ike_seq = self._ike_seq % 0xFFFF + 1
        record = frame_ike(message, seq=self._ike_seq, from_client=not self.accepted)
        ok = self._send_record(record)
        if ok:
            self.ike_tx += 1
        return ok

    def send_esp(self, esp: bytes | bytearray) -> str | None:
        """Hot path: send one ESP packet as a record; a drop reason, or None if sent/queued."""
        if self.closed:
            return "stream_closed"
        size = len(esp) + TRAILER_LEN
        if self._pending:
            if self._pending_bytes + size > self.max_pending:
                self._drop("stream_backlog")
                return "stream_backlog"
            self._pending.append(bytes(esp) + ESP_TRAILER)
            self._pending_bytes += size
            self.esp_tx += 1
            return None
        try:
            sent = self._sock.sendmsg((esp, ESP_TRAILER), (), self._eor)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP and self._eor:
                self._eor = 0  # a kernel without MSG_EOR on TCP: records may share segments
                return self.send_esp(esp)
            self.close(f"send failed: {exc.strerror or _errname(exc)}")
            return "stream_closed"
        self.bytes_tx += sent
        self.esp_tx += 1
        if sent < size:  # the kernel took part of it: the rest MUST follow, bound or not
            self._queue((bytes(esp) + ESP_TRAILER)[sent:])
        return None

    def _send_record(self, record: bytes) -> bool:
        if self.closed:
            self._drop("stream_closed")
            return False
        if self._pending:
            self._queue(record)
            return True
        try:
            sent = self._sock.send(record, self._eor)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if exc.errno == errno.EOPNOTSUPP and self._eor:
                self._eor = 0
                return self._send_record(record)
            self.close(f"send failed: {exc.strerror or _errname(exc)}")
            return False
        self.bytes_tx += sent
        if sent < len(record):
            self._queue(record[sent:])
        return True

    def _queue(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.partial_writes += 1
        if not self._writer_armed and not self.closed:
            self._loop.add_writer(self._sock, self._on_writable)
            self._writer_armed = True

    def _on_writable(self) -> None:
        pending = self._pending
        while pending and not self.closed:
            head = pending[0]
            try:
                sent = self._sock.send(head, self._eor)
            except BlockingIOError:
                return
            except OSError as exc:
                self.close(f"send failed: {exc.strerror or _errname(exc)}")
                return
            self.bytes_tx += sent
            self._pending_bytes -= sent
            if sent < len(head):
                pending[0] = head[sent:]
                return
            pending.popleft()
        if not pending and self._writer_armed:
            self._loop.remove_writer(self._sock)
            self._writer_armed = False

    @property
    def pending(self) -> int:
        """Bytes waiting in user space for the kernel to take them."""
        return self._pending_bytes

    # ------------------------------------------------------------------ receiving
    def _on_readable(self) -> None:
        recv = self._sock.recv
        feed = self.deframer.feed
        for _ in range(READ_BUDGET):
            if self.closed:
                return
            try:
                data = recv(RECV_CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                self.close(f"receive failed: {exc.strerror or _errname(exc)}")
                return
            if not data:
                self.close("closed by the peer")
                return
            self.bytes_rx += len(data)
            self.last_rx = self._loop.time()
            for kind, payload in feed(data):
                if kind is Kind.ESP:
                    self.esp_rx += 1
                    self._on_esp(payload, self)
                else:
                    self.ike_rx += 1
                    try:
                        self._on_ike(payload, self)
                    except Exception:
                        self._drop("ike_handler_error")
                        log.exception("IKE handler failed on a message from %s:%s", *self.peer)
                if self.closed:  # a handler ended the session
                    return
            if self.deframer.fatal is not None:
                self.close(f"framing error: {self.deframer.fatal}")
                return
            if len(data) < RECV_CHUNK:
                return  # drained

    # ------------------------------------------------------------------ lifecycle
    def close(self, reason: str) -> None:
        """Idempotent; reports ``on_closed`` once."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self._loop.remove_reader(self._sock)
        if self._writer_armed:
            self._loop.remove_writer(self._sock)
            self._writer_armed = False
        self._pending.clear()
        self._pending_bytes = 0
        try:
            self._sock.close()
        finally:
            try:
                self._on_closed(self, reason)
            except Exception:
                log.exception("close handler failed for %r", self)

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def stats(self) -> dict[str, Any]:
        return {
            "peer": {"ip": self.peer[0], "port": self.peer[1]},
            "local": {"ip": self.local[0], "port": self.local[1]},
            "side": "server" if self.accepted else "client",
            "closed": self.closed,
            "close_reason": self.close_reason,
            "opened_at": self.opened_at,
            "last_rx": self.last_rx,
            "bytes_rx": self.bytes_rx,
            "bytes_tx": self.bytes_tx,
            "ike_rx": self.ike_rx,
            "ike_tx": self.ike_tx,
            "esp_rx": self.esp_rx,
            "esp_tx": self.esp_tx,
            "pending": self._pending_bytes,
            "partial_writes": self.partial_writes,
            "drops": dict(self.drops),
            "framing": self.deframer.stats(),
        }


class TcpServer:
    """The concentrator's IPsec-over-TCP port: accepts clients, one connection each (see
    the module docstring for the limits that keep idle or hostile connections out)."""

    def __init__(
        self,
        loop: EventLoop,
        bind_ip: str,
        port: int,
        *,
        on_ike: IkeHandler,
        on_esp: EspHandler,
        on_closed: ClosedHandler,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_pending_per_address: int = DEFAULT_MAX_PENDING_PER_ADDRESS,
        first_record_timeout: float = FIRST_RECORD_TIMEOUT,
        handshake_idle: float = HANDSHAKE_IDLE,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        established_idle: float = ESTABLISHED_IDLE,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._loop = loop
        self._on_ike = on_ike
        self._on_esp = on_esp
        self._on_closed = on_closed
        self.max_connections = max_connections
        self.max_pending_per_address = max_pending_per_address
        self.first_record_timeout = first_record_timeout
        self.handshake_idle = handshake_idle
        self.handshake_timeout = handshake_timeout
        self.established_idle = established_idle
        self.max_pending = max_pending
        self.connections: dict[Endpoint, StreamConnection] = {}
        self.accepted = 0
        self.refused: dict[str, int] = {"per_address": 0, "full": 0}
        self.evicted = 0
        self.closed_reasons: dict[str, int] = {}
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((bind_ip, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"cannot listen on TCP {bind_ip}:{port} for IPsec: {exc.strerror}"
            ) from exc
        self._listener = sock
        self.address: Endpoint = sock.getsockname()
        loop.add_reader(sock, self._accept)
        shortest = min(first_record_timeout, handshake_idle, handshake_timeout, established_idle)
        self._sweeper = loop.call_every(min(SWEEP_INTERVAL, shortest / 4), self._sweep)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, source = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # e.g. EMFILE: keep serving the ones we have
                self._count_closed(f"accept_{_errname(exc).lower()}")
                return
            if not self._room_for(source[0]):
                sock.close()
                continue
            try:
                tune_stream_socket(sock)
                conn = StreamConnection(
                    self._loop,
                    sock,
                    accepted=True,
                    on_ike=self._on_ike,
                    on_esp=self._on_esp,
                    on_closed=self._closed,
                    max_pending=self.max_pending,
                )
            except OSError:  # the client already went away (getpeername fails)
                sock.close()
                continue
            self.accepted += 1
            self.connections[conn.peer] = conn

    def _room_for(self, address: str) -> bool:
        """Whether a new connection from ``address`` may stay; makes room if it can."""
        pending = sum(
            1 for c in self.connections.values() if c.owner is None and c.peer[0] == address
        )
        if pending >= self.max_pending_per_address:
            self.refused["per_address"] += 1
            return False
        if len(self.connections) < self.max_connections:
            return True
        idle = [c for c in self.connections.values() if c.owner is None]
        if not idle:  # every slot carries a session: those are never pushed out
            self.refused["full"] += 1
            return False
        oldest = min(idle, key=lambda c: c.last_rx or c.opened_at)
        self.evicted += 1
        oldest.close("evicted: connection limit reached, oldest idle one without a session")
        return True

    def _sweep(self) -> None:
        """Close connections that sat idle too long (see the module docstring)."""
        now = self._loop.time()
        for conn in list(self.connections.values()):
            quiet = now - (conn.last_rx if conn.last_rx is not None else conn.opened_at)
            if conn.owner is not None:
                if quiet >= self.established_idle:
                    conn.close(f"idle: nothing received for {quiet:.0f} s")
            elif conn.ike_rx == 0 and now - conn.opened_at >= self.first_record_timeout:
                conn.close(f"no IKE: none within {self.first_record_timeout:g} s of connecting")
            elif quiet >= self.handshake_idle:
                conn.close(
                    f"handshake idle: nothing received for {quiet:.0f} s before IKE completed"
                )
            elif now - conn.opened_at >= self.handshake_timeout:
                conn.close(
                    f"handshake timeout: IKE not completed within {self.handshake_timeout:g} s"
                )

    def _closed(self, conn: StreamConnection, reason: str) -> None:
        if self.connections.get(conn.peer) is conn:
            del self.connections[conn.peer]
        self._count_closed(reason.split(":")[0])
        self._on_closed(conn, reason)

    def _count_closed(self, key: str) -> None:
        self.closed_reasons[key] = self.closed_reasons.get(key, 0) + 1

    def bind(self, peer: Endpoint, owner: Any) -> bool:
        """The session negotiated on ``peer``'s connection is up: from now on the connection
        counts as established (never evicted; the long idle timeout applies)."""
        conn = self.connection(peer)
        if conn is None:
            return False
        conn.owner = owner
        return True

    def connection(self, peer: Endpoint) -> StreamConnection | None:
        conn = self.connections.get((peer[0], int(peer[1])))
        return None if conn is None or conn.closed else conn

    def send_ike(self, message: bytes, peer: Endpoint) -> bool:
        """IKE to the client at ``peer`` on its connection; False when there is none."""
        conn = self.connection(peer)
        return conn is not None and conn.send_ike(message)

    def close(self) -> None:
        self._sweeper.cancel()
        self._loop.remove_reader(self._listener)
        self._listener.close()
        for conn in list(self.connections.values()):
            conn.close("server shut down")

    def stats(self) -> dict[str, Any]:
        return {
            "listening": f"{self.address[0]}:{self.address[1]}",
            "accepted": self.accepted,
            "refused": sum(self.refused.values()),
            "refused_by_reason": dict(self.refused),
            "evicted": self.evicted,
            "closed": dict(self.closed_reasons),
            "connections": [c.stats() for c in self.connections.values()],
        }


class TcpConnector:
    """The client's non-blocking connect: ``on_connected(conn)`` once the connection is
    open, or ``on_failed(reason)``; ``cancel()`` abandons it."""

    def __init__(
        self,
        loop: EventLoop,
        remote: Endpoint,
        *,
        on_connected: Callable[[StreamConnection], None],
        on_failed: Callable[[str], None],
        on_ike: IkeHandler,
        on_esp: EspHandler,
        on_closed: ClosedHandler,
        timeout: float = CONNECT_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._loop = loop
        self.remote = remote
        self._on_connected = on_connected
        self._on_failed = on_failed
        self._handlers = (on_ike, on_esp, on_closed)
        self._max_pending = max_pending
        self.state = "connecting"  # -> connected | failed | cancelled
        self._where = f"{remote[0]}:{remote[1]}"
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._timer: Timer | None = None
        try:
            tune_stream_socket(self._sock)
            code = self._sock.connect_ex(remote)
        except OSError as exc:
            code = exc.errno or errno.EIO
        if code not in (0, errno.EINPROGRESS):
            name = errno.errorcode.get(code, str(code))
            # reported from the loop, never from inside the constructor
            self._timer = loop.call_later(0, self._fail, f"TCP connect to {self._where}: {name}")
            return
        self._timer = loop.call_later(
            timeout, self._fail, f"TCP connect to {self._where}: no answer within {timeout:.0f}s"
        )
        loop.add_writer(self._sock, self._on_writable)

    def _on_writable(self) -> None:
        if self.state != "connecting":
            return
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._fail(f"TCP connect to {self._where}: {errno.errorcode.get(code, code)}")
            return
        self._stop_waiting()
        on_ike, on_esp, on_closed = self._handlers
        try:
            conn = StreamConnection(
                self._loop,
                self._sock,
                accepted=False,
                on_ike=on_ike,
                on_esp=on_esp,
                on_closed=on_closed,
                max_pending=self._max_pending,
            )
        except OSError as exc:  # reset between connect and getpeername
            self.state = "failed"
            self._sock.close()
            self._on_failed(f"TCP connection to {self._where} lost at once: {exc.strerror}")
            return
        self.state = "connected"  # the connection owns the socket from here on
        self._on_connected(conn)

    def _stop_waiting(self) -> None:
        self._loop.remove_writer(self._sock)
        if self._timer is not None:
            self._timer.cancel()

    def _fail(self, reason: str) -> None:
        if self.state != "connecting":
            return
        self.state = "failed"
        self._stop_waiting()
        self._sock.close()
        self._on_failed(reason)

    def cancel(self) -> None:
        if self.state == "connecting":
            self.state = "cancelled"
            self._stop_waiting()
            self._sock.close()
