"""pytest plugin: labs as fixtures in users' own test suites.

Enable it in a conftest.py with ``pytest_plugins = ["labctl.checks.pytest_plugin"]`` (or
``pytest -p labctl.checks.pytest_plugin``), then:

    import pytest

    pytestmark = pytest.mark.lab("topologies/nat-t-two-clients.yaml")

    def test_tunnel(lab):
        lab.expect({"client": {"node": "client1", "all": {"state": "connected"}}})
        assert lab.exec("client1", "ping -c1 192.168.2.10").exit_status == 0
        assert len(lab.show("pix", "xlate")) >= 2

The lab comes up once per module (under a unique name) and always goes down, also when
tests fail; when a test using it fails, node logs, tables and link captures are saved to
`--labctl-report-dir` (default reports/) under artifacts/<test name>/.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..lifecycle import LabHandle, down, up
from ..mgmt.ssh import CommandResult
from ..progress import Progress
from ..runtime import DockerRuntime
from ..topology import Lab, load_lab
from ..topology.checks_model import Expectation, Step
from .artifacts import Captures, save_failure_artifacts
from .evaluate import Outcome
from .probe import LabProbe
from .steps import StepLog, run_step
from .wait import wait_for


class LabSession:
    """What the `lab` fixture gives a test."""

    def __init__(self, handle: LabHandle):
        self.handle = handle
        self.probe = LabProbe(handle)
        self.log = StepLog()

    @property
    def name(self) -> str:
        return self.handle.lab.name

    @property
    def topology(self) -> Lab:
        return self.handle.lab

    def show(self, node: str, what: str) -> list[dict[str, Any]]:
        """Records of a `labctl show` table (xlate, sessions, status, arp, ...)."""
        return self.probe.table(node, what)

    def exec(self, node: str, command: str, timeout: float = 60.0) -> CommandResult:
        return self.handle.session(node).run(command, timeout=timeout)

    def expect(self, spec: dict[str, Any] | Expectation, within: float | None = None) -> Outcome:
        """Wait for an expectation (the topology's `expect:` syntax); AssertionError with
        expected-vs-observed when it does not hold in time."""
        expectation = (
            spec
            if isinstance(spec, Expectation)
            else Expectation.model_validate(
                {**spec, **({"within": within} if within is not None else {})}
            )
        )
        outcome, _ = wait_for(expectation, self.probe, self.name, saved=self.log.saved)
        if not outcome.ok:
            raise AssertionError(outcome.text())
        self.log.saved.update(outcome.saved)  # `save:` values for later "$name" matchers
        return outcome

    def step(self, spec: dict[str, Any]) -> None:
        """Run one scenario step (`connect`, `push`, `impair`, `restart`, ...)."""
        run_step(Step.model_validate(spec), self.handle, self.log)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labctl")
    group.addoption(
        "--labctl-report-dir",
        default="reports",
        help="where failed lab tests leave logs, tables and captures",
    )
    group.addoption(
        "--labctl-keep", action="store_true", help="leave labs up after the tests (for inspection)"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab(topology): the topology file the `lab` fixture runs")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item.stash[_FAILED] = True


_FAILED = pytest.StashKey[bool]()


def _topology_for(request: pytest.FixtureRequest) -> Path:
    marker = request.node.get_closest_marker("lab")
    if marker is None or not marker.args:
        raise pytest.UsageError("the `lab` fixture needs @pytest.mark.lab('path/to/topology.yaml')")
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(request.config.rootpath) / path
    return path


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[LabSession]:
    topology = load_lab(_topology_for(request))
    name = f"pt-{re.sub('[^a-z0-9-]', '-', topology.name)[:14]}-{secrets.token_hex(2)}"
    named = Lab(
        spec=topology.spec.model_copy(update={"name": name.rstrip("-")}), source=topology.source
    )
    runtime = DockerRuntime()
    progress = Progress(quiet=True)
    handle = None
    report_dir = Path(request.config.getoption("--labctl-report-dir"))
    captures: Captures | None = None
    try:
        handle = up(named, runtime, progress)
        captures = Captures(handle, report_dir / "artifacts" / f"{name}-captures")
        captures.start()
        yield LabSession(handle)
    finally:
        failed = [
            item
            for item in request.session.items
            if getattr(item, "module", None) is request.module and item.stash.get(_FAILED, False)
        ]
        if handle is not None:
            if captures is not None:
                if failed:
                    captures.stop()
                else:
                    captures.discard()
            if failed:
                save_failure_artifacts(handle, report_dir / "artifacts" / name)
            handle.close()
        if not request.config.getoption("--labctl-keep"):
            down(named.name, runtime, progress)
