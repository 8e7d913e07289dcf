"""A lab's certificates on the host (`auth: certificate | hybrid`): the lab CA, made at the
first `up` or push that needs it, and one certificate per node that signs, all kept in the
lab's state folder (0700; keys 0600) and removed with it by `down`.

Render stays pure (golden-tested, no state): the files a node needs come in here, at push
time, next to its rendered ones -- /etc/labctl/pki/ca.pem, node.pem and node.key (0600).
Key material is never printed or logged; `plan` output names paths only.

Node certificates: CN = the node; a client's OU = its VPN group (the Cisco VPN Client
sends it, the concentrator takes the group from it).  A client with `certificate-ca:
NAME` other than `lab` gets its certificate from a CA of that name that labctl makes and
nobody trusts: the refusal can be seen on purpose (a hybrid client with one trusts that CA
instead of the lab's, and refuses the concentrator's certificate).  A certificate whose
subject or issuer no longer matches the topology (group renamed, CA changed) is issued
again.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import replace
from pathlib import Path

from ..agent.pki_files import CA_FILE, CERT_FILE, KEY_FILE, PKI_DIR
from ..kinds.concentrator.model import ConcentratorNode
from ..kinds.spec import NodeConfig, RenderedFile
from ..kinds.vpn_client.model import VpnClientNode
from ..topology import Lab

LAB_CA = "lab"
_guard = threading.Lock()  # pushes run in parallel; the CA is made once


def needs(lab: Lab, node: str) -> tuple[str | None, str | None, str | None]:
    """(the CA it trusts, the CA that issues its own certificate, its OU); Nones: none."""
    model = lab.node(node)
    if isinstance(model, ConcentratorNode):
        if any(g.auth != "psk" for g in model.vpn.groups.values()):
            return LAB_CA, LAB_CA, None
    elif isinstance(model, VpnClientNode):
        if model.vpn.auth == "certificate":  # checks the gateway with the lab CA
            return LAB_CA, model.vpn.certificate_ca, model.vpn.group
        if model.vpn.auth == "hybrid":  # no certificate; the root it trusts
            return model.vpn.certificate_ca, None, None
    return None, None, None


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file keeps its mode otherwise
        handle.write(data)


class LabPki:
    """The certificates of one lab, in ``directory`` (the state folder's pki/)."""

    def __init__(self, lab_name: str, directory: Path):
        self.lab = lab_name
        self.directory = directory

    def _folder(self) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        return self.directory

    def _load(self, stem: str):
        """The stored key and certificate ``stem``, or None when absent or not a pair."""
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        from ..ike.pki import Issued

        cert_file, key_file = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        try:
            cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
            key = load_pem_private_key(key_file.read_bytes(), password=None)
        except (OSError, ValueError):
            return None
        if not isinstance(key, rsa.RSAPrivateKey) or key.public_key() != cert.public_key():
            return None
        return Issued(key, cert)

    def _store(self, stem: str, issued) -> None:
        folder = self._folder()
        _write_secret(folder / f"{stem}.key", issued.key_pem())
        (folder / f"{stem}.pem").write_bytes(issued.certificate_pem())

    def ca(self, name: str = LAB_CA):
        """The CA called ``name`` (the lab's own, or another one nobody trusts)."""
        from ..ike.pki import Issued, LabCa

        stem = f"ca-{name}"
        found = self._load(stem)
        if found is not None:
            return LabCa(Issued(found.key, found.certificate))
        title = self.lab if name == LAB_CA else f"{self.lab} {name}"
        ca = LabCa.create(title, dt.datetime.now(dt.UTC))
        self._store(stem, ca.issued)
        return ca

    def node(self, node: str, issuer: str, unit: str | None):
        """The node's certificate from ``issuer``, CN = node, OU = ``unit``."""
        from ..ike.pki import node_subject

        stem = f"node-{node}"
        ca = self.ca(issuer)
        found = self._load(stem)
        wanted = node_subject(node, unit)
        if (
            found is not None
            and found.certificate.subject == wanted
            and found.certificate.issuer == ca.certificate.subject
        ):
            return found
        issued = ca.issue(node, dt.datetime.now(dt.UTC), unit=unit)
        self._store(stem, issued)
        return issued

    def files_for(self, lab: Lab, node: str) -> tuple[RenderedFile, ...]:
        """What the node's agent reads: the lab CA, and its own certificate and key."""
        trusted, issuer, unit = needs(lab, node)
        if trusted is None:
            return ()
        ca_path, cert_path, key_path = _paths(lab, node)
        with _guard:
            root = _pem(self.ca(trusted).certificate)
            files = [RenderedFile(ca_path, root, 0o644)]
            if issuer is not None:
                own = self.node(node, issuer, unit)
                files.append(RenderedFile(cert_path, own.certificate_pem(), 0o644))
                files.append(RenderedFile(key_path, own.key_pem(), 0o600))
        return tuple(files)


def _paths(lab: Lab, node: str) -> tuple[str, str, str]:
    """Where the node's software reads (CA, certificate, key): swanctl's own folders for a
    strongSwan node (`swanctl --load-all` loads them), else our agent's."""
    if getattr(lab.node(node), "implementation", "ours") == "strongswan":
        return (
            "/etc/swanctl/x509ca/labctl-ca.pem",
            "/etc/swanctl/x509/labctl-node.pem",
            "/etc/swanctl/private/labctl-node.pem",
        )
    return (f"{PKI_DIR}/{CA_FILE}", f"{PKI_DIR}/{CERT_FILE}", f"{PKI_DIR}/{KEY_FILE}")


def _pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def planned(lab: Lab, node: str) -> str:
    """What a dry run says about a node's certificate files (nothing is made for it)."""
    trusted, issuer, _ = needs(lab, node)
    if trusted is None:
        return ""
    what = "the CA certificate" if issuer is None else "the CA certificate, its certificate and key"
    return f" + {what} (the lab CA, from the lab's state folder)"


def with_certificates(lab: Lab, node: str, state_directory: Path, config: NodeConfig) -> NodeConfig:
    """``config`` plus the node's certificate files (none for a node without `auth`)."""
    files = LabPki(lab.name, state_directory / "pki").files_for(lab, node)
    return replace(config, files=(*config.files, *files)) if files else config
