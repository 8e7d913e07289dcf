"""Print a transcript of seeded IKE scenarios through one checkout's engine, so that two
checkouts can be compared byte for byte: a refactoring of labctl/ike that changes no
behaviour gives the same transcript.

    python tools/ike_transcript.py /path/to/old/checkout > old.txt
    python tools/ike_transcript.py /path/to/new/checkout > new.txt
    diff old.txt new.txt && echo "same behaviour"

Randomness (os.urandom, the DH exponents) comes from a seeded generator and DH runs on the
``pow`` backend, so both runs see the same cookies, nonces, keys and SPIs as long as the
engines ask for random bytes in the same order.  The transcript holds every datagram (hex),
every event (enums as their values, so a str -> StrEnum change reads the same) and both
sides' final stats, sessions and waiting requests.  The scenarios use the engine's public
API and the in-memory network of tests/unit/ike/harness.py (taken from the checkout).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import random
import secrets
import struct
import sys
from collections.abc import Callable

CHECKOUT = sys.argv[1] if len(sys.argv) > 1 else "."
sys.path.insert(0, CHECKOUT)

from labctl.ike import (  # noqa: E402 - from the checkout named on the command line
    AddressPool,
    GroupPolicy,
    Initiator,
    InitiatorConfig,
    Phase1Proposal,
    Responder,
    ResponderPolicy,
    SimpleHooks,
    crypto,
)
from labctl.ike.config import default_phase1, seed_phase1, seed_phase2  # noqa: E402
from labctl.ike.constants import AuthMethod  # noqa: E402
from tests.unit.ike.harness import Flight, Lab  # noqa: E402

if not crypto.__file__.startswith(os.path.abspath(CHECKOUT)):
    raise SystemExit(f"labctl came from {crypto.__file__}, not from {CHECKOUT}")

USERS = {"vpnclient1": "pw-one", "vpnclient2": "pw-two"}
CLIENT_500, CLIENT_4500 = ("10.10.10.2", 500), ("10.10.10.2", 4500)
_rng = random.Random(1)


def _seed_randomness() -> None:
    crypto._DH_BACKEND = "pow"
    os.urandom = lambda n: bytes(_rng.getrandbits(8) for _ in range(n))
    secrets.randbits = _rng.getrandbits


def _plain(value):
    """Events and snapshots as plain values (enums by value, bytes in hex)."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value).__name__, *((f.name, _plain(getattr(value, f.name))) for f in fields))
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _plain(v)) for k, v in value.items()))
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, int | float | str | bool | type(None)):
        return value
    return str(value)


def gateway(*, nat: bool = True, group: dict | None = None, pool=("40.1.1.1", "40.1.1.200"), **kw):
    groups = {"ciscovpn": GroupPolicy("ciscovpn", b"labsecret", **(group or {}))}
    policy = ResponderPolicy(groups=groups, **kw)
    return Lab(Responder(policy, SimpleHooks(USERS, AddressPool(*pool))), nat=nat)


def client(lab: Lab, name="c1", ip="10.10.10.2", user="vpnclient1", password=None, **cfg):
    psk = cfg.pop("psk", b"labsecret")
    secret = (password or USERS.get(user or "", "x")).encode()
    lab.add_client(name, Initiator(InitiatorConfig("ciscovpn", psk, user, secret, **cfg)), ip)
    return lab


def connect(lab: Lab, duration: float = 5.0) -> None:
    for name in lab.clients:
        lab.start(name)
    lab.run(duration)


def long_life(lab: Lab) -> None:
    connect(lab)
    lab.run(400)  # DPD, heartbeats, both rekeys, expiries
    lab.collect("c1", lab.clients["c1"].engine.delete(lab.now))
    lab.run(30)


def over_tcp(lab: Lab) -> None:
    lab.start("c1", local_port=40123, remote_port=10000)
    lab.run(60)


def lossy(lab: Lab) -> None:
    loss = random.Random(5)
    lab.drop = lambda f: loss.random() < 0.3
    connect(lab, 300)


def mutated(lab: Lab) -> None:
    """Every packet again, mutated, six times over; then headers of every exchange type,
    flag and message ID on the live SA and on a new cookie."""
    connect(lab)
    rnd = random.Random(9)
    flights = list(lab.capture)
    for _ in range(6):
        for f in flights:
            data = bytearray(f.data)
            how = rnd.randrange(4)
            if how == 1:
                for _ in range(rnd.randint(1, 4)):
                    data[rnd.randrange(len(data))] = rnd.randrange(256)
            elif how == 2:
                data = data[: rnd.randrange(len(data) + 1)]
            elif how == 3:
                at = rnd.randrange(28, max(29, len(data)))
                data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
            lab.inject(Flight(bytes(data), f.src, f.dst, f.marker, "fuzz"))
        lab.run(3)
    icookie, rcookie = next(iter(lab.responder.sas))
    for exchange in (1, 2, 4, 5, 6, 32, 33, 99):
        for flags in (0, 1, 2, 3):
            for mid in (0, 1234):
                body = struct.pack("!BBBBII", 0, 0x10, exchange, flags, mid, 44) + bytes(16)
                on_sa = Flight(
                    icookie + rcookie + body, CLIENT_4500, (lab.server_ip, 4500), True, ""
                )
                first = struct.pack("!BBBBII", 0, 0x10, exchange, flags, mid, 28)
                new_sa = Flight(
                    icookie + bytes(8) + first, CLIENT_500, (lab.server_ip, 500), False, ""
                )
                lab.inject(on_sa)
                lab.inject(new_sa)
    lab.run(60)


TWO = {"name": "c2", "ip": "10.10.10.3", "user": "vpnclient2"}
SEED = {"phase1": seed_phase1(), "phase2": seed_phase2()}
ONE_ADDRESS = ("40.1.1.1", "40.1.1.1")


def _seed_long() -> Lab:
    lab = gateway(ike_lifetime=100, ipsec_lifetime=60, dpd_idle=10)
    client(lab, phase1=(Phase1Proposal(lifetime=100),), dpd_idle=15, altiga_keepalive_interval=7)
    return client(lab, **TWO)


def _then(seconds: float) -> Callable[[Lab], None]:
    return lambda lab: (connect(lab), lab.run(seconds))


SCENARIOS: list[tuple[str, Callable[[], Lab], Callable[[Lab], None]]] = [
    ("seed, two clients, 400 s", _seed_long, long_life),
    ("main mode", lambda: client(gateway(main_mode_group="ciscovpn"), exchange="main"), _then(100)),
    (
        "IPsec over UDP",
        lambda: client(gateway(natt_enabled=False, cisco_udp_port=10000), natt="cisco-udp"),
        connect,
    ),
    (
        "auto, gateway without NAT-T",
        lambda: client(gateway(natt_enabled=False, cisco_udp_port=10000), natt="auto"),
        connect,
    ),
    ("force NAT-T, no NAT", lambda: client(gateway(nat=False), natt="force"), connect),
    ("no NAT-T, no NAT", lambda: client(gateway(nat=False), natt="none"), connect),
    ("Mode-Config push", lambda: client(gateway(modecfg_push=True), modecfg="push"), connect),
    (
        "empty pool, push",
        lambda: client(
            client(gateway(modecfg_push=True, pool=ONE_ADDRESS), modecfg="push"),
            **TWO,
            modecfg="push",
        ),
        connect,
    ),
    ("empty pool, pull", lambda: client(client(gateway(pool=ONE_ADDRESS)), **TWO), connect),
    ("wrong password", lambda: client(gateway(), password="nope"), lambda lab: connect(lab, 60)),
    ("wrong PSK", lambda: client(gateway(), psk=b"wrong"), lambda lab: connect(lab, 120)),
    (
        "wrong PSK, main mode",
        lambda: client(gateway(main_mode_group="ciscovpn"), psk=b"wrong", exchange="main"),
        lambda lab: connect(lab, 120),
    ),
    (
        "no proposal",
        lambda: client(gateway(phase1=default_phase1()[:2]), phase1=seed_phase1()),
        connect,
    ),
    (
        "plain PSK",
        lambda: client(
            gateway(group={"xauth": False}), user=None, phase1=default_phase1(AuthMethod.PSK)
        ),
        _then(50),
    ),
    (
        "IPsec over TCP",
        lambda: client(gateway(**SEED, tcp_port=10000, cisco_udp_port=10000), natt="tcp", **SEED),
        over_tcp,
    ),
    ("IPsec over TCP off", lambda: client(gateway(**SEED), natt="tcp", **SEED), over_tcp),
    ("30 % loss", lambda: client(client(gateway(dpd_idle=20)), **TWO), lossy),
    ("mutated replays", lambda: client(gateway()), mutated),
]


def transcript(title: str, lab: Lab) -> None:
    print("##", title)
    for f in lab.capture:
        print("F", f.sender, f.src, f.dst, f.marker, f.tcp, f.data.hex())
    for e in lab.server_events:
        print("S", _plain(e))
    for c in lab.clients.values():
        for e in c.events:
            print("C", c.name, _plain(e))
        print("C-STATS", c.name, sorted(c.engine.stats.items()))
        print("C-STATE", c.name, _plain(c.engine.sessions()), _plain(c.engine.waiting()))
    print("S-STATS", sorted(lab.responder.stats.items()))
    print("S-STATE", _plain(lab.responder.sessions()), _plain(lab.responder.waiting()))


def main() -> None:
    _seed_randomness()
    for title, build, run in SCENARIOS:
        lab = build()
        run(lab)
        transcript(title, lab)


if __name__ == "__main__":
    main()
