"""The building blocks of the lab model that every node kind uses: strict sections with
kebab-case keys, secrets, interfaces, routes and the fields every node has (`NodeBase`).

The kinds themselves (their settings and node classes) live in `labctl.kinds`; this module
must not import them (the kinds import it). YAML keys are kebab-case (``nat-transparency``);
attributes are snake_case. Every model forbids unknown keys so a typo is an error, not a
silently ignored setting.
"""

from __future__ import annotations

import os
import re
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..naming import LAB_NAME_PATTERN
from .errors import type_name
from .files import MAX_SECRET_BYTES, FileReadError, decode_text, read_limited
from .secrets import remember_secret

NAME_PATTERN = LAB_NAME_PATTERN
NODE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
# Linux interface names are at most 15 bytes; eth0 is the management interface.
IFNAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$"
RESERVED_IFNAMES = ("eth0", "lo")


def _not_reserved(name: str) -> str:
    if name in RESERVED_IFNAMES:
        raise ValueError(f"interface name {name!r} is reserved (eth0 is the management interface)")
    return name


LabName = Annotated[str, Field(pattern=NAME_PATTERN, description="lab name: a-z, 0-9, '-'")]
NodeName = Annotated[str, Field(pattern=NODE_NAME_PATTERN)]
IfName = Annotated[str, Field(pattern=IFNAME_PATTERN), AfterValidator(_not_reserved)]


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class Strict(BaseModel):
    """Base for every topology section: kebab-case keys, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=_kebab,
        populate_by_name=True,
        frozen=True,
    )


class Secret(SecretStr):
    """A secret given inline, or as ``{env: NAME}`` / ``{file: path}``; never printed."""


def _secret_input(value: Any, info: ValidationInfo) -> Any:
    """Resolve the ``env``/``file`` forms at load time; remember every value for redact().
    Errors name what was expected, never the value (pydantic's would echo it)."""
    if isinstance(value, SecretStr):  # re-validating a dumped model (a scenario `set`)
        return value
    if isinstance(value, str):
        return remember_secret(value)
    if isinstance(value, dict):
        return remember_secret(_resolve_secret(value, info))
    raise PydanticCustomError(
        "secret_type",
        f"expected a string, {{env: NAME}} or {{file: PATH}}, got {type_name(value)} "
        "(the value is not shown: it is a secret; quote it to make it a string)",
    )


def _resolve_secret(value: dict, info: ValidationInfo) -> str:
    keys = set(value)
    if keys == {"env"}:
        name = value["env"]
        if not isinstance(name, str) or not name or "=" in name:
            raise PydanticCustomError("secret_form", "env: the name of an environment variable")
        if name not in os.environ:
            raise PydanticCustomError("secret_form", f"environment variable {name!r} is not set")
        return os.environ[name]
    if keys == {"file"}:
        if not isinstance(value["file"], str) or not value["file"]:
            raise PydanticCustomError("secret_form", "file: the path of a file")
        base = (info.context or {}).get("base_dir", Path("."))
        path = Path(base) / value["file"]
        try:
            return decode_text(read_limited(path, MAX_SECRET_BYTES)).strip()
        except FileReadError as exc:
            raise PydanticCustomError(
                "secret_form", f"secret file {path.resolve()}: {exc}"
            ) from None
    raise PydanticCustomError("secret_form", "a secret is a string, {env: NAME} or {file: PATH}")


SecretValue = Annotated[
    Secret, BeforeValidator(_secret_input), Field(json_schema_extra={"format": "password"})
]


# --- interfaces and routes -------------------------------------------------------------


class InterfaceConfig(Strict):
    """A lab interface of a node; the short form is just the address string."""

    ipv4: IPv4Interface | None = Field(None, description="address/prefix, e.g. 10.10.10.2/24")
    mac: str | None = Field(None, pattern=r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")
    mtu: int | None = Field(None, ge=576, le=9000)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"ipv4": data}
        if data is None:
            return {}
        return data


_ROUTE_RE = re.compile(r"^\s*(\S+)\s+via\s+(\S+)\s*$")


class Route(Strict):
    """A static route; short form ``"default via 10.10.10.1"`` or ``"10.0.0.0/8 via X"``."""

    dst: IPv4Network
    via: IPv4Address

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            match = _ROUTE_RE.match(data)
            if not match:
                raise ValueError("a route is 'DST via GATEWAY', e.g. 'default via 10.10.10.1'")
            data = {"dst": match.group(1), "via": match.group(2)}
        if isinstance(data, dict) and data.get("dst") == "default":
            data = {**data, "dst": "0.0.0.0/0"}
        return data

    @field_validator("dst", mode="before")
    @classmethod
    def _strict_network(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                IPv4Network(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a network ({exc})") from None
        return value


# --- nodes -------------------------------------------------------------------------------


class NodeBase(Strict):
    kind: str
    group: str | None = Field(None, description="a key of topology.groups to inherit from")
    image: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$",
        description="override the image (default: per kind)",
    )
    interfaces: dict[IfName, InterfaceConfig] = {}
    routes: list[Route] = []
    sysctls: dict[Annotated[str, Field(pattern=r"^net\.[a-z0-9_.\-]+$")], str | int] = {}
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")], str] = {}
    labels: dict[str, str] = {}
    exec: list[str] = Field([], description="commands run in the node once it is configured")

    @field_validator("interfaces", mode="before")
    @classmethod
    def _no_null_interfaces(cls, value: Any) -> Any:
        return {} if value is None else value
