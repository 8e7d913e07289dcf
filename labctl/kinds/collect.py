"""Helpers for show collectors: a node's command output, --json records paired with text."""

from __future__ import annotations

import json
from typing import Any

from .spec import Collector


def run(handle: Any, node: str, command: str) -> str:
    """The stdout of `command` on the node; a non-zero exit raises (with its stderr)."""
    return handle.session(node).run(command).check().stdout


def json_and_text(json_command: str, text_command: str) -> Collector:
    """A collector of a tool that prints JSON for --json and a table for people."""

    def collect(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
        records = json.loads(run(handle, node, json_command) or "null")
        return records, run(handle, node, text_command)

    return collect
