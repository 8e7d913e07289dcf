"""What the third-party implementations of the VPN kinds share (strongSwan, vpnc).

- `unexpressible`: the validate error for a setting an implementation cannot express
  (names the setting and the implementation; a setting is never silently dropped).
- `explicit`: whether the topology wrote a setting (a default that means "the client's
  own default" is not an error; the same value written out is).
- proposals: our strongSwan-like proposal strings taken apart.
- strongswan.conf, shared by both strongSwan roles.

Rendered files hold secrets in clear (base64 for swanctl): they go to the node only,
mode 0600, and never to the host's disk (labctl pushes them over SFTP from memory).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .spec import NodeContext, RenderedFile

STRONGSWAN_IMAGE = "strongswan"  # the image role of every third-party implementation
SWANCTL_CONF = "/etc/swanctl/swanctl.conf"
STRONGSWAN_CONF = "/etc/strongswan.conf"
SECRET_MODE = 0o600

# Our proposal names (strongSwan's own syntax): cipher-hash[-modpN]
CIPHERS = {
    "3des": "3DES-168",
    "des": "DES-56",
    "aes128": "AES-128",
    "aes192": "AES-192",
    "aes256": "AES-256",
}
HASHES = {"md5": "MD5", "sha1": "SHA1"}
DH_GROUPS = {"modp768": 1, "modp1024": 2, "modp1536": 5, "modp2048": 14}


@dataclass(frozen=True)
class Proposal:
    cipher: str
    hashing: str
    dh: str | None  # "modp1024" or None


def parse_proposal(text: str) -> Proposal | None:
    """'3des-md5-modp1024' -> its parts; None when a part is not one the lab knows."""
    parts = text.split("-")
    if len(parts) not in (2, 3) or parts[0] not in CIPHERS or parts[1] not in HASHES:
        return None
    dh = parts[2] if len(parts) == 3 else None
    if dh is not None and dh not in DH_GROUPS:
        return None
    return Proposal(parts[0], parts[1], dh)


def explicit(model: BaseModel, field: str) -> bool:
    """The topology wrote this field (it is not the model's default)."""
    return field in model.model_fields_set


def unexpressible(ctx: NodeContext, path: tuple[str, ...], implementation: str, why: str) -> None:
    """The error's path names the setting; the message names the implementation."""
    ctx.error(path, f"implementation {implementation} cannot express this setting: {why}")


def no_certificates(ctx: NodeContext, path: tuple[str, ...], implementation: str, auth: str):
    """labctl renders no certificates for third-party implementations (yet): psk only."""
    if auth != "psk":
        why = f"auth: {auth} is rendered for labctl's agent only (psk here)"
        unexpressible(ctx, path, implementation, why)


def secret_text(value: Any) -> str:
    """A SecretValue's text; "" for an optional one left out (validation says if needed)."""
    return "" if value is None else value.get_secret_value()


def b64_secret(value: str) -> str:
    """swanctl's base64 form (0s...): no quoting or escaping of the secret needed."""
    return "0s" + base64.b64encode(value.encode()).decode()


def seconds(value: int) -> str:
    return f"{value}s"


def strongswan_conf(
    *, keep_alive: int, log_level: str, cisco_unity: bool, responder: bool
) -> RenderedFile:
    """strongswan.conf: Debian's plugin includes, labctl's logging and NAT-T keepalives,
    and the ESP choice labctl-swan made at start (kernel or kernel-libipsec)."""
    from .templates import render_template

    levels = {"debug": 2, "info": 1, "warning": 0, "error": -1}
    text = render_template(
        "labctl.kinds.concentrator",
        "strongswan.conf.j2",
        keep_alive=keep_alive,
        log_level=levels[log_level],
        cisco_unity=cisco_unity,
        responder=responder,
    )
    return RenderedFile(STRONGSWAN_CONF, text.encode(), SECRET_MODE)


def join(values: Iterable[object]) -> str:
    return ",".join(str(v) for v in values)
