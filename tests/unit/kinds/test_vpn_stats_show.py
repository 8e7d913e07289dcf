"""`labctl show NODE stats`: the agent's counters, readable (the --json side is `vpn stats`)."""

from __future__ import annotations

from labctl.kinds import kinds_with_show
from labctl.kinds.vpn_agent import render_vpn_stats


def test_stats_text_puts_drops_log_and_tcp_first() -> None:
    stats = {
        "ike": {"received": 9, "dropped": 7},
        "drops": {"malformed": 4, "undecryptable": 0, "unexpected": 2, "refused": 1, "stale": 0},
        "log": {"suppressed": 312, "rotations": 1},
        "tcp": {"accepted": 5, "refused": 3, "evicted": 1, "connections": [{}, {}]},
    }
    assert render_vpn_stats(stats).splitlines() == [
        "IKE messages dropped: malformed 4, undecryptable 0, unexpected 2, refused 1, stale 0",
        "Event log: 312 lines summarised, 1 rotations",
        "IPsec over TCP: 5 accepted, 3 refused, 1 evicted, 2 open",
        "IKE: dropped 7, received 9",
    ]


def test_a_client_has_no_tcp_server_line() -> None:
    text = render_vpn_stats({"drops": {}, "log": {}, "tcp": {"connections": [{}]}})
    assert text == "IKE messages dropped: -\nEvent log: 0 lines summarised, 0 rotations\n"


def test_stats_is_offered_for_every_vpn_kind() -> None:
    assert kinds_with_show("stats") == ("concentrator", "vpn-client", "vpn-site", "vpn-fleet")
