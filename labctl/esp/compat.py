"""cryptography version compatibility, kept in one place for the ESP package.

Nodes run Debian bookworm's cryptography 38.0.4 (TripleDES under ``primitives``); the host
venv runs 46 where TripleDES moved to ``decrepit`` and the old path warns.
"""

from __future__ import annotations

try:  # cryptography >= 43
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - exercised under the system python (38.0.4)
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

__all__ = ["TripleDES"]
