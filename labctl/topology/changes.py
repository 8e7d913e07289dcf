"""A scenario's `set` step: one setting of one node changed in the lab's model.

`labctl validate` applies every `set` of a scenario in order, so an unknown path or a
value of the wrong type is reported with the file's line instead of failing mid-test;
the test runner applies them with the same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from .describe import describe_error, is_secret_loc, yaml_path
from .model import LabFile
from .secrets import MASK


class SetError(ValueError):
    """The change cannot be made; the message names the setting, never a secret value.
    `field` is the part of the step at fault: "node", "path" or "value"."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SetResult:
    spec: LabFile
    old: Any
    secret: bool  # the setting is a secret: describe values with shown(), never repr()

    def shown(self, value: Any) -> str:
        return MASK if self.secret else repr(value)


def is_secret_setting(node: str, path: str, value: Any = None) -> bool:
    """Whether setting `path` to `value` sets a secret (the path, or a key in the value)."""
    return is_secret_loc(("topology", "nodes", node, *path.split("."))) or _holds_secret(value)


def _holds_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return any(is_secret_loc((key,)) or _holds_secret(v) for key, v in value.items())
    if isinstance(value, list):
        return any(_holds_secret(item) for item in value)
    return isinstance(value, SecretStr)


def apply_set(
    spec: LabFile, node: str, path: str, value: Any, base_dir: Path | None = None
) -> SetResult:
    """The lab's model with `path` of `node` set to `value`, validated like the file."""
    data = spec.model_dump(by_alias=True, mode="python")
    nodes = data["topology"]["nodes"]
    if node not in nodes:
        raise SetError(f"no node {node!r} (nodes: {', '.join(nodes)})", "node")
    parts = path.split(".")
    target = nodes[node]
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(target, dict) and part in target:
            if last:
                break
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            if last:
                part = int(part)  # type: ignore[assignment]
                break
            target = target[int(part)]
        else:
            known = ", ".join(map(str, target)) if isinstance(target, dict) else ""
            raise SetError(
                f"{node} has no setting {here!r}" + (f" (there: {known})" if known else ""),
                "path",
            )
    old = target[part]
    target[part] = value
    secret = is_secret_setting(node, path, value) or _holds_secret(old)
    context = {"base_dir": base_dir} if base_dir is not None else {}
    try:
        new = LabFile.model_validate(data, context=context)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        loc = yaml_path(errors[0]["loc"])
        where = ".".join(map(str, loc[3:])) if loc[:3] == ("topology", "nodes", node) else ""
        message = describe_error(errors[0], secret or is_secret_loc(loc))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SetError(f"{node}.{where or path}: {message}{more}", "value") from None
    return SetResult(new, old, secret)
