"""What a fresh interpreter holds after importing some modules (start-up cost checks)."""

from __future__ import annotations

import json
import subprocess
import sys


def modules_after_import(*modules: str) -> set[str]:
    """The names in ``sys.modules`` of a new Python process once it imported ``modules``."""
    return modules_after_running("".join(f"import {m}\n" for m in modules))


def modules_after_running(code: str) -> set[str]:
    """The names in ``sys.modules`` of a new Python process once it ran ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))
