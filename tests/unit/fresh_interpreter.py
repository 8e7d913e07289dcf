"""What a fresh interpreter holds after importing some modules (start-up cost checks)."""

from __future__ import annotations

import json
import subprocess
import sys


def modules_after_import(*modules: str) -> set[str]:
    """The names in ``sys.modules`` of a new Python process once it imported ``modules``."""
    code = (
        "import json, sys;"
        + "".join(f"import {m};" for m in modules)
        + "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))
