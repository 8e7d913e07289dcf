"""Scenario steps: what each `scenarios.<name>.steps[]` entry does to a running lab."""

from __future__ import annotations

import re
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..kinds.registry import implementation_of
from ..kinds.spec import ClientCommands
from ..lifecycle import LabHandle, push_node
from ..lifecycle.restart import restart_node
from ..topology import Lab
from ..topology.changes import SetError, apply_set, is_secret_setting
from ..topology.checks_model import SetValue, Step, node_list
from ..topology.describe import shown as shown_value
from ..topology.secrets import MASK
from ..wiring import impair
from .evaluate import Outcome, parse_ping
from .events import RunEvents
from .probe import LabProbe
from .wait import wait_for


class StepFailed(Exception):
    def __init__(self, message: str, outcome: Outcome | None = None):
        super().__init__(message)
        self.outcome = outcome


@dataclass
class StepLog:
    """What a case leaves behind: its log lines and the values its expectations saved."""

    lines: list[str] = field(default_factory=list)
    saved: dict[str, Any] = field(default_factory=dict)
    events: RunEvents = field(default_factory=RunEvents)  # live progress (the web console)

    def add(self, text: str) -> None:
        self.lines.append(f"{time.strftime('%H:%M:%S')} {text}")
        self.events.emit("log", line=text)


def not_applying(when: dict[str, Any] | None, lab: Lab) -> str | None:
    """Why a step or expectation with `when: {node: implementation(s)}` does not apply to
    this lab, or None when it does."""
    for node, wanted in (when or {}).items():
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        actual = implementation_of(lab.node(node)).name
        if actual not in names:
            return f"{node} runs {actual}; this is for {' or '.join(names)}"
    return None


def run_step(step: Step, handle: LabHandle, log: StepLog) -> None:
    kind = step.kind
    value = getattr(step, kind)
    title = step.name or _brief(value)
    reason = not_applying(step.when, handle.lab)
    if reason is not None:
        log.add(f"step {kind}: {title} -- skipped: {reason}")
        return
    log.events.emit("step", kind=kind, title=title)
    log.add(f"step {kind}: {title}")
    handler = _HANDLERS[kind]
    handler(value, handle, log)


def _brief(value: Any) -> str:
    if isinstance(value, list) and value and hasattr(value[0], "title"):
        return f"{len(value)} expectation(s)"
    if isinstance(value, SetValue):  # the value may be a new PSK: never in a log or JUnit
        secret = is_secret_setting(value.node, value.path, value.value)
        return f"{value.node}.{value.path} = {MASK if secret else shown_value(value.value)}"
    if hasattr(value, "model_dump"):
        return str(value.model_dump(by_alias=True, exclude_defaults=True))
    return str(value)


def _check_expectations(expectations, handle: LabHandle, log: StepLog) -> None:
    probe = LabProbe(handle)
    for expectation in expectations:
        title = expectation.title()
        reason = not_applying(expectation.when, handle.lab)
        if reason is not None:
            log.add(f"  skip {title}: {reason}")
            continue
        last: list[str] = []

        def observed(outcome: Outcome, title: str = title, last: list[str] = last) -> None:
            if last != [outcome.summary]:  # a poll that saw nothing new is not news
                last[:] = [outcome.summary]
                log.events.emit("observed", title=title, ok=outcome.ok, **_shown(outcome))

        log.events.emit("expect", title=title, expected=_expected(expectation))
        outcome, waited = wait_for(
            expectation, probe, handle.lab.name, saved=log.saved, on_outcome=observed
        )
        log.events.emit(
            "expect-done", title=title, ok=outcome.ok, seconds=round(waited, 1), **_shown(outcome)
        )
        named = f"{expectation.name}: " if expectation.name else ""
        verdict = "ok  " if outcome.ok else "FAIL"
        log.add(f"  {verdict} {named}{outcome.summary} ({waited:.1f}s)")
        if not outcome.ok:
            raise StepFailed(f"{expectation.title()}: {outcome.summary}", outcome)
        log.saved.update(outcome.saved)


def _expected(expectation) -> str:
    """What an expectation asks for, in the topology's own words."""
    check = expectation.check
    if hasattr(check, "model_dump"):
        return str(check.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    return str(check)


def _shown(outcome: Outcome) -> dict[str, Any]:
    return {"observed": outcome.summary, "details": outcome.details[:20]}


def _client_commands(handle: LabHandle, node: str) -> ClientCommands:
    commands = implementation_of(handle.lab.node(node)).client
    if commands is None:  # validate refuses this; a lab changed under the runner might not
        raise StepFailed(f"{node} ({handle.lab.node(node).kind}) cannot connect or disconnect")
    return commands


def _without_options(command: str) -> str:
    """How a failure names a command: "vpn connect --wait" -> "vpn connect"."""
    return command.split(" -", 1)[0]


def _connect(nodes, handle: LabHandle, log: StepLog) -> None:
    for node in node_list(nodes):
        commands = _client_commands(handle, node)
        result = handle.session(node).run(commands.connect, timeout=commands.connect_timeout)
        log.add(f"  {node}: {(result.stdout or result.stderr).strip().splitlines()[-1:]}")
        if result.exit_status != 0:
            reason = (result.stderr or result.stdout).strip()
            raise StepFailed(f"{node}: {_without_options(commands.connect)} failed: {reason}")


def _disconnect(nodes, handle: LabHandle, log: StepLog) -> None:
    for node in node_list(nodes):
        commands = _client_commands(handle, node)
        handle.session(node).run(commands.disconnect, timeout=commands.disconnect_timeout).check()


def _set(change, handle: LabHandle, log: StepLog) -> None:
    """Change one setting of a node in the lab's model (a later `push` applies it)."""
    source = handle.lab.source
    try:
        result = apply_set(
            handle.lab.spec,
            change.node,
            change.path,
            change.value,
            source.parent if source else None,
        )
    except SetError as exc:
        raise StepFailed(f"set: {exc}") from None
    handle.lab = Lab(spec=result.spec, source=source)
    log.add(
        f"  {change.node}.{change.path}: {result.shown(result.old)} -> {result.shown(change.value)}"
    )


def _push(nodes, handle: LabHandle, log: StepLog) -> None:
    for node in node_list(nodes):
        for item in push_node(handle, node):
            log.add(f"  {node}: {item}")


def _owner_of(lab: Lab, address: str) -> str | None:
    for name, node in lab.nodes.items():
        for config in node.interfaces.values():
            if config.ipv4 is not None and str(config.ipv4.ip) == address:
                return name
    return None


def _traffic(traffic, handle: LabHandle, log: StepLog) -> None:
    to = str(traffic.to)
    if traffic.kind == "ping":
        _ping_traffic(traffic, handle, log)
        return
    source = handle.session(traffic.source)
    server_node = _owner_of(handle.lab, to)
    if server_node is None:
        raise StepFailed(f"traffic: no node of the lab owns {to} to run the iperf3 server")
    server = handle.session(server_node)
    server.run("iperf3 -s -1 -D --pidfile /run/labctl-iperf3.pid").check()
    time.sleep(0.3)
    udp = "-u" if traffic.kind == "udp" else ""
    rate = f"-b {shlex.quote(traffic.rate)}" if traffic.rate else ("-b 10M" if udp else "")
    result = source.run(
        f"iperf3 -c {to} {udp} {rate} -t {traffic.seconds:g} -J", timeout=traffic.seconds + 30
    )
    server.run("kill $(cat /run/labctl-iperf3.pid 2>/dev/null) 2>/dev/null; true")
    if result.exit_status != 0:
        raise StepFailed(
            f"traffic {traffic.kind} {traffic.source} -> {to} failed: "
            f"{(result.stderr or result.stdout).strip()[-300:]}"
        )
    match = re.search(r'"bits_per_second":\s*([0-9.e+]+)', result.stdout)
    log.add(
        f"  {traffic.kind} {traffic.source} -> {to}: {float(match.group(1)) / 1e6:.1f} Mbit/s"
        if match
        else "  done"
    )


_REPLY_SEQ = re.compile(r"bytes from .*icmp_seq=(\d+)")


def _ping_traffic(traffic, handle: LabHandle, log: StepLog) -> None:
    """Echoes every `interval` seconds for `seconds`, from one node or several at once;
    with max-loss, unanswered echoes beyond it fail the step (naming which ones)."""
    sources = node_list(traffic.source)
    count = max(1, int(traffic.seconds / traffic.interval))
    command = f"ping -n -i {traffic.interval:g} -W 1 -c {count} {traffic.to}"
    sessions = {node: handle.session(node) for node in sources}  # connect before threads

    def run(node: str):
        return sessions[node].run(command, timeout=traffic.seconds + 30)

    with ThreadPoolExecutor(max_workers=min(len(sources), 32)) as pool:
        results = dict(zip(sources, pool.map(run, sources), strict=True))
    problems = []
    for node, result in results.items():
        sent, received = parse_ping(result.stdout)
        answered = {int(m) for m in _REPLY_SEQ.findall(result.stdout)}
        lost = [seq for seq in range(1, sent + 1) if seq not in answered]
        loss = 100.0 * (sent - received) / sent if sent else 100.0
        line = f"{node} -> {traffic.to}: {received}/{sent} answered ({loss:.1f}% loss)"
        if lost:
            line += f", unanswered icmp_seq {_ranges(lost)} (every {traffic.interval:g}s)"
        log.add("  " + line)
        if traffic.max_loss is not None and (
            sent == 0 or loss > float(traffic.max_loss.rstrip("%"))
        ):
            problems.append(line if sent else f"{node}: ping did not run: {result.stderr.strip()}")
    if problems:
        wanted = f"at most {traffic.max_loss} loss"
        raise StepFailed(
            f"traffic ping -> {traffic.to}: expected {wanted}, observed: {'; '.join(problems)}",
            Outcome(False, f"ping traffic: expected {wanted}", problems),
        )


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7' (lost echoes come in runs)."""
    parts, start, previous = [], numbers[0], numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == previous + 1:
            previous = number
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if number is not None:
            start = previous = number
    return ", ".join(parts)


def _flush_conntrack(nodes, handle: LabHandle, log: StepLog) -> None:
    for node in node_list(nodes):
        result = handle.session(node).run("conntrack -F 2>&1")
        log.add(f"  {node}: {result.stdout.strip()}")


def _restart(nodes, handle: LabHandle, log: StepLog) -> None:
    for node in node_list(nodes):
        restart_node(handle, node)
        log.add(f"  {node}: restarted, rewired and reconfigured")


def _pause(pause, handle: LabHandle, log: StepLog) -> None:
    handle.runtime.pause_node(handle.lab.name, pause.node, True)
    try:
        time.sleep(pause.seconds)
    finally:
        handle.runtime.pause_node(handle.lab.name, pause.node, False)


def _impair(step, handle: LabHandle, log: StepLog) -> None:
    segment = next((s for s in handle.lab.segments if s.name == step.link), None)
    if segment is None:
        raise StepFailed(
            f"impair: no link named {step.link!r} "
            f"(links: {', '.join(s.name for s in handle.lab.segments)})"
        )
    try:
        if step.clear:
            impair.clear(handle.lab.name, segment)
        if step.loss is not None:
            impair.set_loss(handle.lab.name, segment, float(step.loss.rstrip("%")))
        if step.delay is not None:
            impair.set_delay(handle.lab.name, segment, int(step.delay.removesuffix("ms")))
    except impair.ImpairError as exc:
        raise StepFailed(str(exc)) from None


def _wait(seconds, handle: LabHandle, log: StepLog) -> None:
    time.sleep(seconds)


def _exec(commands, handle: LabHandle, log: StepLog) -> None:
    for node, command in commands.items():
        result = handle.session(node).run(command, timeout=120)
        last = result.stdout.strip().splitlines()[-1:] or [""]
        log.add(f"  {node}$ {command} -> {result.exit_status} {last[0][:200]}".rstrip())
        if result.exit_status != 0:
            raise StepFailed(
                f"{node}: '{command}' exited {result.exit_status}: "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            )


_HANDLERS = {
    "connect": _connect,
    "disconnect": _disconnect,
    "expect": _check_expectations,
    "set": _set,
    "push": _push,
    "traffic": _traffic,
    "flush_conntrack": _flush_conntrack,
    "restart": _restart,
    "pause": _pause,
    "impair": _impair,
    "wait": _wait,
    "exec": _exec,
}
