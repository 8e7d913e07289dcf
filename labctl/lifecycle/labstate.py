"""Host-side record of a lab: its key pair, pinned host keys and a small JSON record.

Lives in state_dir(lab) (root-only, 0700) and is removed by `down`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabctlError
from ..mgmt.keys import KeyPair, write_private_key
from ..naming import LAB_NAME_PATTERN, STATE_MARKER, state_dir, state_root

_record_guard = threading.RLock()


class LabStateError(LabctlError):
    """The lab's state directory cannot be used (it is not labctl's)."""


@dataclass(frozen=True)
class LabState:
    name: str
    directory: Path

    @property
    def key_file(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def record_file(self) -> Path:
        return self.directory / "lab.json"

    @classmethod
    def of(cls, lab: str) -> LabState:
        return cls(lab, state_dir(lab))

    @property
    def marker(self) -> Path:
        return self.directory / STATE_MARKER

    def create(self) -> None:
        """Make the directory (root-only) and mark it as labctl's, so `down` may remove it."""
        if self.directory.exists() and not self.is_ours():
            raise LabStateError(
                f"{self.directory} exists but labctl did not make it (no {STATE_MARKER}); "
                "move it away or choose another lab name"
            )
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory.chmod(0o700)
        self.marker.write_text(f"labctl state of lab {self.name}\n")

    def create_client_key(self) -> KeyPair:
        pair = KeyPair.generate(f"labctl-{self.name}")
        self.create()
        write_private_key(self.key_file, pair)
        return pair

    def public_key(self) -> str:
        return self.key_file.with_suffix(".pub").read_text().strip()

    def pin_host_keys(self, entries: dict[str, str]) -> None:
        """entries: mgmt address -> 'ssh-ed25519 AAAA...' public host key."""
        lines = [f"{address} {key.split()[0]} {key.split()[1]}" for address, key in entries.items()]
        self.known_hosts.write_text("\n".join(lines) + "\n")

    @property
    def host_keys_file(self) -> Path:
        return self.directory / "host_keys.json"

    def save_host_keys(self, keys: dict[str, str]) -> None:
        """node -> public host key, kept so a node whose address changes can be re-pinned."""
        self.host_keys_file.write_text(json.dumps(keys, indent=2, sort_keys=True) + "\n")

    def host_keys(self) -> dict[str, str]:
        return json.loads(self.host_keys_file.read_text())

    def write_record(self, record: dict) -> None:
        """Replace the record atomically: a reader never sees half a file, and a record
        present means `up` finished."""
        temporary = self.record_file.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, self.record_file)

    def record_pushed(self, digests: dict[str, str]) -> None:
        """Note the configuration digests of nodes just pushed (if `up` recorded the lab)."""
        with _record_guard:  # up pushes nodes from several threads
            record = self.read_record()
            if record is None:
                return
            record["config_digests"] = {**record.get("config_digests", {}), **digests}
            self.write_record(record)

    @property
    def digest_key_file(self) -> Path:
        return self.directory / "digest.key"

    def digest_key(self) -> bytes:
        """The lab's random key for configuration digests (made on first use, root-only)."""
        with _record_guard:  # nodes are pushed from several threads: one key for all
            try:
                return bytes.fromhex(self.digest_key_file.read_text().strip())
            except (OSError, ValueError):
                pass
            key = secrets.token_bytes(32)
            fd = os.open(self.digest_key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key.hex() + "\n")
            return key

    def read_record(self) -> dict | None:
        try:
            return json.loads(self.record_file.read_text())
        except (OSError, ValueError):
            return None

    def exists(self) -> bool:
        return self.directory.exists()

    def is_ours(self) -> bool:
        """A real directory (not a symlink) directly under the state root, with our marker."""
        return (
            self.directory.parent == state_root()
            and self.directory.is_dir()
            and not self.directory.is_symlink()
            and self.marker.is_file()
        )

    def remove(self) -> bool:
        """Remove the lab's state directory if labctl made it; never anything else."""
        if not self.is_ours():
            return False
        shutil.rmtree(self.directory)
        return True


def known_state_labs() -> set[str]:
    """Labs with a state directory labctl made (other folders under the root are ignored)."""
    root = state_root()
    if not root.is_dir():
        return set()
    return {
        p.name
        for p in root.iterdir()
        if re.fullmatch(LAB_NAME_PATTERN, p.name) and LabState.of(p.name).is_ours()
    }
