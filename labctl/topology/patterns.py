"""Patterns: N similar nodes, users or links written once (issue 13).

A node, a concentrator user or a link whose name holds one range ``{FIRST..LAST}`` stands
for one copy per number: ``client{1..200}`` is client1 .. client200 (``{001..200}`` pads
to three digits). Inside such a copy every string -- values and keys, addresses included --
may hold expressions ``{n}``, ``{i}``, ``{n+1}``, ``{10.10.8.2+i}``: ``n`` is the copy's
number, ``i`` its index from 0, and an address plus a number is the address that many
further on (so a /22 is crossed naturally). A link endpoint ``client{1..200}:eth1`` is one
endpoint per number. Expansion runs on the located YAML before anything else, and every
copy keeps the lines of its pattern, so any later error points at the pattern's line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from .errors import TopologyIssue
from .loader import LocatedDict, LocatedList

MAX_COPIES = 10_000  # per pattern
MAX_EXPANDED_VALUES = 2_000_000  # over the whole file, copies counted

_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
# What may be an expression: names, numbers, addresses joined by + and -. Anything else in
# braces (a password "p{x*y}") is left alone.
_EXPR = re.compile(r"\{\s*([A-Za-z0-9.]+(?:\s*[+-]\s*[A-Za-z0-9.]+)*)\s*\}")
_TERM = re.compile(r"\s*([+-]?)\s*([A-Za-z0-9.]+)")
# Keys whose values are secrets: an error there never quotes the text.
_SECRET_KEYS = ("psk", "password", "group-password", "secret", "key")


class PatternError(ValueError):
    """A pattern or expression that cannot be expanded; the message names what is wrong."""


@dataclass(frozen=True)
class Copy:
    """One copy of a pattern: its number and index."""

    n: int
    i: int
    text: str  # the number as written in names (padded like the range)


@dataclass(frozen=True)
class Range:
    prefix: str
    suffix: str
    copies: tuple[Copy, ...]

    def name(self, copy: Copy) -> str:
        return self.prefix + copy.text + self.suffix


def parse_range(text: str) -> Range | None:
    """The range in a name, or None when it has none."""
    found = list(_RANGE.finditer(text))
    if not found:
        return None
    if len(found) > 1:
        raise PatternError(f"a pattern has one range {{FIRST..LAST}}, this one has {len(found)}")
    match = found[0]
    first_text, last_text = match.group(1), match.group(2)
    first, last = int(first_text), int(last_text)
    if last < first:
        raise PatternError(f"range {{{first_text}..{last_text}}} ends before it starts")
    if last - first + 1 > MAX_COPIES:
        raise PatternError(
            f"range {{{first_text}..{last_text}}} makes {last - first + 1:,} copies "
            f"(at most {MAX_COPIES:,})"
        )
    width = len(first_text) if first_text.startswith("0") and len(first_text) > 1 else 0
    copies = tuple(Copy(n, n - first, str(n).zfill(width)) for n in range(first, last + 1))
    return Range(text[: match.start()], text[match.end() :], copies)


def evaluate(expression: str, copy: Copy) -> str:
    """'n+1' -> '4'; '10.10.8.2+i' -> '10.10.8.5' (for n=4, i=3)."""
    address: IPv4Address | None = None
    total = 0
    position = 0
    for index, match in enumerate(_TERM.finditer(expression)):
        if match.start() != position:
            raise PatternError(f"cannot read expression {{{expression}}}")
        position = match.end()
        sign, term = match.group(1), match.group(2)
        if index > 0 and not sign:
            raise PatternError(f"cannot read expression {{{expression}}}")
        negative = sign == "-"
        if term in ("n", "i"):
            value = copy.n if term == "n" else copy.i
        elif term.isdigit():
            value = int(term)
        elif "." in term and term[0].isdigit():
            if index > 0 or negative:
                raise PatternError(
                    f"in {{{expression}}} the address comes first: {{ADDRESS+n}}, {{ADDRESS+i}}"
                )
            try:
                address = IPv4Address(term)
            except AddressValueError:
                raise PatternError(f"{term!r} in {{{expression}}} is not an address") from None
            continue
        else:
            raise PatternError(
                f"unknown name {term!r} in {{{expression}}} (a pattern knows n, its number, "
                "and i, its index from 0)"
            )
        total += -value if negative else value
    if position != len(expression.rstrip()):
        raise PatternError(f"cannot read expression {{{expression}}}")
    if address is None:
        return str(total)
    result = int(address) + total
    if not 0 <= result <= 0xFFFFFFFF:
        raise PatternError(f"{{{expression}}} runs past the IPv4 address space for n={copy.n}")
    return str(IPv4Address(result))


def substitute(text: str, copy: Copy) -> str:
    """Every expression in a string replaced by its value; ranges are left alone."""
    return _EXPR.sub(lambda m: _replace(m, copy), text)


def _replace(match: re.Match[str], copy: Copy) -> str:
    if _RANGE.fullmatch(match.group(0)):
        return match.group(0)
    return evaluate(match.group(1), copy)


def has_placeholder(text: str) -> bool:
    """Whether a string uses n or i in an expression (meaningful only inside a pattern)."""
    for match in _EXPR.finditer(text):
        if _RANGE.fullmatch(match.group(0)):
            continue
        if any(term in ("n", "i") for _, term in _TERM.findall(match.group(1))):
            return True
    return False


class _Expander:
    """Walks the located document and collects issues instead of stopping at the first."""

    def __init__(self, file: Any):
        self.file = file
        self.issues: list[TopologyIssue] = []
        self.values = 0

    def issue(self, line: int | None, path: tuple[Any, ...], message: str) -> None:
        issue = TopologyIssue(self.file, line, ".".join(map(str, path)), message)
        if issue not in self.issues:  # one per pattern, not one per copy
            self.issues.append(issue)

    def copy_of(self, value: Any, copy: Copy, path: tuple[Any, ...], line: int | None) -> Any:
        """A deep copy of a located value with the copy's expressions substituted."""
        self.values += 1
        if isinstance(value, dict):
            result = LocatedDict()
            result.line = getattr(value, "line", line or 0)
            result.key_lines = {}
            key_lines = getattr(value, "key_lines", {})
            for key, item in value.items():
                key_line = key_lines.get(key, result.line)
                new_key = (
                    self.text_of(key, copy, (*path, key), key_line) if isinstance(key, str) else key
                )
                result[new_key] = self.copy_of(item, copy, (*path, key), key_line)
                result.key_lines[new_key] = key_line
            return result
        if isinstance(value, list):
            items = LocatedList()
            items.line = getattr(value, "line", line or 0)
            lines = getattr(value, "item_lines", [items.line] * len(value))
            items.extend(
                self.copy_of(item, copy, (*path, index), lines[index])
                for index, item in enumerate(value)
            )
            items.item_lines = list(lines)
            return items
        if isinstance(value, str):
            return self.text_of(value, copy, path, line)
        return value

    def text_of(self, text: str, copy: Copy, path: tuple[Any, ...], line: int | None) -> str:
        try:
            return substitute(text, copy)
        except PatternError as exc:
            secret = bool(path) and str(path[-1]) in _SECRET_KEYS
            message = (
                "an expression here cannot be read (not shown: a secret)" if secret else str(exc)
            )
            self.issue(line, path, message)
            return text

    def range_of(self, name: str, path: tuple[Any, ...], line: int | None) -> Range | None:
        try:
            return parse_range(name)
        except PatternError as exc:
            self.issue(line, path, str(exc))
            return None

    def expand_mapping(self, mapping: LocatedDict, path: tuple[Any, ...], what: str) -> LocatedDict:
        """A mapping whose pattern keys are replaced by one key per copy, in place order."""
        result = LocatedDict()
        result.line = mapping.line
        result.key_lines = {}
        origin: dict[str, str] = {}
        for key, value in mapping.items():
            line = mapping.key_lines.get(key, mapping.line)
            pattern = self.range_of(key, (*path, key), line) if isinstance(key, str) else None
            if pattern is None:
                entries = [(key, value)]
            else:
                self.values += len(pattern.copies) * _size(value)
                if self.values > MAX_EXPANDED_VALUES:
                    self.issue(
                        line,
                        (*path, key),
                        f"the patterns expand to more than {MAX_EXPANDED_VALUES:,} values",
                    )
                    return mapping
                entries = [
                    (
                        self.text_of(pattern.name(c), c, (*path, key), line),
                        self.copy_of(value, c, (*path, key), line),
                    )
                    for c in pattern.copies
                ]
            for name, item in entries:
                if name in result:
                    first = result.key_lines[name]
                    self.issue(
                        line,
                        (*path, key),
                        f"{what} {name!r} is made twice: by {origin[name]!r} (line {first}) "
                        f"and by {key!r}",
                    )
                    continue
                result[name] = item
                result.key_lines[name] = line
                origin[name] = key
        return result

    def expand_links(self, links: LocatedList, path: tuple[Any, ...]) -> LocatedList:
        result = LocatedList()
        result.line = links.line
        result.item_lines = []
        for index, link in enumerate(links):
            line = links.item_lines[index]
            name = link.get("name") if isinstance(link, dict) else None
            pattern = (
                self.range_of(name, (*path, index, "name"), line) if isinstance(name, str) else None
            )
            if pattern is not None:
                for c in pattern.copies:
                    copied = self.copy_of(link, c, (*path, index), line)
                    copied["name"] = pattern.name(c)
                    result.append(copied)
                    result.item_lines.append(line)
                continue
            if isinstance(link, dict) and isinstance(link.get("endpoints"), list):
                link["endpoints"] = self.expand_endpoints(
                    link["endpoints"], (*path, index, "endpoints")
                )
            result.append(link)
            result.item_lines.append(line)
        return result

    def expand_endpoints(self, endpoints: LocatedList, path: tuple[Any, ...]) -> LocatedList:
        result = LocatedList()
        result.line = endpoints.line
        result.item_lines = []
        for index, endpoint in enumerate(endpoints):
            line = endpoints.item_lines[index]
            pattern = (
                self.range_of(endpoint, (*path, index), line) if isinstance(endpoint, str) else None
            )
            if pattern is None:
                if isinstance(endpoint, str) and has_placeholder(endpoint):
                    self.issue(line, (*path, index), _OUTSIDE)
                result.append(endpoint)
                result.item_lines.append(line)
                continue
            for c in pattern.copies:
                result.append(self.text_of(pattern.name(c), c, (*path, index), line))
                result.item_lines.append(line)
        return result

    def find_stray_placeholders(self, value: Any, path: tuple[Any, ...], line: int | None) -> None:
        """`{n}` in a node that is not a pattern: an error, not a literal name."""
        if isinstance(value, dict):
            key_lines = getattr(value, "key_lines", {})
            for key, item in value.items():
                key_line = key_lines.get(key, line)
                if isinstance(key, str) and _RANGE.search(key):
                    continue  # a pattern of its own (users): expanded later
                if isinstance(key, str) and has_placeholder(key):
                    self.issue(key_line, (*path, key), _OUTSIDE)
                self.find_stray_placeholders(item, (*path, key), key_line)
        elif isinstance(value, list):
            lines = getattr(value, "item_lines", [line] * len(value))
            for index, item in enumerate(value):
                self.find_stray_placeholders(item, (*path, index), lines[index])
        elif isinstance(value, str) and has_placeholder(value):
            secret = bool(path) and str(path[-1]) in _SECRET_KEYS
            self.issue(line, path, _OUTSIDE if not secret else _OUTSIDE + " (in a secret)")


_OUTSIDE = (
    "{n} and {i} mean something only inside a pattern (a node, user or link named with a "
    "range, e.g. client{1..20})"
)


def _size(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_size(v) for v in value)
    return 1


def expand_node_patterns(document: Any, file: Any) -> tuple[Any, list[TopologyIssue]]:
    """Nodes and links: the document with every pattern expanded (before inheritance)."""
    topology = document.get("topology") if isinstance(document, dict) else None
    if not isinstance(topology, LocatedDict):
        return document, []
    expander = _Expander(file)
    for section in ("defaults", "kinds", "groups"):
        line = topology.key_lines.get(section, topology.line)
        expander.find_stray_placeholders(topology.get(section), ("topology", section), line)
    nodes = topology.get("nodes")
    if isinstance(nodes, LocatedDict):
        for key, node in nodes.items():
            if isinstance(key, str) and not _RANGE.search(key):
                line = nodes.key_lines.get(key, nodes.line)
                expander.find_stray_placeholders(node, ("topology", "nodes", key), line)
        topology["nodes"] = expander.expand_mapping(nodes, ("topology", "nodes"), "node")
    links = topology.get("links")
    if isinstance(links, LocatedList) and not expander.issues:
        topology["links"] = expander.expand_links(links, ("topology", "links"))
    return document, expander.issues


def expand_user_patterns(document: Any, file: Any) -> tuple[Any, list[TopologyIssue]]:
    """Concentrator users (after inheritance, so users from kinds/groups expand too)."""
    topology = document.get("topology") if isinstance(document, dict) else None
    nodes = topology.get("nodes") if isinstance(topology, dict) else None
    if not isinstance(nodes, dict):
        return document, []
    expander = _Expander(file)
    for name, node in nodes.items():
        vpn = node.get("vpn") if isinstance(node, dict) else None
        users = vpn.get("users") if isinstance(vpn, dict) else None
        if isinstance(vpn, dict) and isinstance(users, LocatedDict):
            path = ("topology", "nodes", name, "vpn", "users")
            vpn["users"] = expander.expand_mapping(users, path, "user")
    return document, expander.issues
