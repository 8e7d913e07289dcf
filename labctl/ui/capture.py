"""A link's capture for download: tcpdump for a few seconds (the same LinkCapture as
`labctl capture`), then a zip with the pcap and, when a node exports them, the Wireshark
key tables as a configuration folder (unzip, WIRESHARK_CONFIG_DIR=wireshark tshark -r ...)."""

from __future__ import annotations

import io
import os
import tempfile
import time
import zipfile
from pathlib import Path

from ..checks.artifacts import (
    KEY_TABLES,
    WIRESHARK_PREFERENCES,
    LinkCapture,
    capture_target,
    key_exporting_nodes,
    read_key_tables,
)
from .labs import LabRegistry

MAX_SECONDS = 120.0
README = """Capture of link {link} of lab {lab}, {seconds:g} s from {started}.

  tshark -r {pcap}
{keys}"""
KEYS_README = """
The lab's IKE and ESP keys (lab-only vpn.debug.export-keys) are in wireshark/:
  WIRESHARK_CONFIG_DIR=wireshark tshark -r {pcap}
decrypts the IKE exchanges and the ESP in it (or copy the two files into your
Wireshark profile: ikev1_decryption_table, esp_sa).
"""


def capture_zip(labs: LabRegistry, lab: str, target_text: str, seconds: float) -> bytes:
    seconds = min(max(seconds, 0.5), MAX_SECONDS)
    opened = labs.lab(lab)
    target = capture_target(opened.handle.lab, target_text)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    with tempfile.TemporaryDirectory(prefix="labctl-ui-capture-") as folder:
        pcap = Path(folder) / "capture.pcap"
        fd = os.open(pcap, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            capture = LinkCapture(lab, target, fd).start()
            try:
                time.sleep(seconds)
            finally:
                capture.stop()
        finally:
            os.close(fd)
        tables = {}
        if key_exporting_nodes(opened.handle.lab):
            with opened.lock:
                tables = read_key_tables(opened.handle)
        name = f"{lab}-{target.link}"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(pcap, f"{name}.pcap")
            for table in KEY_TABLES:
                if table in tables:
                    archive.writestr(f"wireshark/{table}", tables[table])
            if tables:
                archive.writestr("wireshark/preferences", WIRESHARK_PREFERENCES)
            archive.writestr(
                "README.txt",
                README.format(
                    link=target.link,
                    lab=lab,
                    seconds=seconds,
                    started=started,
                    pcap=f"{name}.pcap",
                    keys=KEYS_README.format(pcap=f"{name}.pcap") if tables else "",
                ),
            )
        return buffer.getvalue()
