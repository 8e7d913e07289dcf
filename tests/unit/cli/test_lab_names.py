"""Lab names are checked in one place; nothing outside <state root>/labs/<valid name> is
ever removed (issue 8: `labctl down /some/dir` used to delete that folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labctl.cli.main import main
from labctl.lifecycle import LabState, LabStateError, known_state_labs
from labctl.naming import LabNameError, check_lab_name, state_dir


def exit_status(argv: list[str]) -> int:
    """main()'s status, whether argparse rejected the arguments or the command did."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


BAD_NAMES = [
    "",
    ".",
    "..",
    "/some/dir",
    "fakelab/../../x",
    "a/b",
    "UPPER",
    "-lead",
    "x" * 25,
    "sp ace",
    "semi;colon",
    "$(id)",
    "tab\t",
    "dots.are.not",
]


@pytest.fixture
def state_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state" / "labs"


@pytest.fixture
def bystanders(tmp_path: Path, state_root: Path) -> list[Path]:
    """Folders that are not labctl's: beside the state root, the root itself, a lab-like one."""
    victims = [tmp_path / "x", tmp_path / "some" / "dir", state_root / "notours"]
    for folder in victims:
        folder.mkdir(parents=True)
        (folder / "precious.txt").write_text("keep me")
    mine = LabState.of("mylab")
    mine.create()
    return victims


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_rejected(name: str) -> None:
    with pytest.raises(LabNameError, match="not a lab name"):
        check_lab_name(name)
    with pytest.raises(LabNameError):
        state_dir(name)


@pytest.mark.parametrize("name", ["a", "seed", "e2e-seed-0a1b2c", "x" * 24, "9lab"])
def test_good_names_pass(name: str) -> None:
    assert check_lab_name(name) == name


@pytest.mark.parametrize(
    "argv",
    [
        ["down", "/some/dir"],
        ["down", "fakelab/../../x"],
        ["down", "."],
        ["down", ""],
        ["down", ".."],
        ["down", "notours/.."],
        ["status", ".."],
        ["up", "topologies/nat-t-two-clients.yaml", "--name", "../x"],
        ["exec", "--lab", "..", "client1", "--", "true"],
        ["show", "--lab", "/tmp", "pix", "xlate"],
        ["push", "--lab", "", "pix"],
        ["test", "topologies", "--keep", "--lab", "../.."],
    ],
)
def test_commands_refuse_paths_as_lab_names(
    argv: list[str], bystanders: list[Path], state_root: Path, capsys: pytest.CaptureFixture
) -> None:
    assert exit_status(argv) == 2
    assert re.search(r"(not|nor) a lab name", capsys.readouterr().err)
    for folder in bystanders:
        assert (folder / "precious.txt").read_text() == "keep me"
    assert LabState.of("mylab").is_ours()


def test_down_of_a_path_that_is_a_directory_exits_2_and_removes_nothing(
    tmp_path: Path, bystanders: list[Path], capsys: pytest.CaptureFixture
) -> None:
    status = main(["down", str(tmp_path / "some" / "dir")])
    assert status == 2
    assert "neither a topology file nor a lab name" in capsys.readouterr().err
    assert all((folder / "precious.txt").exists() for folder in bystanders)


def test_state_remove_touches_only_marked_directories(state_root: Path) -> None:
    foreign = state_root / "foreign"
    foreign.mkdir(parents=True)
    (foreign / "data").write_text("x")
    assert LabState.of("foreign").remove() is False
    assert (foreign / "data").exists()

    ours = LabState.of("ours")
    ours.create()
    assert ours.remove() is True
    assert not ours.directory.exists()


def test_state_symlink_is_never_followed(tmp_path: Path, state_root: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / ".labctl-lab").write_text("forged marker")
    state_root.mkdir(parents=True)
    (state_root / "linked").symlink_to(target)
    assert LabState.of("linked").remove() is False
    assert target.exists()


def test_up_refuses_a_foreign_state_directory(state_root: Path) -> None:
    (state_root / "taken").mkdir(parents=True)
    with pytest.raises(LabStateError, match="labctl did not make it"):
        LabState.of("taken").create()


def test_known_state_labs_lists_only_ours(state_root: Path) -> None:
    (state_root / "notours").mkdir(parents=True)
    (state_root / "Bad.Name").mkdir()
    LabState.of("mine").create()
    assert known_state_labs() == {"mine"}
