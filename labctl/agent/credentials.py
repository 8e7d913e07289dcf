"""A node's certificate material, as `labctl up` / `labctl push` put it in (never rendered:
render is pure, the lab CA lives in the lab's state folder on the host): the lab CA's
certificate, and for an end that signs its own certificate and key (mode 0600).  Only
what `auth: certificate | hybrid` needs is read, and only when it is needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .pki_files import CA_FILE, CERT_FILE, KEY_FILE, PKI_DIR
from .settings import SettingsError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from ..ike.pki import Issued

__all__ = ["CA_FILE", "CERT_FILE", "KEY_FILE", "PKI_DIR", "Credentials", "load_credentials"]


@dataclass(frozen=True)
class Credentials:
    ca: Certificate = field(repr=False)
    own: Issued | None = field(default=None, repr=False)


def _read(directory: Path, name: str, why: str) -> bytes:
    path = directory / name
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(
            f"{why} needs {path} (labctl up/push installs it): {exc.strerror or exc}"
        ) from None


def load_credentials(why: str, own: bool, directory: str | Path = PKI_DIR) -> Credentials:
    """The CA certificate, and with ``own`` our certificate and key; a missing or garbled
    file is a SettingsError naming it (never its contents)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from ..ike.pki import Issued

    folder = Path(directory)

    def certificate(name: str) -> x509.Certificate:
        data = _read(folder, name, why)
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError:
            raise SettingsError(f"{folder / name}: not a PEM certificate") from None

    ca = certificate(CA_FILE)
    if not own:
        return Credentials(ca)
    cert = certificate(CERT_FILE)
    data = _read(folder, KEY_FILE, why)
    try:
        key = load_pem_private_key(data, password=None)
    except ValueError:
        raise SettingsError(f"{folder / KEY_FILE}: not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingsError(f"{folder / KEY_FILE}: not an RSA key")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise SettingsError(f"{folder / KEY_FILE} is not the key of {folder / CERT_FILE}")
    return Credentials(ca, Issued(key, cert))
