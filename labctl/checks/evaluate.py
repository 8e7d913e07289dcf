"""Evaluating one expectation once against the lab's real state, with a readable verdict."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..state.records_common import unreported_field
from ..state.shows import ShowError
from ..topology.checks_model import TABLE_SOURCES, Expectation, TableCheck
from ..topology.matchers import parse_count, parse_matcher


class Probe(Protocol):
    """Reads state from a running lab (LabProbe is the real one; tests may fake it)."""

    def table(self, node: str, what: str) -> list[dict[str, Any]]: ...

    def ping(self, source: str, to: str, count: int, size: int | None) -> tuple[int, int, str]: ...


@dataclass
class Outcome:
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)
    observed: Any = None
    hint: str = ""
    saved: dict[str, Any] = field(default_factory=dict)  # what the check's `save` captured

    def text(self) -> str:
        lines = [self.summary, *(f"  {d}" for d in self.details)]
        if self.hint:
            lines.append(f"  look further: {self.hint}")
        return "\n".join(lines)


def evaluate(
    expectation: Expectation,
    probe: Probe,
    lab_name: str,
    saved: Mapping[str, Any] | None = None,
) -> Outcome:
    kind = expectation.kind
    check = expectation.check
    if kind in TABLE_SOURCES or kind == "show":
        what = check.what if kind == "show" else TABLE_SOURCES[kind]
        rows = probe.table(check.node, what)
        outcome = evaluate_table(rows, check, f"{what} on {check.node}", saved)
        outcome.hint = f"labctl show --lab {lab_name} {check.node} {what} --json"
        return outcome
    if kind == "ping":
        return _evaluate_ping(check, probe, lab_name)
    if kind == "session_follows_xlate":
        return _evaluate_session_follows_xlate(check, probe, lab_name)
    raise AssertionError(kind)


_MISSING = object()


def field_value(row: Any, path: str, default: Any = None) -> Any:
    """A field of a record; dotted paths walk nested records and lists (`ipsec.0.spi_in`)."""
    if isinstance(row, dict) and path in row:
        return row[path]
    value = row
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return default
    return value


def _row_view(row: dict[str, Any], fields: list[str]) -> str:
    shown = {f: v for f in fields if (v := field_value(row, f, _MISSING)) is not _MISSING} or row
    return json.dumps(shown, default=str, sort_keys=False)


def _fields_of(check: TableCheck) -> list[str]:
    fields: list[str] = []
    for group in (check.where, check.all, check.any):
        fields += [k for k in group if k not in fields]
    fields += [k for k in [*check.same, *check.distinct] if k not in fields]
    fields += [k for k in check.save.values() if k not in fields]
    return fields


def evaluate_table(
    rows: list[dict[str, Any]],
    check: TableCheck,
    label: str,
    saved: Mapping[str, Any] | None = None,
) -> Outcome:
    where = {k: parse_matcher(v, saved) for k, v in check.where.items()}
    selected = [r for r in rows if all(m(field_value(r, k)) for k, m in where.items())]
    fields = _fields_of(check)
    problems: list[str] = []
    scope = f"{len(selected)} of {len(rows)} rows" if where else f"{len(rows)} rows"

    # A field the implementation cannot report is null; an expectation on it fails, saying
    # so (rather than "expected X, observed None") -- unless the check lists it in
    # `if-reported`: then rows of that implementation skip it and the verdict says so.
    optional = set(check.if_reported)
    skipped: dict[str, set[str]] = {}

    def reported(row: Any, key: str) -> bool:
        implementation = unreported_field(row, key)
        if implementation is None or key not in optional:
            return True
        skipped.setdefault(key, set()).add(implementation)
        return False

    unreported: set[str] = set()
    for key in fields:
        if key in optional:
            continue
        for row in rows:
            implementation = unreported_field(row, key)
            if implementation is not None:
                problems.append(
                    f"{key}: {implementation} does not report this field (null in every "
                    f"record it produces); this expectation cannot be checked on it"
                )
                unreported.add(key)
                break
    if check.count is not None:
        count = parse_count(check.count)
        if not count(len(selected)):
            problems.append(f"count: expected {count}, observed {len(selected)}")
    for key, spec in check.all.items():
        if key in unreported:
            continue  # said above; "expected X, observed None" would only repeat it
        matcher = parse_matcher(spec, saved)
        for row in selected:
            if reported(row, key) and not matcher(field_value(row, key)):
                problems.append(
                    f"{key}: expected {matcher}, observed {field_value(row, key)!r} in "
                    f"{_row_view(row, fields)}"
                )
    if check.any:
        any_matchers = {k: parse_matcher(v, saved) for k, v in check.any.items()}
        if not any(
            all(not reported(r, k) or m(field_value(r, k)) for k, m in any_matchers.items())
            for r in selected
        ):
            wanted = ", ".join(f"{k} {m}" for k, m in any_matchers.items())
            problems.append(f"no row has {wanted}")
    for key in check.same:
        values = Counter(
            json.dumps(field_value(r, key), default=str) for r in selected if reported(r, key)
        )
        if len(values) > 1:
            seen = ", ".join(f"{v} ({n} rows)" for v, n in values.items())
            problems.append(f"{key}: expected the same in every row, observed {seen}")
    for key in check.distinct:
        values = Counter(
            json.dumps(field_value(r, key), default=str) for r in selected if reported(r, key)
        )
        repeated = [f"{v} ({n} rows)" for v, n in values.items() if n > 1]
        if repeated:
            problems.append(
                f"{key}: expected a different value in every row, observed {', '.join(repeated)}"
            )
    for key in check.save.values():
        for row in selected:
            reported(row, key)  # a saved null is named among the skipped fields
    if problems:
        observed = [f"observed row: {_row_view(r, fields)}" for r in selected[:20]]
        if not selected and rows:
            observed = [
                f"no row matched where {json.dumps(check.where)}; rows were:",
                *(f"  {_row_view(r, fields)}" for r in rows[:20]),
            ]
        return Outcome(
            False, f"{label}: {scope}; {len(problems)} problem(s)", problems + observed, rows
        )
    outcome = Outcome(True, f"{label}: {scope}, as expected", observed=rows)
    if skipped:
        outcome.summary += "; not checked where unreported: " + ", ".join(
            f"{key} ({'/'.join(sorted(who))})" for key, who in sorted(skipped.items())
        )
    for name, key in check.save.items():
        found = [field_value(r, key) for r in selected]
        outcome.saved[name] = found[0] if len(found) == 1 else found
    if outcome.saved:
        outcome.summary += "; saved " + ", ".join(f"${n}={v!r}" for n, v in outcome.saved.items())
    return outcome


def _evaluate_ping(check, probe: Probe, lab_name: str) -> Outcome:
    sent, received, output = probe.ping(check.source, str(check.to), check.count, check.size)
    label = f"ping {check.source} -> {check.to}"
    hint = f"labctl exec --lab {lab_name} {check.source} -- ping -c {check.count} {check.to}"
    if check.succeeds:
        ok = sent > 0 and received == sent
        want = f"all {sent} replies"
    else:
        ok = received == 0
        want = "no replies"
    summary = f"{label}: {received}/{sent} replies (expected {want})"
    details = [] if ok else [line for line in output.strip().splitlines()[-3:]]
    return Outcome(ok, summary, details, {"sent": sent, "received": received}, hint)


def _sa_transport(sa: dict[str, Any]) -> tuple[str, Any, Any]:
    """(protocol, client's translated port, concentrator port) of an IPsec SA record:
    TCP for IPsec over TCP, else its UDP encapsulation (ports None for plain ESP)."""
    if sa.get("tcp_source_port") is not None:
        return "tcp", sa["tcp_source_port"], sa.get("tcp_destination_port")
    return "udp", sa.get("udp_source_port"), sa.get("udp_destination_port")


def _evaluate_session_follows_xlate(check, probe: Probe, lab_name: str) -> Outcome:
    """Every encapsulated SA of every session comes from a global (ip, port) that the PAT
    holds right now for the SA's protocol and destination port (UDP 4500 for NAT-T, UDP
    10000 for IPsec over UDP, TCP 10000 for IPsec over TCP): after a mapping changed, the
    session must have moved to the new one."""
    xlate = probe.table(check.firewall, "xlate")
    sessions = list(probe.table(check.concentrator, "sessions"))
    try:  # a branch behind the PAT too; a concentrator without LAN-to-LAN has no such table
        l2l_rows = list(probe.table(check.concentrator, "lan-to-lan"))
    except ShowError:
        l2l_rows = []
    for l2l in l2l_rows:
        sessions.append(
            {
                "username": f"LAN-to-LAN {l2l.get('connection_name')}",
                "public_ip": l2l.get("ip_address"),
                "protocol": l2l.get("protocol"),
                "ipsec": l2l.get("ipsec"),
            }
        )
    translations: dict[tuple[str | None, int | None], set[tuple[str | None, int | None]]] = {}
    for entry in xlate:
        if entry.get("protocol") in ("udp", "tcp"):
            key = (entry.get("protocol"), entry.get("remote_port"))
            translations.setdefault(key, set()).add(
                (entry.get("global_ip"), entry.get("global_port"))
            )
    problems = []
    followed = []
    for session in sessions:
        user = session.get("username")
        sas = session.get("ipsec") or []
        if not sas:
            problems.append(f"session {user}: no IPsec SA")
        for sa in sas:
            protocol, port, dport = _sa_transport(sa)
            if port is None:
                problems.append(
                    f"session {user}: SA {sa.get('spi_in')} is not UDP-encapsulated "
                    f"(protocol {session.get('protocol')}): no translation to follow"
                )
                continue
            held = translations.get((protocol, dport), set())
            if (session.get("public_ip"), port) not in held:
                shown = ", ".join(f"{ip}({p})" for ip, p in sorted(held)) or "none"
                problems.append(
                    f"session {user}: comes from {session.get('public_ip')}({port}), which is "
                    f"not a global address of the PAT's {protocol.upper()} {dport} "
                    f"translations: {shown}"
                )
            else:
                followed.append(f"{user} {session.get('public_ip')}({port})")
    if not sessions:
        problems.append("no sessions on the concentrator")
    label = f"sessions on {check.concentrator} follow the xlate of {check.firewall}"
    if problems:
        return Outcome(
            False,
            f"{label}: {len(problems)} problem(s)",
            problems,
            hint=f"labctl show --lab {lab_name} {check.firewall} xlate; "
            f"labctl show --lab {lab_name} {check.concentrator} sessions -v",
        )
    names = sorted(set(followed))
    more = len(names) - FOLLOWED_SHOWN
    listed = ", ".join(names[:FOLLOWED_SHOWN]) + (f" ... and {more} more" if more > 0 else "")
    return Outcome(True, f"{label}: {listed}")


FOLLOWED_SHOWN = 20  # a fleet has a thousand sessions: a line, not a page, in the step log


_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


def parse_ping(output: str) -> tuple[int, int]:
    match = _PING_SUMMARY.search(output)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
