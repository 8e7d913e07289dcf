"""Management-plane sessions: paramiko with the lab key and pinned host keys."""

from __future__ import annotations

import io
import posixpath
import select
import socket
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import paramiko

from ..errors import LabctlError
from ..wiring.netns import socket_in_netns

SSH_PORT = 22


class QuietTransport(paramiko.Transport):
    """A paramiko transport whose thread wakes once a second, not ten times, when idle.

    paramiko reads with a socket timeout (0.1 s by default) only to notice that it was
    closed; `up` holds a session to every node while the push runs, so with 200 nodes
    that was 2,000 wake-ups a second, each taking the GIL from the push threads: labctl
    spent 31 CPU-s in the push stage of 197 clients (0.16 per client; 0.02 with 10).
    Closing does not wait for the wake-up (stop_thread returns once the packetizer is
    closed) and a peer's EOF or data ends the wait at once, so nothing gets slower."""

    _active_check_timeout = 1.0


class MgmtError(LabctlError):
    """A management-plane operation failed; the message names the node and what to check."""


@dataclass(frozen=True)
class CommandResult:
    node: str
    command: str
    exit_status: int
    stdout: str
    stderr: str

    def check(self) -> CommandResult:
        if self.exit_status != 0:
            detail = (self.stderr or self.stdout).strip().splitlines()
            last = detail[-1] if detail else "no output"
            raise MgmtError(f"{self.node}: '{self.command}' exited {self.exit_status}: {last}")
        return self


EOF_GRACE = 1.0  # seconds to wait for the end of output once the command has exited


# How long _drain sleeps at most between looks at a channel with nothing to read. Output,
# EOF and the exit status each wake it at once; the tick only bounds the deadline checks.
WAIT_TICK = 0.05


def _drain(channel, out, err, timeout: float | None, flush: bool = False) -> None:
    """Copy a channel's stdout/stderr until the remote end closed them AND reported an exit
    status. sshd may send the exit status before the last output (they travel separately),
    so stopping at the exit status alone loses the tail of the output.

    It sleeps on the channel (its fileno() pipe is readable when output arrives or EOF
    came; the status event is set when the exit status did), not in a 2 ms polling loop:
    `up`'s push waits on 8 commands at a time for seconds each, and that loop's CPU grew
    with the lab."""
    deadline = None if timeout is None else time.monotonic() + timeout
    exited_at = None
    while True:
        moved = False
        if channel.recv_ready():
            out.write(channel.recv(65536))
            moved = True
        if channel.recv_stderr_ready():
            err.write(channel.recv_stderr(65536))
            moved = True
        if moved:
            if flush:
                out.flush()
                err.flush()
            continue
        now = time.monotonic()
        if channel.exit_status_ready():
            if channel.eof_received or channel.closed:
                return
            # A background child may hold the output open for good: wait a moment, no more.
            exited_at = exited_at or now
            if now - exited_at > EOF_GRACE:
                return
        if deadline is not None and now > deadline:
            raise TimeoutError
        tick = WAIT_TICK if deadline is None else max(0.0, min(WAIT_TICK, deadline - now))
        if channel.eof_received and not channel.exit_status_ready():
            # all output is in (the pipe stays readable from now on): wait for the status
            channel.status_event.wait(tick)
        else:
            select.select([channel], [], [], tick)


def dial(address: IPv4Address, netns: str | None, timeout: float) -> socket.socket:
    """A TCP connection to the node's SSH port, from inside ``netns`` when given (the
    lab's fabric namespace: the only place its management addresses exist)."""
    if netns is None:
        return socket.create_connection((str(address), SSH_PORT), timeout=timeout)
    sock = socket_in_netns(netns)
    try:
        sock.settimeout(timeout)
        sock.connect((str(address), SSH_PORT))
    except BaseException:
        sock.close()
        raise
    return sock


_pinned_cache: dict[str, tuple[tuple[int, int], paramiko.HostKeys]] = {}
_pinned_lock = threading.Lock()


def _pin_for(client: paramiko.SSHClient, known_hosts: Path, address: str) -> None:
    """Give the client the pinned host key of `address` from the lab's known_hosts.

    The file is parsed once per version of it (size and mtime), not once per connection:
    with 200 nodes that was 200 parsed keys for each of 200 connections (12.5 ms each).
    Only the node's own entry goes to the client; an address without one is refused by
    the RejectPolicy, as before."""
    stat = known_hosts.stat()  # a missing file fails here, as load_host_keys did
    version = (stat.st_mtime_ns, stat.st_size)
    with _pinned_lock:
        cached = _pinned_cache.get(str(known_hosts))
        if cached is None or cached[0] != version:
            cached = (version, paramiko.HostKeys(str(known_hosts)))
            _pinned_cache[str(known_hosts)] = cached
    entry = cached[1].lookup(address)
    for keytype, key in (entry or {}).items():
        client.get_host_keys().add(address, keytype, key)


class NodeSession:
    """One SSH connection to one node; use as a context manager.

    ``netns``: the namespace the node's management address is reached from (the lab's
    fabric); None connects from labctl's own namespace."""

    def __init__(
        self,
        node: str,
        address: IPv4Address,
        key_file: Path,
        known_hosts: Path,
        netns: str | None = None,
    ):
        self.node = node
        self.address = address
        self._key_file = key_file
        self._known_hosts = known_hosts
        self._netns = netns
        self._client: paramiko.SSHClient | None = None

    def connect(self, timeout: float = 10.0) -> NodeSession:
        """Connect, retrying while the node's sshd is still starting."""
        deadline = time.monotonic() + timeout
        key = paramiko.Ed25519Key.from_private_key_file(str(self._key_file))
        last_error: Exception | None = None
        while True:
            client = paramiko.SSHClient()
            _pin_for(client, self._known_hosts, str(self.address))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                client.connect(
                    str(self.address),
                    sock=dial(self.address, self._netns, timeout=2.0),
                    username="root",
                    pkey=key,
                    allow_agent=False,
                    look_for_keys=False,
                    timeout=2.0,
                    banner_timeout=5.0,
                    auth_timeout=5.0,
                    transport_factory=QuietTransport,
                )
                self._client = client
                return self
            except FileNotFoundError:  # only the namespace can be missing here
                client.close()
                raise MgmtError(
                    f"{self.node}: the lab's management namespace {self._netns} is gone; "
                    "the lab is not whole ('labctl down' removes what is left)"
                ) from None
            except paramiko.BadHostKeyException:
                client.close()
                raise MgmtError(
                    f"{self.node}: host key at {self.address} does not match the key labctl "
                    "installed; refusing to connect"
                ) from None
            except (TimeoutError, OSError, paramiko.SSHException) as exc:
                client.close()
                last_error = exc
                if time.monotonic() >= deadline:
                    raise MgmtError(
                        f"{self.node}: no SSH at {self.address}:22 after {timeout:.0f}s "
                        f"({last_error}); see 'docker logs' of the node"
                    ) from None
                time.sleep(0.1)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> NodeSession:
        if self._client is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> CommandResult:
        """Run a command; return its exit status and output (no exception on failure)."""
        channel = self.client.get_transport().open_session(timeout=timeout)
        channel.settimeout(timeout)
        channel.exec_command(command)
        if stdin is not None:
            channel.sendall(stdin)
        channel.shutdown_write()
        stdout, stderr = io.BytesIO(), io.BytesIO()
        try:
            _drain(channel, stdout, stderr, timeout)
            status = channel.recv_exit_status()
        except TimeoutError:
            raise MgmtError(f"{self.node}: '{command}' did not finish in {timeout:.0f}s") from None
        finally:
            channel.close()
        return CommandResult(
            self.node,
            command,
            status,
            stdout.getvalue().decode(errors="replace"),
            stderr.getvalue().decode(errors="replace"),
        )

    def stream(self, command: str, out, err, get_pty: bool = False) -> int:
        """Run a command, copying its output to ``out``/``err`` as it comes; exit status."""
        channel = self.client.get_transport().open_session()
        if get_pty:
            channel.get_pty()
        channel.exec_command(command)
        channel.shutdown_write()
        _drain(channel, out, err, None, flush=True)
        return channel.recv_exit_status()

    def put_file(self, path: str, content: bytes, mode: int = 0o644) -> None:
        """Write a file atomically (temp name, then rename), created with its final mode."""
        sftp = self.client.open_sftp()
        try:
            directory = posixpath.dirname(path)
            self.run(f"mkdir -p {directory}").check()
            temporary = f"{path}.labctl-tmp"
            with sftp.open(temporary, "wb") as handle:
                handle.chmod(mode)
                handle.write(content)
            sftp.posix_rename(temporary, path)
        finally:
            sftp.close()
