"""The `vpn-fleet` agent: N simulated VPN clients in one process, one event loop.

Each member (fleet_member.FleetMember) is a full client: its own address (a /32 alias
this agent adds on the fleet's interface), its own UDP 500/4500 sockets, IKE SA, XAUTH
user, Mode-Config address and ESP SAs in its own in-process data plane. The fleet adds
what only a crowd has: a connect storm paced at ``connect_rate`` members per second, one
status row per member, connect-time percentiles, and pings in waves from every member's
pool address (fleet_ping).
"""

from __future__ import annotations

import os
import resource
import time
from functools import partial
from ipaddress import IPv4Address

from .control import ControlError
from .dataplane import ReceiveBuffers
from .eventlog import EventLog
from .fleet_member import FleetMember
from .fleet_ping import PingRun, chunks, echo_request, parse_echo_reply, percentile
from .fleet_settings import FleetSettings
from .loop import EventLoop, Timer
from .tun import run_ip_batch

STORM_TICK = 0.02  # seconds between the storm's batches of connects
PING_BATCH = 50  # echoes written per batch; batches 20 ms apart (a TUN queue is ~500)
PING_BATCH_GAP = 0.02
REPLY_WAIT = 3.0  # seconds after the last wave for late replies
FDS_PER_MEMBER = 4  # UDP 500, UDP 4500, the packet device's two ends


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class FleetAgent:
    def __init__(self, settings: FleetSettings, loop: EventLoop, log: EventLog) -> None:
        self.settings = settings
        self.loop = loop
        self.log = log
        started = time.monotonic()
        members = settings.members()
        _raise_fd_limit(len(members) * FDS_PER_MEMBER + 256)
        # One `ip` process for every alias: the members bind their sockets to them.
        run_ip_batch(
            [["addr", "replace", f"{m.address}/32", "dev", settings.interface] for m in members]
        )
        buffers = ReceiveBuffers()  # one pair for all: members never run at the same time
        self.members = [
            FleetMember(m, settings.member_settings(m), loop, log, buffers) for m in members
        ]
        for member in self.members:
            member.allow_reconnect = settings.reconnect
            member.requeue = self._requeue
            loop.add_reader(member.device.outer, partial(self._on_device, member))
        self.by_number = {m.member.number: m for m in self.members}
        loop.call_every(1.0, self._tick)
        self.storm: Timer | None = None
        self.storm_queue: list[FleetMember] = []
        self.storm_started: float | None = None
        self.storm_budget = 0.0
        self.in_flight: set[FleetMember] = set()
        self.ping_run: PingRun | None = None
        self.setup_seconds = round(time.monotonic() - started, 2)  # aliases, sockets, engines
        self.log.info(
            "FLEET/1",
            f"{len(self.members)} simulated clients on {settings.interface} from "
            f"{members[0].address}, connect rate {settings.connect_rate:g}/s "
            f"(set up in {self.setup_seconds} s)",
        )

    def _tick(self) -> None:
        self.log.flush()
        for member in self.members:
            member._note_volume()

    # --- connect storm ------------------------------------------------------------------------
    def connect(self) -> str:
        """Connect every member that is not connected, ``connect_rate`` per second."""
        self.storm_queue = [
            m for m in self.members if m.status.state not in ("connecting", "connected")
        ]
        for member in self.storm_queue:
            member.want_connected = True
        if self.storm is None and self.storm_queue:
            self.storm_started = self.loop.time()
            self.storm_budget = 1.0
            self.storm = self.loop.call_every(STORM_TICK, self._storm_step)
            self._storm_step()
        return "connecting"

    def _requeue(self, member: FleetMember) -> None:
        """A member's reconnect joins the storm: same pace, same window."""
        if member not in self.storm_queue:
            self.storm_queue.append(member)
        if self.storm is None:
            self.storm_started = self.loop.time()
            self.storm = self.loop.call_every(STORM_TICK, self._storm_step)

    def _storm_step(self) -> None:
        # At most max_connecting half-way through their exchanges: on a busy machine a
        # faster pace only queues requests until the clients retransmit them (a storm).
        self.in_flight = {m for m in self.in_flight if m.status.state == "connecting"}
        room = self.settings.max_connecting - len(self.in_flight)
        self.storm_budget = min(
            self.storm_budget + self.settings.connect_rate * STORM_TICK,
            max(1.0, self.settings.connect_rate * STORM_TICK),
        )
        while self.storm_queue and self.storm_budget >= 1.0 and room > 0:
            self.storm_budget -= 1.0
            member = self.storm_queue.pop(0)
            if member.want_connected:
                member.connect()
                self.in_flight.add(member)
                room -= 1
        if not self.storm_queue and self.storm is not None:
            self.storm.cancel()
            self.storm = None

    def disconnect(self) -> str:
        self.storm_queue = []
        for member in self.members:
            member.disconnect()
        return "disconnected"

    # --- traffic ------------------------------------------------------------------------------
    def ping(self, to: str, waves: int, interval: float) -> dict:
        try:
            to = str(IPv4Address(to))
        except ValueError:
            raise ControlError(f"ping: {to!r} is not an IPv4 address") from None
        if not 1 <= waves <= 1000 or not 0 < interval <= 60:
            raise ControlError("ping: waves 1-1000, interval above 0 and at most 60 s")
        if self.ping_run is not None and self.ping_run.finished_at is None:
            return self.ping_run.result()
        run = PingRun(to, waves, interval, self.loop.time())
        self.ping_run = run
        for wave in range(waves):
            self.loop.call_later(wave * interval, self._send_wave, run, wave)
        return run.result()

    def _send_wave(self, run: PingRun, wave: int) -> None:
        members = [m for m in self.members if m.status.state == "connected"]
        for index, batch in enumerate(chunks(members, PING_BATCH)):
            self.loop.call_later(index * PING_BATCH_GAP, self._send_batch, run, wave, batch)
        last = len(members) // PING_BATCH * PING_BATCH_GAP
        if wave == run.waves - 1:
            self.loop.call_later(last + REPLY_WAIT, self._finish, run)

    def _send_batch(self, run: PingRun, wave: int, batch: list[FleetMember]) -> None:
        now = self.loop.time()
        for member in batch:
            source = member.status.assigned_ip
            if source is None or member.status.state != "connected":
                continue
            ident = member.member.number & 0xFFFF
            run.names[ident] = member.member.name
            run.sent[(ident, wave)] = now
            member.pings_sent += 1
            try:  # a full device queue loses the echo: it counts as sent and unanswered
                member.device.outer.send(echo_request(source, run.to, ident, wave))
            except OSError:
                self.log.warning("FLEET/4", f"{member.member.name}: echo not queued", limit="q")
        if wave + 1 > run.waves_sent:
            run.waves_sent = wave + 1

    def _finish(self, run: PingRun) -> None:
        run.finished_at = self.loop.time()
        result = run.result()
        self.log.info(
            "FLEET/3",
            f"ping {run.to}: {result['sent']} sent, {result['received']} answered, "
            f"{result['lost']} lost",
        )

    def _on_device(self, member: FleetMember) -> None:
        """Inner packets the member's data plane decrypted: echo replies are counted."""
        now = self.loop.time()
        for _ in range(64):
            try:
                packet = member.device.outer.recv(65535)
            except BlockingIOError:
                return
            reply = parse_echo_reply(packet)
            run = self.ping_run
            if reply is not None and run is not None and run.reply(*reply, now):
                member.pings_received += 1

    # --- status -------------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        return [m.row() for m in self.members]

    def summary(self) -> dict:
        states: dict[str, int] = {}
        for member in self.members:
            states[member.status.state] = states.get(member.status.state, 0) + 1
        times = sorted(m.connect_seconds for m in self.members if m.connect_seconds is not None)
        ended = [
            m.connect_started + m.connect_seconds
            for m in self.members
            if m.connect_seconds is not None and m.connect_started is not None
        ]
        rss = _rss_kib()
        cpu = os.times()
        failed = [m for m in self.members if m.status.state == "failed"]
        return {
            "node": self.settings.node,
            "members": len(self.members),
            "connected": states.get("connected", 0),
            "connecting": states.get("connecting", 0),
            "failed": states.get("failed", 0),
            "disconnected": states.get("disconnected", 0),
            "failures": sorted({m.status.last_error or "?" for m in failed}),
            "connect_rate": self.settings.connect_rate,
            "max_connecting": self.settings.max_connecting,
            "connect_p50": _round(percentile(times, 50)),
            "connect_p99": _round(percentile(times, 99)),
            "connect_max": _round(times[-1] if times else None),
            "storm_seconds": _round(
                max(ended) - self.storm_started if ended and self.storm_started else None
            ),
            "ike_retransmits": sum(m.ike_retransmits for m in self.members),
            "setup_seconds": self.setup_seconds,
            "rss_kib": rss,
            "rss_per_member_kib": round(rss / max(1, len(self.members)), 1),
            "cpu_seconds": round(cpu.user + cpu.system, 2),
            "ping": self.ping_run.result() if self.ping_run else None,
            "time": time.time(),
        }

    def stats(self) -> dict:
        summary = self.summary()
        return {
            "fleet": summary,
            "drops": {},
            "log": {"suppressed": self.log.suppressed, "rotations": self.log.rotations},
        }

    def reload(self, settings: FleetSettings) -> str:
        """The pace and the reconnect switch apply live; anything else needs a restart."""
        old = self.settings
        if (settings.client, settings.first_address, settings.interface) != (
            old.client,
            old.first_address,
            old.interface,
        ):
            return "restart"
        self.settings = settings
        for member in self.members:
            member.allow_reconnect = settings.reconnect
        self.log.info("CONFIG/1", "configuration reloaded (connect rate, reconnect)")
        return "reloaded"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def render_summary(summary: dict) -> str:
    """`vpn fleet` / `labctl show NODE fleet`: the crowd in a few lines."""
    lines = [
        f"Fleet {summary['node']}: {summary['members']} simulated clients -- "
        f"{summary['connected']} connected, {summary['connecting']} connecting, "
        f"{summary['failed']} failed, {summary['disconnected']} disconnected",
        f"Connect storm at {summary['connect_rate']:g}/s (at most "
        f"{summary['max_connecting']} at once): p50 {summary['connect_p50']} s, "
        f"p99 {summary['connect_p99']} s, max {summary['connect_max']} s, "
        f"all up after {summary['storm_seconds']} s; IKE retransmissions "
        f"{summary['ike_retransmits']}",
        f"Agent: {summary['rss_kib'] / 1024:.1f} MiB resident "
        f"({summary['rss_per_member_kib']:.0f} KiB per client), "
        f"{summary['cpu_seconds']} CPU-s",
    ]
    for reason in summary["failures"]:
        lines.append(f"Failed: {reason}")
    ping = summary.get("ping")
    if ping:
        lines.append(
            f"Ping {ping['to']} ({ping['state']}, {ping['waves_sent']}/{ping['waves']} waves): "
            f"{ping['sent']} sent, {ping['received']} answered, {ping['lost']} lost; "
            f"rtt p50 {ping['rtt_p50_ms']} ms, p99 {ping['rtt_p99_ms']} ms"
        )
        if ping["lost_members"]:
            lines.append("Lost from: " + ", ".join(ping["lost_members"]))
    return "\n".join(lines) + "\n"


def render_rows(rows: list[dict]) -> str:
    header = (
        f"{'Client':<14} {'User':<16} {'Local':<15} {'State':<12} {'Assigned':<15} "
        f"{'Connect s':>9} {'Pings':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        seconds = row["connect_seconds"]
        lines.append(
            f"{row['name']:<14} {row['user']:<16} {row['local_ip'] or '-':<15} "
            f"{row['state']:<12} {row['assigned_ip'] or '-':<15} "
            f"{'-' if seconds is None else f'{seconds:.2f}':>9} "
            f"{row['pings_received']:>4}/{row['pings_sent']:<4}"
        )
    return "\n".join(lines) + "\n"
