"""Failures read as one line that says what broke and where to look."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.images import DockerUnavailableError, ImageBuilder, ImageBuildError

REAL_ROOT = Path(__file__).resolve().parents[3]


def test_unreachable_docker_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(DockerUnavailableError) as info:
        ImageBuilder(REAL_ROOT, cache_dir=tmp_path / "cache").ensure()
    message = str(info.value)
    assert message.startswith("docker: cannot reach the Docker engine")
    assert "\n" not in message


def test_build_error_names_stage_and_log(tmp_path: Path) -> None:
    error = ImageBuildError("base: debootstrap", "debootstrap: boom", tmp_path / "base.log")
    assert str(error) == (
        f"image build failed at base: debootstrap: debootstrap: boom (log: {tmp_path}/base.log)"
    )
