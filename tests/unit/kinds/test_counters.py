"""`labctl show FW counters`: rows from nftables' JSON, only the PAT's own table."""

from __future__ import annotations

from labctl.kinds.pat_firewall.nftables import nft_counters

RULESET = {
    "nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "ip", "name": "labctl_pat", "handle": 3}},
        {
            "rule": {
                "table": "labctl_pat",
                "chain": "forward",
                "handle": 8,
                "comment": "no PAT for this protocol",
                "expr": [
                    {"match": {}},
                    {"counter": {"packets": 13, "bytes": 1664}},
                    {"drop": None},
                ],
            }
        },
        {
            "rule": {
                "table": "labctl_pat",
                "chain": "forward",
                "handle": 9,
                "expr": [{"accept": None}],
            }
        },
        {
            "rule": {
                "table": "nat",
                "chain": "DOCKER_OUTPUT",
                "handle": 1,
                "expr": [{"counter": {"packets": 5, "bytes": 300}}],
            }
        },
    ]
}


def test_counted_rules_of_the_pat_table_only() -> None:
    assert nft_counters(RULESET) == [
        {
            "chain": "forward",
            "comment": "no PAT for this protocol",
            "packets": 13,
            "bytes": 1664,
            "handle": 8,
        }
    ]
