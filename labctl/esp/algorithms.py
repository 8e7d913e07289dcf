"""ESP cipher and integrity algorithm descriptions (names, sizes, IKEv1 numbers).

Sizes: RFC 2451 (3DES-CBC), RFC 3602 (AES-CBC), RFC 2410 (NULL), RFC 2403 (HMAC-MD5-96),
RFC 2404 (HMAC-SHA1-96), RFC 4868 (HMAC-SHA2-256-128). IKEv1 numbers: IPsec DOI (RFC 2407)
ESP transform IDs and the "Authentication Algorithm" SA attribute (class 5).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CipherSpec:
    """An ESP encryption transform. ``block_size`` is the CBC block (1 for NULL). The
    contexts come from :func:`labctl.libcrypto.cbc_context` by ``name``."""

    name: str
    key_len: int
    block_size: int
    iv_len: int
    ikev1_transform_id: int
    ikev1_key_bits: int | None

    @property
    def is_null(self) -> bool:
        return self.name == "null"

    @property
    def alignment(self) -> int:
        """Length the encrypted part must be a multiple of (RFC 4303 §2.4: at least 4)."""
        return max(self.block_size, 4)


@dataclass(frozen=True)
class IntegritySpec:
    """An ESP integrity transform: HMAC with ``digest`` truncated to ``icv_len`` bytes."""

    name: str
    key_len: int
    icv_len: int
    digest: str | None
    ikev1_auth_alg: int | None

    @property
    def is_none(self) -> bool:
        return self.digest is None


ESP_3DES, ESP_NULL, ESP_AES = 3, 11, 12  # RFC 2407 §4.4.4 / RFC 3602

CIPHERS: dict[str, CipherSpec] = {
    c.name: c
    for c in (
        CipherSpec("3des-cbc", 24, 8, 8, ESP_3DES, None),
        CipherSpec("aes128-cbc", 16, 16, 16, ESP_AES, 128),
        CipherSpec("aes192-cbc", 24, 16, 16, ESP_AES, 192),
        CipherSpec("aes256-cbc", 32, 16, 16, ESP_AES, 256),
        CipherSpec("null", 0, 1, 0, ESP_NULL, None),
    )
}

INTEGRITIES: dict[str, IntegritySpec] = {
    i.name: i
    for i in (
        IntegritySpec("hmac-md5-96", 16, 12, "md5", 1),
        IntegritySpec("hmac-sha1-96", 20, 12, "sha1", 2),
        IntegritySpec("hmac-sha2-256-128", 32, 16, "sha256", 5),
        # Encryption-only ESP: for RFC 3602 test vectors and debugging, never negotiated.
        IntegritySpec("none", 0, 0, None, None),
    )
}


def cipher_spec(name: str | CipherSpec) -> CipherSpec:
    if isinstance(name, CipherSpec):
        return name
    try:
        return CIPHERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown ESP cipher {name!r}; known: {', '.join(CIPHERS)}") from None


def integrity_spec(name: str | IntegritySpec) -> IntegritySpec:
    if isinstance(name, IntegritySpec):
        return name
    try:
        return INTEGRITIES[name.lower()]
    except KeyError:
        known = ", ".join(INTEGRITIES)
        raise ValueError(f"unknown ESP integrity {name!r}; known: {known}") from None


def cipher_for_ikev1(transform_id: int, key_bits: int | None = None) -> CipherSpec:
    """Map a Quick Mode ESP transform ID (+ Key Length attribute) to a cipher."""
    if transform_id == ESP_AES:
        bits = key_bits or 128  # RFC 3602 §5.1: AES key length attribute; 128 is the minimum
        for spec in CIPHERS.values():
            if spec.ikev1_transform_id == ESP_AES and spec.ikev1_key_bits == bits:
                return spec
        raise ValueError(f"ESP_AES with unsupported key length {bits} bits")
    for spec in CIPHERS.values():
        if spec.ikev1_transform_id == transform_id:
            return spec
    raise ValueError(f"unsupported ESP transform ID {transform_id}")


def integrity_for_ikev1(auth_alg: int) -> IntegritySpec:
    """Map the IPsec SA "Authentication Algorithm" attribute (class 5) to an integrity."""
    for spec in INTEGRITIES.values():
        if spec.ikev1_auth_alg == auth_alg:
            return spec
    raise ValueError(f"unsupported ESP authentication algorithm {auth_alg}")
