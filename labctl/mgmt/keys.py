"""The lab's SSH keys: one client key per lab, one host key per node, all made here.

labctl generates every node's host key itself and injects it before the node starts,
so the host pins it without ever trusting a first connection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private_openssh: bytes = field(repr=False)
    public_openssh: str

    @classmethod
    def generate(cls, comment: str) -> KeyPair:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        return cls(private, f"{public} {comment}")


def write_private_key(path: Path, pair: KeyPair) -> None:
    """Write a private key readable by root only, created with that mode from the start."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pair.private_openssh)
    path.with_suffix(".pub").write_text(pair.public_openssh + "\n")
