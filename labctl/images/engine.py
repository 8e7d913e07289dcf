"""The Docker engine calls the image builder needs (Docker SDK, legacy builder API).

BuildKit is not available here (the CLI lacks buildx and the SDK only speaks the classic
/build API), so role images use the classic builder. It builds FROM a local image with no
registry and with no network at all (network_mode "none"): every Debian package comes from
debootstrap on the host, into the base image.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import docker
import docker.errors
from docker.models.images import Image

from labctl.images.errors import DockerUnavailableError, ImageBuildError

LABEL_ROLE = "labctl.image"
LABEL_HASH = "labctl.content-hash"
LABEL_PARENT_ID = "labctl.parent-id"
# Imports and builds on fuse-overlayfs can keep a request quiet for minutes.
CLIENT_TIMEOUT = 900


def connect(timeout: int = CLIENT_TIMEOUT) -> docker.DockerClient:
    """A client for the local engine, or DockerUnavailableError saying why not."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        address = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise DockerUnavailableError(
            f"docker: cannot reach the Docker engine at {address} (is dockerd running?): {exc}"
        ) from None
    return client


def find_image(client: docker.DockerClient, ref: str) -> Image | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def import_rootfs(
    client: docker.DockerClient,
    chunks: Iterable[bytes],
    ref: str,
    changes: list[str],
    report: Callable[[int], None],
) -> str:
    """`docker import` a tar stream as `ref`; returns the new image's ID.

    The tar is streamed with chunked transfer encoding, never written to disk by us.
    """
    repository, tag = ref.rsplit(":", 1)

    def counted() -> Iterator[bytes]:
        sent = 0
        for chunk in chunks:
            sent += len(chunk)
            report(sent)
            yield chunk

    try:
        result = client.api.import_image(
            src=counted(), repository=repository, tag=tag, changes=changes, stream_src=True
        )
    except docker.errors.APIError as exc:
        raise ImageBuildError("base: import", f"docker import: {exc.explanation or exc}") from None
    # the answer is a JSON stream; its last "status" is the image ID
    image_id = None
    for line in str(result).splitlines():
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "error" in message:
            raise ImageBuildError("base: import", f"docker import: {message['error']}")
        image_id = message.get("status", image_id)
    image = find_image(client, ref)
    if image is None:
        raise ImageBuildError(
            "base: import", f"docker import reported {image_id!r} but {ref} is missing"
        )
    return image.id


def build_image(
    client: docker.DockerClient,
    context_dir: Path,
    ref: str,
    *,
    buildargs: dict[str, str],
    stage: str,
    nocache: bool = False,
    log_path: Path,
    report: Callable[[str], None],
) -> str:
    """`docker build` a context directory as `ref` (classic builder, no network).

    nocache=True ignores the build cache: a forced rebuild must not hand back the old layers.
    """
    started = time.monotonic()
    image_id = None
    with open(log_path, "a") as log:
        log.write(f"$ docker build -t {ref} {context_dir} (build args {buildargs})\n")
        try:
            for message in client.api.build(
                path=str(context_dir),
                tag=ref,
                buildargs=buildargs,
                rm=True,
                forcerm=True,
                pull=False,
                nocache=nocache,
                network_mode="none",
                decode=True,
            ):
                if "stream" in message:
                    text = message["stream"]
                    log.write(text)
                    step = text.strip()
                    if step.startswith("Step "):
                        elapsed = time.monotonic() - started
                        report(f"{step.split(' :', 1)[0].lower()}, {elapsed:.0f} s")
                if "aux" in message and "ID" in message["aux"]:
                    image_id = message["aux"]["ID"]
                if "error" in message:
                    error = message["error"].strip()
                    log.write(f"ERROR: {error}\n")
                    raise ImageBuildError(stage, f"docker build: {error}", log_path)
        except docker.errors.APIError as exc:
            log.write(f"ERROR: {exc}\n")
            reason = exc.explanation or exc
            raise ImageBuildError(stage, f"docker build: {reason}", log_path) from None
    image = find_image(client, ref)
    if image is None:
        raise ImageBuildError(
            stage, f"docker build finished ({image_id}) but {ref} is missing", log_path
        )
    return image.id


def labctl_images(client: docker.DockerClient) -> list[Image]:
    """Every image carrying labctl's role label (tagged or dangling)."""
    return client.images.list(all=False, filters={"label": LABEL_ROLE})


def container_users(client: docker.DockerClient) -> dict[str, list[str]]:
    """Image ID -> names of the containers (in any state) created from it."""
    users: dict[str, list[str]] = {}
    for container in client.containers.list(all=True, ignore_removed=True):
        users.setdefault(container.attrs.get("Image", ""), []).append(container.name)
    return users
