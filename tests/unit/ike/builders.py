"""Builders shared by the engine tests: a responder with the seed's group, clients, checks."""

from __future__ import annotations

from labctl.ike import (
    AddressPool,
    ChildSaEstablished,
    GroupPolicy,
    Initiator,
    InitiatorConfig,
    Responder,
    ResponderPolicy,
    SimpleHooks,
)
from tests.unit.ike.harness import Lab

USERS = {"vpnclient1": "pw-one", "vpnclient2": "pw-two", "vpnclient3": "pw-three"}
PSK = b"labsecret"


def make_lab(
    *,
    nat: bool = True,
    group: dict | None = None,
    users: dict | None = None,
    pool: tuple[str, str] = ("40.1.1.1", "40.1.1.200"),
    hooks=None,
    **policy,
) -> Lab:
    g = GroupPolicy("ciscovpn", PSK, **(group or {}))
    hooks = hooks or SimpleHooks(users or USERS, AddressPool(*pool))
    responder = Responder(ResponderPolicy(groups={"ciscovpn": g}, **policy), hooks)
    lab = Lab(responder, nat=nat)
    lab.hooks = hooks
    return lab


def add_client(
    lab: Lab, name: str = "c1", ip: str = "10.10.10.2", user: str = "vpnclient1", **config
) -> Initiator:
    cfg = {
        "group": "ciscovpn",
        "psk": PSK,
        "user": user,
        "password": USERS.get(user, "x").encode(),
        **config,
    }
    engine = Initiator(InitiatorConfig(**cfg))
    lab.add_client(name, engine, ip)
    return engine


def connect(lab: Lab, *names: str, duration: float = 5.0) -> None:
    for name in names or tuple(lab.clients):
        lab.start(name)
    lab.run(duration)


def child_pairs(lab: Lab, name: str) -> list[tuple[ChildSaEstablished, ChildSaEstablished]]:
    """(client view, server view) of every child SA of a client, matched by SPI."""
    server = {e.inbound_spi: e for e in lab.events_of("server", ChildSaEstablished)}
    pairs = []
    for c in lab.events_of(name, ChildSaEstablished):
        pairs.append((c, server[c.outbound_spi]))
    return pairs


def assert_keys_mirror(client: ChildSaEstablished, server: ChildSaEstablished) -> None:
    assert client.outbound_spi == server.inbound_spi
    assert client.inbound_spi == server.outbound_spi
    assert client.enc_key_out == server.enc_key_in and client.auth_key_out == server.auth_key_in
    assert client.enc_key_in == server.enc_key_out and client.auth_key_in == server.auth_key_out
    assert client.enc_key_in != client.enc_key_out
    assert (client.encryption, client.integrity) == (server.encryption, server.integrity)
    assert client.encapsulation == server.encapsulation
