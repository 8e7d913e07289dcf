"""Matchers: how an expected value in a topology is compared with an observed one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

_OPERATOR = re.compile(r"^\s*(>=|<=|!=|==|>|<|~|in\b|any\b)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    operator: str  # "==", "!=", ">", ">=", "<", "<=", "~", "in", "any", "one-of", "none-of"
    operand: Any
    text: str

    def __call__(self, value: Any) -> bool:
        op, expected = self.operator, self.operand
        if op == "any":
            return True
        if op == "one-of":
            return any(_equal(value, e) for e in expected)
        if op == "none-of":
            return not any(_equal(value, e) for e in expected)
        if op == "==":
            return _equal(value, expected)
        if op == "!=":
            return not _equal(value, expected)
        if op == "~":
            return value is not None and re.search(expected, str(value)) is not None
        if op == "in":
            try:
                return IPv4Address(str(value)) in expected
            except ValueError:
                return False
        number = _number(value)
        if number is None:
            return False
        return {
            ">": number > expected,
            ">=": number >= expected,
            "<": number < expected,
            "<=": number <= expected,
        }[op]

    def __str__(self) -> str:
        return self.text


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _equal(value: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        as_text = isinstance(value, str) and value.lower() == str(expected).lower()
        return value is expected or as_text
    if value == expected:
        return True
    a, b = _number(value), _number(expected)
    if a is not None and b is not None:
        return a == b
    return str(value) == str(expected)


class UnknownSavedValue(ValueError):
    """A matcher names a $value no earlier expectation of the case saved."""


_SAVED = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")


def _saved_value(name: str, saved: Mapping[str, Any] | None) -> Any:
    if saved is None or name not in saved:
        known = ", ".join(f"${n}" for n in sorted(saved or {})) or "none"
        raise UnknownSavedValue(f"no saved value ${name} (saved so far: {known})")
    return saved[name]


def _against_saved(op: str, name: str, saved: Mapping[str, Any] | None) -> Matcher:
    """'== $x' / '!= $x': equal to the saved value (one of them, when several were saved)."""
    value = _saved_value(name, saved)
    values = value if isinstance(value, list) else [value]
    shown = values[0] if len(values) == 1 else values
    if op == "==":
        return Matcher("one-of", values, f"== ${name} ({shown!r})")
    return Matcher("none-of", values, f"!= ${name} ({shown!r})")


def parse_matcher(spec: Any, saved: Mapping[str, Any] | None = None) -> Matcher:
    """A matcher from a topology value; raises ValueError naming what is wrong.
    `saved` holds the values earlier expectations saved, for "== $name" / "!= $name" and
    the ordered comparisons ("> $name") with a saved number."""
    if isinstance(spec, list):
        return Matcher("one-of", spec, f"one of {spec}")
    if not isinstance(spec, str):
        return Matcher("==", spec, repr(spec))
    reference = _SAVED.match(spec.strip())
    if reference:
        return _against_saved("==", reference.group(1), saved)
    match = _OPERATOR.match(spec)
    if not match:
        return Matcher("==", spec, repr(spec))
    op, operand = match.group(1), match.group(2)
    reference = _SAVED.match(operand)
    if reference and op in ("==", "!="):
        return _against_saved(op, reference.group(1), saved)
    if reference and op in (">", ">=", "<", "<="):  # '> $x': a counter rose past a saved one
        value = _saved_value(reference.group(1), saved)
        number = _number(value)
        if value is None:  # validate: the name is known, its value only at test time
            number = 0
        elif number is None:
            raise ValueError(f"{op} ${reference.group(1)}: the saved value {value!r} is no number")
        return Matcher(op, number, f"{op} ${reference.group(1)} ({value!r})")
    if op == "any":
        return Matcher("any", None, "any")
    if op == "~":
        try:
            return Matcher("~", re.compile(operand).pattern, f"~ {operand}")
        except re.error as exc:
            raise ValueError(f"bad regular expression {operand!r}: {exc}") from None
    if op == "in":
        try:
            return Matcher("in", IPv4Network(operand, strict=False), f"in {operand}")
        except ValueError:
            raise ValueError(
                f"'in' takes a network, e.g. 'in 40.1.1.0/24' (got {operand!r})"
            ) from None
    if op in ("==", "!="):
        return Matcher(op, operand, spec.strip())
    number = _number(operand)
    if number is None:
        raise ValueError(f"{op} needs a number (got {operand!r})")
    return Matcher(op, number, spec.strip())


_COUNT_OPERATORS = ("==", "!=", ">", ">=", "<", "<=")


def parse_count(spec: Any) -> Matcher:
    """A row count: a whole number (2) or a comparison with one ('>= 1', '!= 0')."""
    if isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
        return Matcher("==", spec, str(spec))
    if isinstance(spec, str):
        match = _OPERATOR.match(spec)
        operand = match.group(2) if match else spec.strip()
        if re.fullmatch(r"\d+", operand) and (match is None or match.group(1) in _COUNT_OPERATORS):
            return parse_matcher(spec if match else f"== {operand}")
    raise ValueError(
        f"a count is a whole number or a comparison with one, e.g. 2 or '>= 1' (got {spec!r})"
    )
