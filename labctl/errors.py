"""The root of every error a user can cause or meet.

The CLI catches `LabctlError` and prints one line (plus its hint), exits with `status`, and
shows a traceback only with `--debug`. Anything else that escapes is a labctl bug: one line
and a crash report (cli/main.py). Every package's user-facing errors derive from this one.
"""

from __future__ import annotations


class LabctlError(Exception):
    """An error for the user. `status`: the exit status; `hint`: what to do about it."""

    status: int = 1
    hint: str | None = None
    # TopologyError's lines already start with file:line; the rest read "labctl: ...".
    prefix: str = "labctl: "

    def __init__(self, *args: object, hint: str | None = None, status: int | None = None):
        super().__init__(*args)
        if hint is not None:
            self.hint = hint
        if status is not None:
            self.status = status

    def user_message(self) -> str:
        text = f"{self.prefix}{self}"
        return f"{text} (hint: {self.hint})" if self.hint else text
