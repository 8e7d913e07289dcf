"""LAB ONLY: Wireshark key tables, written inside the node when `debug.export-keys` is on.

Off by default. The files let tshark decrypt a capture of the lab (the independent check of
our crypto); they never leave the node unless a test copies them out on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..ike import ChildSaEstablished, Phase1Established
from ..ike.keyexport import esp_sa_lines_for, ikev1_line_for

KEY_DIR = Path("/var/log/labctl/keys")


class KeyLog:
    def __init__(self, directory: Path = KEY_DIR):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ikev1 = directory / "ikev1_decryption_table"
        self.esp = directory / "esp_sa"

    def _append(self, path: Path, line: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line + "\n")

    def phase1(self, event: Phase1Established) -> None:
        self._append(self.ikev1, ikev1_line_for(event))

    def child(
        self, event: ChildSaEstablished, *, local_behind_nat: bool, peer_behind_nat: bool
    ) -> None:
        lines = esp_sa_lines_for(
            event, local_behind_nat=local_behind_nat, peer_behind_nat=peer_behind_nat
        )
        for line in lines:
            self._append(self.esp, line)
