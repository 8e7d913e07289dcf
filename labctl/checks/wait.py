"""Waiting for an expectation: poll until it holds or its deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from ..mgmt.ssh import MgmtError
from ..state import ShowError
from ..topology.checks_model import Expectation
from ..topology.matchers import UnknownSavedValue
from .evaluate import Outcome, Probe, evaluate

POLL_INTERVAL = 1.0


def wait_for(
    expectation: Expectation,
    probe: Probe,
    lab_name: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    saved: Mapping[str, Any] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> tuple[Outcome, float]:
    """(last outcome, seconds waited). Errors reading state count as 'not yet'.
    on_outcome sees every poll's outcome (live progress)."""
    start = clock()
    deadline = start + expectation.within
    while True:
        try:
            outcome = evaluate(expectation, probe, lab_name, saved)
        except UnknownSavedValue as exc:  # a mistake in the topology: waiting cannot help
            return Outcome(False, f"{expectation.title()}: {exc}"), clock() - start
        except (MgmtError, ShowError, OSError, ValueError) as exc:
            outcome = Outcome(False, f"{expectation.title()}: could not read state: {exc}")
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.ok or clock() >= deadline:
            return outcome, clock() - start
        sleep(min(POLL_INTERVAL, max(0.0, deadline - clock())))
