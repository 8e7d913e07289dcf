"""The agent's start without argparse, logging or secrets: its arguments, its lazy logger,
and a fresh interpreter that imports the client agent without those modules."""

from __future__ import annotations

import logging

import pytest

from labctl.agent.daemon import parse_arguments
from labctl.agent.lazylog import LazyLogger
from labctl.agent.settings import CONFIG_PATH
from tests.unit.fresh_interpreter import modules_after_import


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], (CONFIG_PATH, False)),
        (["--detach"], (CONFIG_PATH, True)),
        (["--config", "/etc/x.json"], ("/etc/x.json", False)),
        (["--config=/etc/y.json", "--detach"], ("/etc/y.json", True)),
        (["--detach", "--config", "/z"], ("/z", True)),
    ],
)
def test_arguments(argv, expected) -> None:
    assert parse_arguments(argv) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--config"], "--config needs a path"), (["-v"], "unexpected argument '-v'")],
)
def test_bad_arguments_are_named(argv, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_arguments(argv)


def test_lazy_logger_speaks_through_logging(caplog) -> None:
    log = LazyLogger("labctl.agent.test")
    with caplog.at_level(logging.INFO, logger="labctl.agent.test"):
        log.info("tunnel %s up", "t1")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("handler failed")
    assert [r.getMessage() for r in caplog.records] == ["tunnel t1 up", "handler failed"]
    assert caplog.records[1].exc_info is not None


def test_a_client_agent_starts_without_argparse_logging_or_random() -> None:
    loaded = modules_after_import("labctl.agent.daemon", "labctl.agent.client")
    assert "labctl.agent.client" in loaded
    assert not loaded & {"argparse", "logging", "random", "secrets"}
