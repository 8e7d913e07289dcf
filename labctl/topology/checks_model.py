"""The `expect:` and `scenarios:` sections of a topology: what must be true, and when.

Each expectation names one kind of check by its key (xlate, sessions, client, show, ping,
session-follows-xlate) and waits up to `within` seconds for it to hold. Values in `where`,
`all` and `any` are matchers: a plain value (equal), or a string with an operator:
"> 0", ">= 2", "< 5", "!= IPsec", "~ ^40\\.1\\.", "in 40.1.1.0/24", "any".

Fields may be dotted paths into nested records (`ike.responder_cookie`, `ipsec.0.spi_in`).
A table check may `save` fields of the rows it matched under a name; later expectations of
the same case compare with them: "== $name", "!= $name" (a name that saved several rows'
values: one of them / none of them).
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Any, Literal

from pydantic import Field, field_serializer, model_validator

from .base import Strict
from .secrets import MASK

Matcher = str | int | float | bool | None | list[str | int | float | bool]
SAVED_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class TableCheck(Strict):
    """Rows of a node's table (xlate entries, sessions, ...) filtered by `where`."""

    node: str
    where: dict[str, Matcher] = Field({}, description="only rows matching all of these")
    count: int | str | None = Field(None, description="how many rows: 2, '>= 1', '> 0'")
    all: dict[str, Matcher] = Field({}, description="every selected row matches these")
    any: dict[str, Matcher] = Field({}, description="at least one selected row matches")
    same: list[str] = Field([], description="fields equal across the selected rows")
    distinct: list[str] = Field([], description="fields different in every selected row")
    save: dict[Annotated[str, Field(pattern=SAVED_NAME)], str] = Field(
        {},
        description="{name: field}: remember the selected rows' values once the check holds; "
        "later matchers use them as $name",
    )
    if_reported: list[str] = Field(
        [],
        description="fields checked (all, any, same, distinct) only in rows whose "
        "implementation reports them; rows of an implementation that cannot (vpnc's SPIs, "
        "strongSwan's rekey intervals) skip them, and the verdict says so",
    )


class ShowCheck(TableCheck):
    what: str = Field(description="a 'labctl show' table, e.g. arp, route, conntrack")


class PingCheck(Strict):
    source: str = Field(alias="from", description="node to ping from")
    to: IPv4Address
    count: int = Field(3, ge=1, le=100)
    succeeds: bool = Field(True, description="false: every echo must go unanswered")
    size: int | None = Field(None, ge=0, le=8972)


class SessionFollowsXlate(Strict):
    """Each VPN session's UDP source port is its client's global port in the PAT."""

    firewall: str
    concentrator: str


# {node: implementation or [implementations]}: a step or expectation that applies only
# when every node named runs one of those (`labctl test --matrix` varies them).
When = dict[str, str | list[str]]


class Expectation(Strict):
    name: str | None = None
    when: When | None = Field(None, description="{node: implementation(s)}: only then")
    within: float = Field(30.0, gt=0, le=3600, description="seconds to wait for it to hold")
    xlate: TableCheck | None = None
    sessions: TableCheck | None = None
    client: TableCheck | None = None
    show: ShowCheck | None = None
    ping: PingCheck | None = None
    session_follows_xlate: SessionFollowsXlate | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Expectation:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            names = ", ".join(k.replace("_", "-") for k in CHECK_KINDS)
            raise ValueError(
                f"an expectation has exactly one of: {names}"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)

    @property
    def check(self) -> Any:
        return getattr(self, self.kind)

    def title(self) -> str:
        if self.name:
            return self.name
        check = self.check
        node = getattr(check, "node", None) or getattr(check, "source", None) or ""
        return f"{self.kind.replace('_', '-')} {node}".strip()


CHECK_KINDS = ("xlate", "sessions", "client", "show", "ping", "session_follows_xlate")
# The `labctl show` table each shorthand expectation reads; a node it names must be of a
# kind that has that table.
TABLE_SOURCES = {"xlate": "xlate", "sessions": "sessions", "client": "status"}

NodeList = str | list[str]


class SetValue(Strict):
    node: str
    path: str = Field(description="dotted path in the node, e.g. vpn.nat-transparency.nat-t")
    # The new value may be a secret (a new PSK): not in repr, masked in JSON dumps.
    value: Any = Field(repr=False)

    @field_serializer("value", when_used="json")
    def _mask_secrets(self, value: Any) -> Any:
        from .changes import is_secret_setting  # changes needs the whole model

        return MASK if is_secret_setting(self.node, self.path, value) else value


class TrafficStep(Strict):
    source: str | list[str] = Field(
        alias="from", description="a node, or several (ping only) sending at the same time"
    )
    to: IPv4Address
    kind: Literal["ping", "udp", "tcp", "iperf3"] = "ping"
    seconds: float = Field(3.0, gt=0, le=300)
    rate: str | None = Field(None, description="iperf3 -b, e.g. 10M")
    interval: float = Field(0.2, ge=0.01, le=10, description="ping: seconds between echoes")
    max_loss: str | None = Field(
        None,
        pattern=r"^\d+(\.\d+)?%$",
        description="ping: fail the step when more echoes than this went unanswered, e.g. 0%",
    )

    @model_validator(mode="after")
    def _lists_are_pings(self) -> TrafficStep:
        if isinstance(self.source, list) and self.kind != "ping":
            raise ValueError("traffic from several nodes at once is only supported for ping")
        if self.max_loss is not None and self.kind != "ping":
            raise ValueError("max-loss applies to ping traffic (iperf3 reports its own)")
        return self


class ImpairStep(Strict):
    """Impair a link in the lab's fabric: random loss (nftables), delay (tc netem)."""

    link: str = Field(description="a link name from topology.links")
    loss: str | None = Field(None, pattern=r"^\d+(\.\d+)?%$", description="e.g. 5% or 100%")
    delay: str | None = Field(None, pattern=r"^\d+ms$", description="e.g. 50ms (needs netem)")
    clear: bool = Field(False, description="remove every impairment of the link")


class PauseStep(Strict):
    node: str
    seconds: float = Field(gt=0, le=600)


class Step(Strict):
    """One scenario step: exactly one of its keys."""

    name: str | None = None
    when: When | None = Field(None, description="{node: implementation(s)}: only then")
    connect: NodeList | None = None
    disconnect: NodeList | None = None
    expect: list[Expectation] | None = None
    set: SetValue | None = None
    push: NodeList | None = None
    traffic: TrafficStep | None = None
    flush_conntrack: NodeList | None = None
    restart: NodeList | None = None
    pause: PauseStep | None = None
    impair: ImpairStep | None = None
    wait: float | None = Field(None, gt=0, le=3600)
    exec: dict[str, str] | None = Field(None, description="{node: command}; must exit 0")

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            names = ", ".join(k.replace("_", "-") for k in STEP_KINDS)
            raise ValueError(
                f"a step has exactly one of: {names}"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)


STEP_KINDS = (
    "connect",
    "disconnect",
    "expect",
    "set",
    "push",
    "traffic",
    "flush_conntrack",
    "restart",
    "pause",
    "impair",
    "wait",
    "exec",
)


class NotApplicable(Strict):
    """A scenario that cannot pass with some implementations, and why (a known limit of
    theirs, with its evidence): `labctl test` reports it not applicable there, never runs
    it, never fails it -- the same as a combination `--matrix` cannot express."""

    when: When = Field(description="{node: implementation(s)}: not applicable when all match")
    reason: str = Field(min_length=1)


class Scenario(Strict):
    description: str | None = None
    not_applicable: list[NotApplicable] = Field(
        [], description="implementations this scenario cannot pass with, and why"
    )
    steps: list[Step] = Field(min_length=1)


def node_list(value: NodeList | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
