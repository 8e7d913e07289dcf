"""A client's lifetimes come from the topology (vpn.ike-lifetime / vpn.ipsec-lifetime)
through the rendered vpn.json into the engine's proposals."""

from __future__ import annotations

from pathlib import Path

from labctl.agent.client import build_initiator_config
from labctl.agent.settings import ClientSettings, parse_settings
from labctl.render import vpn_agent_config
from labctl.topology import load_lab

ROOT = Path(__file__).resolve().parents[3]


def test_client_lifetimes_reach_the_engine() -> None:
    data = vpn_agent_config(load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml"), "client1")
    assert (data["vpn"]["ike_lifetime"], data["vpn"]["ipsec_lifetime"]) == (86400, 28800)
    assert data["vpn"]["ipsec_lifetime_kb"] is None
    data["vpn"]["ike_lifetime"], data["vpn"]["ipsec_lifetime"] = 3600, 600
    data["vpn"]["ipsec_lifetime_kb"] = 5000
    settings = parse_settings(data)
    assert isinstance(settings, ClientSettings)
    config = build_initiator_config(settings)
    assert {p.lifetime for p in config.phase1} == {3600}
    assert {(p.lifetime, p.lifetime_kb) for p in config.phase2} == {(600, 5000)}


def test_a_group_kilobyte_lifetime_reaches_the_concentrators_policy() -> None:
    from labctl.agent.concentrator import build_policy
    from labctl.agent.settings import ConcentratorSettings

    data = vpn_agent_config(load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml"), "vpn3000")
    for group in data["vpn"]["groups"].values():
        group["ipsec_lifetime_kb"] = 2000
    data["vpn"]["initiate_rekeys"] = True
    settings = parse_settings(data)
    assert isinstance(settings, ConcentratorSettings)
    policy = build_policy(settings)
    assert policy.ipsec_lifetime_kb == 2000 and policy.initiate_rekeys
    assert {p.lifetime_kb for p in policy.phase2} == {2000}


def test_ike_fragmentation_settings_reach_both_engines() -> None:
    from labctl.agent.concentrator import build_policy

    lab = load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml")
    client = vpn_agent_config(lab, "client1")
    assert client["vpn"]["ike_fragmentation"] == {"enabled": False, "size": 576}
    off = build_initiator_config(parse_settings(client))  # type: ignore[arg-type]
    assert not off.vendor.fragmentation
    client["vpn"]["ike_fragmentation"] = {"enabled": True, "size": 1200}
    on = build_initiator_config(parse_settings(client))  # type: ignore[arg-type]
    assert on.vendor.fragmentation and on.fragment_size == 1200
    gateway = vpn_agent_config(lab, "vpn3000")
    assert gateway["vpn"]["ike_fragmentation"] == {"enabled": True, "size": 576}
    policy = build_policy(parse_settings(gateway))  # type: ignore[arg-type]
    assert policy.vendor.fragmentation and policy.fragment_size == 576


def test_rekey_late_clients_reaches_the_concentrators_policy() -> None:
    """vpn.rekey-late-clients (the vpnc quirk) in rekey-same-ports: a 95 % late rekey."""
    from labctl.agent.concentrator import build_policy
    from labctl.agent.settings import ConcentratorSettings

    for name, margin in (("rekey-same-ports.yaml", 0.05), ("nat-t-two-clients.yaml", None)):
        data = vpn_agent_config(load_lab(ROOT / "topologies" / name), "vpn3000")
        settings = parse_settings(data)
        assert isinstance(settings, ConcentratorSettings)
        policy = build_policy(settings)
        assert policy.late_rekey_margin == margin and not policy.initiate_rekeys


def test_nat_t_versions_reach_both_engines() -> None:
    """`nat-t-versions` (null: the engine's default list) through vpn.json to the engines;
    a value the agent does not know is a settings error naming the setting."""
    import pytest

    from labctl.agent.concentrator import build_policy
    from labctl.agent.settings import SettingsError
    from labctl.ike import InitiatorConfig, NattVersion, ResponderPolicy

    lab = load_lab(ROOT / "topologies" / "nat-t-draft-01.yaml")
    client = vpn_agent_config(lab, "client1")
    assert client["vpn"]["transparent_tunneling"]["nat_t_versions"] == ["draft-01"]
    config = build_initiator_config(parse_settings(client))  # type: ignore[arg-type]
    assert config.natt_versions == (NattVersion.DRAFT_01,)
    client["vpn"]["transparent_tunneling"]["nat_t_versions"] = None
    config = build_initiator_config(parse_settings(client))  # type: ignore[arg-type]
    assert config.natt_versions == InitiatorConfig.natt_versions
    gateway = vpn_agent_config(lab, "vpn3000")
    policy = build_policy(parse_settings(gateway))  # type: ignore[arg-type]
    assert policy.natt_versions[-2:] == (NattVersion.DRAFT_01, NattVersion.DRAFT_00)
    gateway["vpn"]["nat_transparency"]["nat_t_versions"] = None
    policy = build_policy(parse_settings(gateway))  # type: ignore[arg-type]
    assert policy.natt_versions == ResponderPolicy.natt_versions
    gateway["vpn"]["nat_transparency"]["nat_t_versions"] = ["draft-99"]
    with pytest.raises(SettingsError, match="nat_t_versions: 'draft-99' is not one of"):
        parse_settings(gateway)


def test_max_sessions_reaches_the_concentrators_hooks() -> None:
    """vpn.max-sessions: the Concurrent Sessions Limit through vpn.json to the hooks, which
    refuse a session once that many are active (before taking a pool address), and to a
    reload."""
    import dataclasses

    from labctl.agent.concentrator import ConcentratorHooks
    from labctl.agent.settings import ConcentratorSettings
    from labctl.ike import Refused, SaHandle, SessionContext

    data = vpn_agent_config(load_lab(ROOT / "topologies" / "nat-t-two-clients.yaml"), "vpn3000")
    assert data["vpn"]["max_sessions"] == 100  # the seed's VPN 3000
    data["vpn"]["max_sessions"] = 2
    settings = parse_settings(data)
    assert isinstance(settings, ConcentratorSettings) and settings.max_sessions == 2
    active = [0]
    hooks = ConcentratorHooks(settings, lambda: active[0])
    group = next(iter(settings.groups))

    def ask(n: int):
        handle = SaHandle(n.to_bytes(8, "big"), bytes(8))
        return hooks.assign_address(SessionContext(handle, group, f"u{n}", ("1.2.3.4", 500)))

    assert ask(1).address is not None
    active[0] = 2
    refused = ask(2)
    assert refused == Refused("Concurrent Sessions Limit (2) reached")
    assert len(hooks.pools[group].in_use) == 1  # the refusal took no address
    hooks.update(dataclasses.replace(settings, max_sessions=3), dict(hooks.pools))
    assert ask(3).address is not None
