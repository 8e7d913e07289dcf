"""Splitting a suite's cases over N CI jobs, the same way on every machine.

Round-robin over the sorted case ids (`<topology file stem>::<case>`): the split depends
only on the set of cases, never on paths, hash seeds or discovery order, and shard sizes
differ by at most one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class ShardError(ValueError):
    pass


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4): shard K of N, 1 <= K <= N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ShardError(f"--shard {text!r}: expected K/N, e.g. 1/4")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ShardError(f"--shard {text!r}: K must be between 1 and N (N >= 1)")
    return k, n


def shard_of(items: Sequence[T], ids: Sequence[str], k: int, n: int) -> list[T]:
    """The items of shard k of n, in their original order; `ids` names each item."""
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ShardError(
            "two cases share an id (same file name in two folders?): " + ", ".join(duplicates)
        )
    chosen = set(sorted(ids)[k - 1 :: n])
    return [item for item, item_id in zip(items, ids, strict=True) if item_id in chosen]
