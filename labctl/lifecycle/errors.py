"""Errors of lab lifecycle operations: each is one line for the user, never a traceback."""

from __future__ import annotations

from ..errors import LabctlError


class LabError(LabctlError):
    """Base of the errors below; the CLI prints the message and exits 1."""


class LabUpError(LabError):
    pass


class LabBusy(LabError):
    """Another labctl holds the lab's lock."""


class PushError(LabError):
    """A push did not apply; the message says what failed and what the node runs now."""
