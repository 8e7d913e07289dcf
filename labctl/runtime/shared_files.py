"""Read-only volumes with an image's /usr and /opt, shared by every node of that image.

Docker here stores container file systems on fuse-overlayfs: each container is its own
FUSE mount, so every node reads libpython, libcrypto, the standard library and labctl's
modules through FUSE (~0.1 CPU-s of fuse-overlayfs per client container) and keeps its own
page cache of them (~33 MiB charged to each container's cgroup). The same files bound
read-only from a Docker volume (plain ext4 under Docker's root) are read without FUSE and
cached once for all nodes of the image.

One volume per (image ID, directory): an image rebuilt under the same tag has a new ID,
so a volume never holds stale content. A volume is filled once, by a throw-away container
of the image copying the directory into it (under a file lock, so concurrent labctl
processes fill it once), and counts only once its completion marker exists: a fill that
was killed half-way is redone. Volumes of images that no longer exist and that no
container uses are removed when another is made, and by `labctl images prune`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import docker
import docker.errors
import requests
from docker.types import Mount

from .base import LabRuntimeError

# What every node reads at start (interpreter, libraries, sshd, nft, labctl's modules).
# Nothing writes there at run time: labctl's files go to /etc, agents' state to /run.
SHARED_DIRS = ("/usr", "/opt")
LABEL_SHARED_IMAGE = "labctl.shared-of-image"  # the image ID the volume was copied from
LABEL_SHARED_DIR = "labctl.shared-dir"
IMAGE_ROLE_LABEL = "labctl.image"  # images labctl built carry it (labctl.images)
COMPLETE = ".labctl-shared-complete"  # written into the volume once the copy finished
_FILL_TIMEOUT = 300


def volume_name(image_id: str, directory: str) -> str:
    digest = image_id.split(":", 1)[-1][:12]
    return f"labctl-shared-{digest}-{directory.strip('/').replace('/', '-')}"


def _lock_dir() -> Path:
    from ..images import default_cache_dir  # only when a volume is made

    return default_cache_dir() / "locks"


class SharedFiles:
    """Mounts for nodes of labctl's images; remembers what this process checked."""

    def __init__(self, client: docker.DockerClient):
        self.client = client
        self._ready: dict[str, list[Mount]] = {}  # image reference -> mounts
        self._lock = threading.Lock()  # `up` creates nodes from several threads

    def mounts_for(self, image: str) -> list[Mount]:
        """Read-only mounts of `image`'s shared directories, made if missing; none for an
        image labctl did not build (a topology's own `image:`)."""
        with self._lock:
            return self._mounts_for(image)

    def _mounts_for(self, image: str) -> list[Mount]:
        if image in self._ready:
            return self._ready[image]
        try:
            found = self.client.images.get(image)
        except docker.errors.ImageNotFound:
            return []  # create_node reports it
        if IMAGE_ROLE_LABEL not in (found.labels or {}):
            self._ready[image] = []
            return []
        from ..images.locking import file_lock

        digest = found.id.split(":", 1)[-1][:12]
        with file_lock(_lock_dir() / f"shared-{digest}.lock"):
            missing = [
                d for d in SHARED_DIRS if not self._complete(volume_name(found.id, d), found.id)
            ]
            if missing:
                self._fill(found, missing)
                remove_unused(self.client)
        mounts = [
            Mount(d, volume_name(found.id, d), type="volume", read_only=True, no_copy=True)
            for d in SHARED_DIRS
        ]
        self._ready[image] = mounts
        return mounts

    def _ours(self, name: str, image_id: str):
        """The shared volume `name` of `image_id`, None when there is none; a volume of
        that name labctl did not make for this image is an error, never used or removed."""
        try:
            volume = self.client.volumes.get(name)
        except docker.errors.NotFound:
            return None
        if (volume.attrs.get("Labels") or {}).get(LABEL_SHARED_IMAGE) != image_id:
            raise LabRuntimeError(
                f"a Docker volume named {name} exists but labctl did not make it for image "
                f"{image_id[:19]}; remove or rename it (or set LABCTL_SHARED_FILES=0)"
            )
        return volume

    def _complete(self, name: str, image_id: str) -> bool:
        volume = self._ours(name, image_id)
        return volume is not None and (Path(volume.attrs["Mountpoint"]) / COMPLETE).exists()

    def _fill(self, image, directories: list[str]) -> None:
        # A fill container of this image left by a killed labctl (we hold the lock, so none
        # is running for real) still holds the volumes: remove it first.
        leftovers = self.client.containers.list(
            all=True, filters={"label": f"{LABEL_SHARED_IMAGE}={image.id}"}
        )
        for leftover in leftovers:
            leftover.remove(force=True)
        copies = []
        mounts = []
        for index, directory in enumerate(directories):
            name = volume_name(image.id, directory)
            unfinished = self._ours(name, image.id)
            if unfinished is not None:  # an unfinished fill of ours: start over
                unfinished.remove()
            self.client.volumes.create(
                name, labels={LABEL_SHARED_IMAGE: image.id, LABEL_SHARED_DIR: directory}
            )
            mounts.append(Mount(f"/fill/{index}", name, type="volume", no_copy=True))
            copies.append(f"cp -a {directory}/. /fill/{index}/ && touch /fill/{index}/{COMPLETE}")
        container = self.client.containers.create(
            image.id,
            entrypoint=["/bin/sh", "-c", " && ".join(copies)],
            command=[],
            mounts=mounts,
            network_mode="none",
            labels={LABEL_SHARED_IMAGE: image.id},
        )
        try:
            container.start()
            try:
                status = container.wait(timeout=_FILL_TIMEOUT).get("StatusCode")
            except requests.exceptions.RequestException:  # docker-py's wait timing out
                raise LabRuntimeError(
                    f"copying {', '.join(directories)} of {image.tags or image.id} into "
                    f"shared volumes did not finish within {_FILL_TIMEOUT} s"
                ) from None
            if status != 0:
                log = container.logs(tail=5).decode(errors="replace").strip()
                raise LabRuntimeError(
                    f"copying {', '.join(directories)} of {image.tags or image.id} into "
                    f"shared volumes failed ({status}): {log}"
                )
        finally:
            container.remove(force=True)


def remove_unused(client: docker.DockerClient, keep_image_ids: set[str] | None = None) -> list[str]:
    """Remove shared volumes whose image is gone (or, given keep_image_ids, not in it) and
    that no container uses; Docker refuses a volume in use, which is then kept."""
    existing = {image.id for image in client.images.list(filters={"label": IMAGE_ROLE_LABEL})}
    keep = existing if keep_image_ids is None else existing & keep_image_ids
    removed = []
    for volume in client.volumes.list(filters={"label": LABEL_SHARED_IMAGE}):
        if (volume.attrs.get("Labels") or {}).get(LABEL_SHARED_IMAGE) in keep:
            continue
        try:
            volume.remove()
            removed.append(f"volume {volume.name}")
        except docker.errors.APIError:
            continue  # in use (a running lab, a fill in progress) or already gone
    return removed


def enabled() -> bool:
    """LABCTL_SHARED_FILES=0 turns sharing off (for comparing, or an engine where binds of
    volumes misbehave)."""
    return os.environ.get("LABCTL_SHARED_FILES", "1") != "0"
