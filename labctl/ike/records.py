"""Frozen dataclass values built without their generated ``__init__``.

The decoder makes ~60 frozen values per session (headers, messages, payloads), and a frozen
dataclass's ``__init__`` sets each field through ``object.__setattr__`` (a 2-field payload
~0.9 us, a Message ~1.7 us).  Values read off the wire are already checked by the decoder, so
it fills the instance dictionary in one step instead: the same fields, the same ``==``,
``hash`` and ``repr``, still frozen afterwards.  Give EVERY field (defaults included), so the
instance is the one ``cls(...)`` would make (tests compare ``vars()`` of both).
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

_new = object.__new__
_setattr = object.__setattr__


def frozen(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of the (non-slots) frozen dataclass ``cls`` with fields ``values``."""
    obj = _new(cls)
    _setattr(obj, "__dict__", values)
    return obj


def evolve(obj: T, **changes: Any) -> T:
    """``dataclasses.replace`` for a frozen dataclass WITHOUT ``__post_init__`` (ModeConfig:
    18 fields, replaced three times per session): a copy of its fields with ``changes``.
    Unlike ``replace`` it does not check the names: callers pass field names only."""
    return frozen(type(obj), {**vars(obj), **changes})
