"""Settings both VPN kinds share (concentrator and vpn-client): proposals, DPD, debugging."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..topology.base import Strict

# strongSwan-like names: phase 1 "3des-md5-modp1024", phase 2 "aes128-sha1".
Proposal = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]

# How a remote-access client authenticates (a concentrator group's `auth`, a client's `auth`)
AuthMode = Literal["psk", "certificate", "hybrid"]


class DpdSettings(Strict):
    interval: int = Field(30, ge=1, description="idle seconds before R-U-THERE")
    retries: int = Field(3, ge=1)
    retry_interval: int = Field(5, ge=1)


class IkeFragmentation(Strict):
    """Cisco IKE fragmentation: announce it (vendor ID with capability c0000000) and send a
    phase-1 message longer than ``size`` bytes as fragments to a peer that announced it."""

    enabled: bool = True
    size: int = Field(576, ge=100, le=65000, description="bytes: longer messages are fragmented")


# NAT-T dialects (labctl.ike.vendor.NattVersion values), best first. Drafts 00/01 never float
# to 4500: IKE and their ESP (behind an 8-byte zero non-IKE marker) share UDP 500.
NattVersionName = Literal["rfc3947", "draft-03", "draft-02n", "draft-02", "draft-01", "draft-00"]
NATT_VERSIONS_HELP = (
    "NAT-T versions to announce/accept, best first (rfc3947, draft-03, draft-02n, draft-02, "
    "draft-01, draft-00); none: rfc3947 and drafts 03/02n/02. Drafts 00/01 keep IKE and ESP "
    "on UDP 500 (ESP behind an 8-byte zero non-IKE marker)"
)


def natt_versions_field() -> list[NattVersionName] | None:
    return Field(None, min_length=1, description=NATT_VERSIONS_HELP)


class DebugSettings(Strict):
    export_keys: bool = Field(
        False,
        description="LAB ONLY: write IKE and ESP keys in Wireshark's format inside the node "
        "(/var/log/labctl/keys/) so captures can be decrypted",
    )
