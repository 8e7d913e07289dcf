"""The per-session fast paths of helper ike450 against the straightforward forms they
replace: keyed PRF state copies vs one-shot HMAC, libcrypto's modexp vs pow(), the
SA's list-free next_deadline vs min() over every timer."""

from __future__ import annotations

import random

import pytest

from labctl.ike import crypto, keys
from labctl.ike.constants import P1Hash
from labctl.ike.sa import ChildSa, IkeSa, QuickState, Retransmit
from labctl.ike.states import Phase1State, Role

HASHES = (P1Hash.MD5, P1Hash.SHA1, P1Hash.SHA2_256)


@pytest.mark.parametrize("hash_id", HASHES)
@pytest.mark.parametrize("key_len", [0, 1, 16, 20, 32, 63, 64, 65, 200])
def test_keyed_prf_is_hmac(hash_id: int, key_len: int) -> None:
    rng = random.Random(key_len * 7 + hash_id)
    key = rng.randbytes(key_len)
    keyed = crypto.KeyedPrf(hash_id, key)
    for n in (0, 1, 55, 64, 300):
        parts = (rng.randbytes(n), b"", rng.randbytes(3))
        assert keyed(*parts) == crypto.prf(hash_id, key, *parts)
    # copies, not the keyed states themselves: a second call gives the same answer
    assert keyed(b"x") == keyed(b"x") == crypto.prf(hash_id, key, b"x")
    assert key.hex() not in repr(keyed) or not key


def test_phase1_keys_keyed_prfs_match_the_keys() -> None:
    cipher = crypto.ike_cipher(7, 128)
    k = keys.derive_phase1(P1Hash.SHA1, cipher, b"s" * 20, b"g" * 128, b"i" * 8, b"r" * 8)
    assert k.skeyid_d == crypto.prf(P1Hash.SHA1, k.skeyid, b"g" * 128, b"i" * 8, b"r" * 8, b"\0")
    for prf_key, raw in ((k.prf_skeyid, k.skeyid), (k.prf_a, k.skeyid_a), (k.prf_d, k.skeyid_d)):
        assert prf_key(b"m", b"n") == crypto.prf(P1Hash.SHA1, raw, b"m", b"n")
    # the keyed forms give what the byte keys give through the key functions
    assert keys.qm_hash3(2, k.prf_a, 5, b"a", b"b") == keys.qm_hash3(2, k.skeyid_a, 5, b"a", b"b")
    assert keys.keymat(2, k.prf_d, 3, b"\1\2\3\4", b"n", b"m", 36) == keys.keymat(
        2, k.skeyid_d, 3, b"\1\2\3\4", b"n", b"m", 36
    )
    assert k == keys.Phase1Keys(2, cipher, k.skeyid, k.skeyid_d, k.skeyid_a, k.skeyid_e, k.enc_key)


@pytest.mark.parametrize("group", [1, 2, 5, 14])
def test_libcrypto_modexp_is_pow(group: int) -> None:
    """The DH backend (libcrypto's constant-time exponentiation) against Python's pow() on
    the edge values of the peer range and random exponents of the group's length."""
    p = crypto.MODP_PRIMES[group]
    plen = crypto.modp_length(group)
    rng = random.Random(group)
    bits = crypto._POW_EXPONENT_BITS[group]
    for y in (2, 255, 256, p - 2, 1 << (p.bit_length() - 1), rng.randrange(2, p >> 64)):
        x = rng.getrandbits(bits) | (1 << (bits - 1))
        assert crypto._modexp(group, y, x, plen) == pow(y, x, p).to_bytes(plen, "big")
    assert crypto._modexp(group, 5, 0, plen) == (1).to_bytes(plen, "big")
    a = crypto.modp_exchange(group, None, None)
    b = crypto.modp_exchange(group, None, None)
    assert crypto.modp_exchange(group, a, b.public) == crypto.modp_exchange(group, b, a.public)


def _reference_deadline(sa: IkeSa) -> float | None:
    """The list-and-min form next_deadline replaced."""
    times = [r.next_at for r in sa.retransmits.values()]
    times += [t for t in (sa.deadline_for_msg, sa.expires_at, sa.next_heartbeat) if t is not None]
    if sa.rekey_at is not None and not sa.rekey_started:
        times.append(sa.rekey_at)
    if sa.state is Phase1State.ESTABLISHED and sa.dpd_idle is not None:
        if sa.dpd_pending is not None:
            times.append(sa.dpd_sent_at + sa.dpd_retry)
        else:
            times.append(sa.last_rx + sa.dpd_idle)
    times += [q.deadline for q in sa.quick.values() if q.deadline is not None]
    for c in sa.children.values():
        times.append(c.expires_at)
        if c.delete_at is not None:
            times.append(c.delete_at)
        if c.rekey_at is not None and not c.rekeying:
            times.append(c.rekey_at)
    return min(times) if times else None


def test_next_deadline_matches_min_over_every_timer() -> None:
    rng = random.Random(450)

    def maybe() -> float | None:
        return rng.uniform(0, 1000) if rng.random() < 0.5 else None

    for _ in range(500):
        sa = IkeSa(Role.RESPONDER, b"i" * 8, b"r" * 8, "aggressive", ("1.1.1.1", 500),
                   ("2.2.2.2", 500), rng.uniform(0, 100))  # fmt: skip
        sa.state = rng.choice([None, Phase1State.AM_SENT2, Phase1State.ESTABLISHED])
        sa.deadline_for_msg, sa.expires_at, sa.next_heartbeat = maybe(), maybe(), maybe()
        sa.rekey_at, sa.rekey_started = maybe(), rng.random() < 0.3
        sa.dpd_idle = rng.choice([None, 10.0])
        sa.dpd_pending = rng.choice([None, 3])
        sa.dpd_sent_at = rng.uniform(0, 100)
        for i in range(rng.randrange(3)):
            sa.retransmits[str(i)] = Retransmit(str(i), b"", rng.uniform(0, 1000), 1, 3, "x", 0)
        for i in range(rng.randrange(3)):
            sa.quick[i] = QuickState(i, b"n", deadline=maybe())
        for i in range(rng.randrange(3)):
            sa.children[i] = ChildSa(
                i, i, i, "aes", "sha1", None, None, None, 60, None, 0.0,  # type: ignore[arg-type]
                rng.uniform(0, 1000), maybe(), None, delete_at=maybe(), rekeying=rng.random() < 0.3,
            )  # fmt: skip
        assert sa.next_deadline() == _reference_deadline(sa)


def test_events_filled_in_one_step_equal_their_constructors() -> None:
    """child_event / established_event fill every field without __init__ (records.frozen):
    the same value, field for field, as the generated constructor makes."""
    from labctl.ike import ChildSaEstablished, Phase1Established
    from tests.unit.ike.builders import add_client, connect, make_lab

    lab = make_lab()
    add_client(lab)
    connect(lab)
    events = [
        e
        for who in ("server", "c1")
        for cls in (ChildSaEstablished, Phase1Established)
        for e in lab.events_of(who, cls)
    ]
    assert len(events) == 4
    assert {type(e) for e in events} == {ChildSaEstablished, Phase1Established}
    for e in events:
        made = type(e)(**vars(e))
        assert made == e and vars(made) == vars(e) and repr(made) == repr(e)
