"""Expectations and scenarios: evaluating, waiting, running, reporting (JUnit)."""

from ..topology.matchers import Matcher, parse_matcher
from .evaluate import Outcome, Probe, evaluate, evaluate_table
from .junit import summary_table, write_junit
from .probe import LabProbe
from .runner import CaseResult, TopologyRun, discover
from .wait import wait_for

__all__ = [
    "CaseResult",
    "LabProbe",
    "Matcher",
    "Outcome",
    "Probe",
    "TopologyRun",
    "discover",
    "evaluate",
    "evaluate_table",
    "parse_matcher",
    "summary_table",
    "wait_for",
    "write_junit",
]
