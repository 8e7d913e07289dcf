"""What the third-party implementations of the VPN kinds share (strongSwan, vpnc).

- `unexpressible`: the validate error for a setting an implementation cannot express
  (names the setting and the implementation; a setting is never silently dropped).
- `explicit`: whether the topology wrote a setting (a default that means "the client's
  own default" is not an error; the same value written out is).
- proposals: our strongSwan-like proposal strings taken apart.
- strongswan.conf, shared by both strongSwan roles.
- the checks every third-party implementation makes (proposals, key export, NAT-T
  versions, names and secrets the rendered files can carry) and the log collector.

Rendered files hold secrets in clear (base64 for swanctl): they go to the node only,
mode 0600, and never to the host's disk (labctl pushes them over SFTP from memory).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .collect import run
from .spec import NodeConfig, NodeContext, RenderedFile

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
# The agent's hashes (agent/settings.py) -- sha256 is HMAC-SHA2-256-128 in ESP on both.
# DES stays here (strongSwan and vpnc have it behind weak switches; the agent does not).
HASHES = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA-256"}
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


# charon's fragment_size is a whole IP datagram; our `ike-fragmentation.size` is the UDP
# payload of a fragment (as our agent cuts them): IPv4 header + UDP header apart.
CHARON_FRAGMENT_OVERHEAD = 20 + 8


def strongswan_conf(
    *,
    keep_alive: int,
    log_level: str,
    cisco_unity: bool,
    responder: bool,
    fragment_size: int | None = None,
    export_keys: bool = False,
) -> RenderedFile:
    """strongswan.conf: Debian's plugin includes, labctl's logging and NAT-T keepalives,
    the IKE fragment size when the topology gives one, and the ESP choice labctl-swan made
    at start (kernel or kernel-libipsec). With the lab-only export_keys, a second log file
    at the levels that dump the keys."""
    from .templates import render_template

    levels = {"debug": 2, "info": 1, "warning": 0, "error": -1}
    text = render_template(
        "labctl.kinds.concentrator",
        "strongswan.conf.j2",
        keep_alive=keep_alive,
        log_level=levels[log_level],
        cisco_unity=cisco_unity,
        responder=responder,
        fragment_size=fragment_size,
        export_keys=export_keys,
        keys_log=KEYS_LOG,
    )
    return RenderedFile(STRONGSWAN_CONF, text.encode(), SECRET_MODE)


def join(values: Iterable[object]) -> str:
    return ",".join(str(v) for v in values)


# swanctl.conf: a group name becomes part of section names (`group-NAME`), where a dot is
# a path separator and spaces, quotes and braces end the name; a user name is an unquoted
# identity. Only what needs no quoting is rendered.
SWANCTL_SECTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SWANCTL_IDENTITY = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")


def check_proposals(
    ctx: NodeContext, implementation: str, lists: Iterable[tuple[tuple[str, ...], list[str]]]
) -> None:
    """Every proposal is one labctl translates to the implementation's names."""
    for path, texts in lists:
        for index, text in enumerate(texts):
            if parse_proposal(text) is None:
                unexpressible(
                    ctx,
                    (*path, str(index)),
                    implementation,
                    f"{text!r} is not a cipher-hash[-modpN] labctl can translate",
                )


def refuse_export_keys(ctx: NodeContext, vpn: Any, implementation: str, why: str) -> None:
    if vpn.debug.export_keys:
        unexpressible(ctx, ("vpn", "debug", "export_keys"), implementation, why)


def charon_fragment_size(vpn: Any) -> int | None:
    """`ike-fragmentation.size` as charon's global fragment_size (the node's one setting,
    as ours is per node), only when the topology wrote it: else charon's own default."""
    fragmentation = getattr(vpn, "ike_fragmentation", None)  # a vpn-site has none
    if fragmentation is None or not explicit(fragmentation, "size"):
        return None
    return int(fragmentation.size) + CHARON_FRAGMENT_OVERHEAD


def refuse_natt_versions(
    ctx: NodeContext, section: Any, path: tuple[str, ...], implementation: str, why: str
) -> None:
    """`nat-t-versions` is our agent's: a third-party daemon announces its own built-in list."""
    if section.nat_t_versions is not None:
        unexpressible(ctx, (*path, "nat_t_versions"), implementation, why)


def check_swanctl_names(
    ctx: NodeContext,
    sections: Iterable[tuple[tuple[str, ...], str]],
    identities: Iterable[tuple[tuple[str, ...], str]],
) -> None:
    """Group names (section names) and user names (identities) swanctl.conf can carry
    unquoted; anything else is refused rather than rendered into a broken file."""
    for path, name in sections:
        if not SWANCTL_SECTION_NAME.match(name):
            unexpressible(
                ctx,
                path,
                "strongswan",
                f"{name!r} as a swanctl.conf section name: use letters, digits, _ and - only",
            )
    for path, name in identities:
        if not SWANCTL_IDENTITY.match(name):
            unexpressible(
                ctx,
                path,
                "strongswan",
                f"{name!r} as a swanctl.conf identity: use letters, digits and _ . @ + - only",
            )


def check_one_line(
    ctx: NodeContext, implementation: str, values: Iterable[tuple[tuple[str, ...], str]]
) -> None:
    """Values rendered as the rest of a config line (vpnc.conf): a line break or NUL would
    end the line and start another directive. The value itself is never shown (it may be
    a secret)."""
    for path, value in values:
        if any(c in value for c in "\r\n\0"):
            unexpressible(
                ctx,
                path,
                implementation,
                "the value contains a line break or NUL, which its one-line config cannot hold",
            )


def log_collector(path: str) -> Callable[[Any, str, bool], tuple[Any, str]]:
    """`show <node> log`: the last lines of a log file the node writes."""

    def collect(handle: Any, node: str, verbose: bool = False) -> tuple[Any, str]:
        text = run(handle, node, f"tail -n {1000 if verbose else 100} {path}")
        return [{"line": line} for line in text.splitlines()], text

    return collect


CHARON_LOG = "/var/log/labctl/charon.log"
# LAB ONLY (vpn.debug.export-keys): charon's key dumps, in the directory our agent writes its
# Wireshark tables to (checks/artifacts.py reads both). The directory is 0700 and the file
# 0600 before charon opens it (charon's filelog has no mode of its own).
KEY_DIR = "/var/log/labctl/keys"
KEYS_LOG = f"{KEY_DIR}/charon-keys.log"
PREPARE_KEYS_LOG = (
    f"umask 077 && mkdir -p {KEY_DIR} && chmod 0700 {KEY_DIR} && touch {KEYS_LOG} "
    f"&& chmod 0600 {KEYS_LOG}"
)


def swan_node_config(
    name: str, swanctl_text: str, vpn: Any, *, cisco_unity: bool, responder: bool
) -> NodeConfig:
    """A strongSwan node's files -- swanctl.conf (0600: it holds the secrets) and
    strongswan.conf -- and the reload that applies them."""
    export_keys = bool(vpn.debug.export_keys)
    prepare = (PREPARE_KEYS_LOG,) if export_keys else ()
    return NodeConfig(
        name,
        (
            RenderedFile(SWANCTL_CONF, swanctl_text.encode(), SECRET_MODE),
            strongswan_conf(
                keep_alive=vpn.nat_keepalive,
                log_level=vpn.log_level,
                cisco_unity=cisco_unity,
                responder=responder,
                fragment_size=charon_fragment_size(vpn),
                export_keys=export_keys,
            ),
        ),
        (*prepare, "labctl-swan reload"),
    )


def swan_sas(handle: Any, node: str) -> tuple[Any, str]:
    """charon's SAs (`swanctl --list-sas --raw`, parsed) and the ESP the node runs."""
    from ..state.swanctl import parse_list_sas

    raw = run(handle, node, "swanctl --list-sas --raw")
    return parse_list_sas(raw), run(handle, node, "labctl-swan esp").strip()
