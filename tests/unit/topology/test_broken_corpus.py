"""A corpus of broken topologies through the real CLI (issue 8, "bad input").

Every file under broken/ starts with `# expect: line N: FIELD: FRAGMENT` (FIELD "-" when
the error is the file's, not a field's) and may add `# never: TEXT` (a secret that must
not be echoed). For each, `labctl validate` and `labctl up` must exit non-zero with
"FILE:N: FIELD..." and the fragment on one line, print no traceback, leak no secret,
write nothing (beside the file or under LABCTL_STATE_DIR), never reach Docker, and be
quick. Cases that cannot live in a file (FIFOs, devices, huge or binary files, a
memory-hungry alias bomb) are made here.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.cli import commands
from labctl.cli.main import main

HERE = Path(__file__).parent
CORPUS = sorted((HERE / "broken").glob("*.yaml"))
SEED = HERE.parents[2] / "topologies" / "nat-t-two-clients.yaml"
# Hostile files (20,000 keys, deep nesting) must not hang validation: a hang bound per test,
# not a speed target (speed is measured by make bench; this machine is shared and noisy).
pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Expected:
    line: int
    field: str
    fragment: str
    never: str | None


def expected_of(path: Path) -> Expected:
    head = path.read_bytes().split(b"\n", 2)
    match = re.fullmatch(r"# expect: line (\d+): (\S+): (.+)", head[0].decode())
    assert match, f"{path.name}: first line must be '# expect: line N: FIELD: FRAGMENT'"
    never = head[1].decode().removeprefix("# never: ") if head[1].startswith(b"# never:") else None
    return Expected(int(match.group(1)), match.group(2), match.group(3), never)


def test_the_corpus_is_large_and_every_file_says_what_it_expects() -> None:
    assert len(CORPUS) >= 70
    for path in CORPUS:
        expected_of(path)


class DockerMustNotBeReached:
    """Stands in for DockerRuntime: a broken topology must fail before any Docker call."""

    calls: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        DockerMustNotBeReached.calls.append("DockerRuntime()")
        raise AssertionError("a broken topology reached Docker")


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for the topology copy, an empty state dir, and no Docker."""
    (tmp_path / "state").mkdir()
    (tmp_path / "lab").mkdir()
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("LABCTL_CORPUS_UNSET", raising=False)
    monkeypatch.chdir(tmp_path / "lab")
    monkeypatch.setattr(commands, "DockerRuntime", DockerMustNotBeReached)
    DockerMustNotBeReached.calls = []
    return tmp_path


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_size for p in sorted(root.rglob("*"))}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exc:
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out + err


def assert_refused(status: int, output: str, file: Path, want: Expected) -> None:
    assert status != 0, output
    assert "Traceback" not in output
    prefix = f"{file}:{want.line}: " + ("" if want.field == "-" else want.field)
    hits = [line for line in output.splitlines() if line.startswith(prefix)]
    assert any(want.fragment in line for line in hits), (
        f"expected a line starting {prefix!r} containing {want.fragment!r}; got:\n{output}"
    )
    if want.never:
        assert want.never not in output


@pytest.mark.parametrize("source", CORPUS, ids=[p.stem for p in CORPUS])
@pytest.mark.parametrize("command", ["validate", "up"])
def test_broken_topology_is_refused_clearly_and_creates_nothing(
    source: Path, command: str, sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = sandbox / "lab" / source.name
    shutil.copyfile(source, file)
    before = tree(sandbox)
    status, output = run_cli([command, str(file)], capsys)
    assert_refused(status, output, file, expected_of(source))
    assert tree(sandbox) == before
    assert DockerMustNotBeReached.calls == []


SECRET_LINE = "psk: cisco123"


def seed_with(sandbox: Path, old: str, new: str) -> Path:
    text = SEED.read_text()
    assert old in text
    file = sandbox / "lab" / "lab.yaml"
    file.write_text(text.replace(old, new, 1))
    return file


def line_of(file: Path, needle: str) -> int:
    lines = file.read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if needle in line)


PSK_FIELD = "topology.nodes.vpn3000.vpn.groups.ciscovpn.psk"


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: os.mkfifo(p), "not a regular file (a named pipe)"),
        (lambda p: os.symlink("/dev/zero", p), "not a regular file (a character device)"),
        (lambda p: p.write_bytes(b"x" * (64 << 10) + b"y"), "too large: 65,537 bytes"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00secret"), "a binary file, not text"),
    ],
    ids=["fifo", "dev-zero", "huge", "binary"],
)
def test_secret_files_that_are_not_small_text_files(
    make, fragment: str, sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make(sandbox / "lab" / "psk.txt")
    file = seed_with(sandbox, SECRET_LINE, "psk: {file: psk.txt}")
    before = tree(sandbox)
    status, output = run_cli(["validate", str(file)], capsys)
    want = Expected(line_of(file, "psk: {file"), PSK_FIELD, fragment, None)
    assert_refused(status, output, file, want)
    assert tree(sandbox) == before


@pytest.mark.parametrize(
    ("make", "line", "fragment"),
    [
        (lambda p: os.mkfifo(p), None, "cannot read: not a regular file (a named pipe)"),
        (lambda p: p.mkdir(), None, "not a regular file (a directory)"),
        (lambda p: os.symlink("/dev/zero", p), None, "a character device"),
        (lambda p: p.write_bytes(b"#" * (1 << 20) + b"\n"), None, "too large: 1,048,577 bytes"),
        (lambda p: p.write_bytes(os.urandom(4096) + b"\0"), 0, "a binary file, not text: a NUL"),
        (
            lambda p: p.write_bytes(b"name: x\n\n\xc3\x28\n"),
            3,
            "not UTF-8 text: byte 0xc3 on line 3",
        ),
    ],
    ids=["fifo", "directory", "dev-zero", "huge", "random-binary", "bad-utf8"],
)
def test_topology_paths_that_are_not_text_files(
    make, line: int | None, fragment: str, sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """line None: the error is the file's (no line); 0: some line (random bytes)."""
    file = sandbox / "lab" / "lab.yaml"
    make(file)
    before = tree(sandbox)
    status, output = run_cli(["validate", str(file)], capsys)
    assert status != 0 and "Traceback" not in output
    where = {None: " ", 0: r"\d+: "}.get(line, f"{line}: ")
    assert re.match(re.escape(f"{file}:") + where, output) and fragment in output, output
    assert tree(sandbox) == before


def test_a_file_with_thousands_of_unknown_keys_prints_ten_and_counts_the_rest(
    sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = sandbox / "lab" / "lab.yaml"
    keys = "".join(f"unknown{i}: 1\n" for i in range(20_000))
    file.write_text("name: x\ntopology:\n  nodes: {a: {kind: host}}\n" + keys)
    status, output = run_cli(["validate", str(file)], capsys)
    lines = output.splitlines()
    assert status == 1 and "Traceback" not in output
    assert lines[0] == f"{file}:4: unknown0: unknown field 'unknown0'"
    assert len(lines) == 11 and lines[-1] == "... and 19,990 more errors"


def test_nesting_far_beyond_pythons_recursion_limit(
    sandbox: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = sandbox / "lab" / "lab.yaml"
    file.write_text("name: x\ntopology: " + "[" * 100_000 + "]" * 100_000 + "\n")
    status, output = run_cli(["validate", str(file)], capsys)
    assert status == 1 and "Traceback" not in output
    assert output.startswith(f"{file}:2: topology.0.0.0") and "nested deeper than 32" in output


def run_validate_process(file: Path) -> tuple[int, str, int]:
    """(status, output, peak RSS in kB) of `python -m labctl validate FILE`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl", "validate", str(file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = process.stdout.read().decode() if process.stdout else ""
    _, wait_status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    return process.returncode, output, usage.ru_maxrss


def test_an_alias_bomb_is_refused_within_a_small_memory_budget(tmp_path: Path) -> None:
    """Nine levels of nine aliases expand to 387 million strings: refused while the YAML is
    composed, before any object is built; peak memory stays near a plain validate's."""
    lines = ['x0: &x0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb = "".join(f"            {line}\n" for line in lines)
    file = tmp_path / "bomb.yaml"
    file.write_text(
        SEED.read_text() + "scenarios:\n  bomb:\n    steps:\n      - set:\n"
        "          node: pix\n          path: labels\n          value:\n" + bomb
    )
    _, _, baseline_kb = run_validate_process(SEED)
    started = time.monotonic()
    status, output, peak_kb = run_validate_process(file)
    assert status == 1 and "Traceback" not in output, output
    assert "too large: more than 100,000 values with aliases expanded" in output
    assert time.monotonic() - started < 10
    assert peak_kb - baseline_kb < 100_000, (baseline_kb, peak_kb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0  # the measure is real


def test_labctl_test_on_a_folder_of_broken_files_reports_each_without_a_traceback(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`labctl test DIR` finds topologies by reading them: a binary one must not stop it."""
    monkeypatch.setattr(commands, "DockerRuntime", lambda: object())  # never used: all broken
    folder = sandbox / "lab"
    (folder / "binary.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00" + os.urandom(512))
    shutil.copyfile(HERE / "broken" / "091-check-count-word.yaml", folder / "count.yaml")
    reports = sandbox / "reports"
    status, output = run_cli(["test", str(folder), "--report-dir", str(reports)], capsys)
    junit = (reports / "junit.xml").read_text()
    assert status == 1 and "Traceback" not in output
    assert junit.count("<testcase") == 2 and junit.count("invalid topology") == 2
    assert "a binary file, not text: a NUL byte on line 1" in junit
    assert "expect.1.sessions.count: a count is a whole number" in junit
