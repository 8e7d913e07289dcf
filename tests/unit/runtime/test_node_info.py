"""A node's management address comes from the label labctl set at create, not from Docker."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from types import SimpleNamespace

import pytest

from labctl.runtime.docker_runtime import _info


def container(labels: dict[str, str], networks: dict | None = None) -> SimpleNamespace:
    attrs = {
        "Config": {"Labels": labels, "Image": "labctl/node:x"},
        "State": {"Status": "running", "Pid": 42},
        # What Docker reports for a --network none container: no address anywhere.
        "NetworkSettings": {"Networks": networks or {"none": {"IPAddress": ""}}},
    }
    return SimpleNamespace(attrs=attrs, name="labctl-lab-pix")


def test_the_label_gives_address_and_prefix() -> None:
    info = _info(
        container({"labctl.lab": "lab", "labctl.node": "pix", "labctl.mgmt-ipv4": "172.30.0.4/24"})
    )
    assert info.mgmt == IPv4Interface("172.30.0.4/24")
    assert info.mgmt_ipv4 == IPv4Address("172.30.0.4")
    assert (info.lab, info.node, info.pid) == ("lab", "pix", 42)


@pytest.mark.parametrize("labels", [{}, {"labctl.mgmt-ipv4": "not an address"}])
def test_no_usable_label_means_no_address_even_if_docker_has_one(labels: dict) -> None:
    # A container of an older labctl (on a Docker network) or someone else's label.
    info = _info(container(labels, {"labctl-lab-mgmt": {"IPAddress": "172.30.0.9"}}))
    assert info.mgmt is None and info.mgmt_ipv4 is None
