"""Errors of the image builder: one line each, naming the stage and the log to read."""

from __future__ import annotations

from pathlib import Path

from ..errors import LabctlError


class ImageError(LabctlError):
    """Base class of labctl.images errors."""


class RecipeError(ImageError):
    """A recipe file under images/ is missing or malformed (the message names the file)."""


class DockerUnavailableError(ImageError):
    """The Docker engine cannot be reached."""


class ImageBuildError(ImageError):
    """A build stage failed. str() is one line: stage, what happened, the log file."""

    def __init__(self, stage: str, message: str, log_path: Path | None = None) -> None:
        self.stage = stage
        self.message = message
        self.log_path = log_path
        where = f" (log: {log_path})" if log_path is not None else ""
        super().__init__(f"image build failed at {stage}: {message}{where}")
