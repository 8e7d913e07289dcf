"""The one place that papers over cryptography versions (node-side code imports it).

Nodes run Debian bookworm's python3-cryptography 38.0.4, where TripleDES lives under
``primitives``; the host venv runs a newer release that moved it to ``decrepit`` (the old
path warns there).
"""

from __future__ import annotations

import warnings

try:  # cryptography >= 43
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # cryptography 38 (Debian bookworm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

__all__ = ["TripleDES"]
