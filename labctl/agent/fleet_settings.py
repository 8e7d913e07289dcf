"""Settings of a `vpn-fleet` node: one client entry (the `vpn` section, its user a range
such as ``vpnclient{1..1000}``) and the fleet's own section (``vpn.fleet``).

Member n gets the user the range gives for n, the n-th address from ``fleet.addresses``
(consecutive, an alias on ``fleet.interface``) and the name ``NODE/n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from ipaddress import IPv4Address

from .settings import ClientSettings, SettingsError

_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")
MAX_MEMBERS = 10_000


@dataclass(frozen=True)
class Member:
    number: int  # n of the user range: the member is NODE/n
    name: str
    user: str
    address: IPv4Address


@dataclass(frozen=True)
class FleetSettings:
    client: ClientSettings  # the entry every member copies (user: the range)
    first_address: IPv4Address
    interface: str
    connect_rate: float  # connects started per second (the storm's pace)
    max_connecting: int  # members between "connect" and "connected" at once, at most
    reconnect: bool  # a failed member tries again (off: it stays failed, e.g. no pool address)

    @property
    def node(self) -> str:
        return self.client.node

    @property
    def auto_connect(self) -> bool:
        return self.client.auto_connect

    @property
    def log_level(self) -> str:
        return self.client.log_level

    @property
    def ike_proposals(self) -> tuple[str, ...]:
        return self.client.ike_proposals

    @property
    def ipsec_proposals(self) -> tuple[str, ...]:
        return self.client.ipsec_proposals

    def members(self) -> list[Member]:
        return members_of(self.client.user, self.first_address, self.client.node)

    def member_settings(self, member: Member) -> ClientSettings:
        # auto_connect is the fleet's (the storm at start); a member's reconnects follow
        # `reconnect` (FleetMember.allow_reconnect), so its own switch is on
        return replace(self.client, user=member.user, node=member.name, auto_connect=True)


def members_of(user_pattern: str, first: IPv4Address, node: str) -> list[Member]:
    """One member per number of the user range, addresses consecutive from ``first``."""
    found = list(_RANGE.finditer(user_pattern))
    if len(found) != 1:
        raise SettingsError(
            f"setting vpn.user: a fleet's user is one range such as vpnclient{{1..50}}, "
            f"got {user_pattern!r}"
        )
    match = found[0]
    low, high = int(match.group(1)), int(match.group(2))
    if high < low or high - low + 1 > MAX_MEMBERS:
        raise SettingsError(
            f"setting vpn.user: range {match.group(0)} must count 1 to {MAX_MEMBERS} members"
        )
    width = len(match.group(1)) if match.group(1).startswith("0") and low != high else 0
    head, tail = user_pattern[: match.start()], user_pattern[match.end() :]
    return [
        Member(n, f"{node}/{n}", f"{head}{str(n).zfill(width)}{tail}", first + (n - low))
        for n in range(low, high + 1)
    ]


def parse_fleet(client: ClientSettings, section) -> FleetSettings:
    """``section``: the settings reader's ``vpn.fleet`` section."""
    if client.transparent_tunneling is False or client.tunneling_mode != "nat-t":
        raise SettingsError("setting vpn.transparent_tunneling: a fleet does NAT-T only")
    rate = section.number("connect_rate")
    if rate <= 0:
        raise SettingsError("setting vpn.fleet.connect_rate: must be above 0")
    if section.integer("max_connecting") < 1:
        raise SettingsError("setting vpn.fleet.max_connecting: must be at least 1")
    settings = FleetSettings(
        client=client,
        first_address=IPv4Address(section.text("addresses")),
        interface=section.text("interface"),
        connect_rate=rate,
        max_connecting=section.integer("max_connecting"),
        reconnect=section.flag("reconnect"),
    )
    settings.members()  # the range is readable
    return settings
