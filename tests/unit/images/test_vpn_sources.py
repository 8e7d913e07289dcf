"""The node-side Python the vpn image carries (VPN_SOURCES) is complete: every agent role
and the agent's command line import from those files alone (no site-packages: the venv's
editable install would find what the image lacks, and a pre-shared-key agent needs no
third-party package at import)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from labctl.images.recipes import VPN_SOURCES

ROOT = Path(__file__).resolve().parents[3]


def test_every_agent_role_imports_from_the_vpn_sources_alone(tmp_path) -> None:
    for source in VPN_SOURCES:
        src, dest = ROOT / source, tmp_path / source
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest)
    modules = ("daemon", "cli", "client", "concentrator", "site", "fleet", "fleet_member")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        + "".join(f"import labctl.agent.{m};" for m in modules)
        + "import labctl; assert labctl.__file__.startswith(sys.argv[1]), labctl.__file__"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(tmp_path)],  # -S: no site-packages
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
