"""Shared read-only /usr and /opt volumes per image (labctl.runtime.shared_files), against
a fake Docker client: which images get them, when they are filled, what is removed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import docker.errors
import pytest
import requests

from labctl.runtime import LabRuntimeError
from labctl.runtime.shared_files import (
    COMPLETE,
    LABEL_SHARED_DIR,
    LABEL_SHARED_IMAGE,
    SHARED_DIRS,
    SharedFiles,
    remove_unused,
    volume_name,
)

OURS = "sha256:" + "ab" * 32
FOREIGN = "sha256:" + "cd" * 32


class FakeVolume:
    def __init__(self, volumes: FakeVolumes, name: str, labels: dict, mountpoint: Path):
        self.volumes, self.name = volumes, name
        self.attrs = {"Labels": labels, "Mountpoint": str(mountpoint)}
        mountpoint.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        if self.name in self.volumes.in_use:
            raise docker.errors.APIError("volume is in use")
        del self.volumes.by_name[self.name]


class FakeVolumes:
    def __init__(self, root: Path):
        self.root, self.by_name, self.in_use = root, {}, set()

    def get(self, name: str) -> FakeVolume:
        if name not in self.by_name:
            raise docker.errors.NotFound(name)
        return self.by_name[name]

    def create(self, name: str, labels: dict) -> FakeVolume:
        self.by_name[name] = FakeVolume(self, name, labels, self.root / name)
        return self.by_name[name]

    def list(self, filters: dict) -> list[FakeVolume]:
        label = filters["label"]
        return [v for v in self.by_name.values() if label in v.attrs["Labels"]]


class FakeContainer:
    def __init__(self, client: FakeClient, mounts: list, status: int):
        self.client, self.mounts, self.status, self.removed = client, mounts, status, False

    def start(self) -> None:
        if self.status == 0:  # what the copy command does: the marker last
            for mount in self.mounts:
                volume = self.client.volumes.get(mount["Source"])
                (Path(volume.attrs["Mountpoint"]) / COMPLETE).touch()

    def wait(self, timeout: int) -> dict:
        if self.status is None:  # still copying when docker-py's wait gives up
            raise requests.exceptions.ReadTimeout("read timed out")
        return {"StatusCode": self.status}

    def logs(self, tail: int) -> bytes:
        return b"cp: No space left on device"

    def remove(self, force: bool) -> None:
        self.removed = True


class FakeContainers:
    def __init__(self, client: FakeClient):
        self.client, self.made, self.status = client, [], 0

    def list(self, all: bool, filters: dict) -> list[FakeContainer]:
        key, _, value = filters["label"].partition("=")
        return [
            c
            for _, options, c in self.made
            if not c.removed and options.get("labels", {}).get(key) == value
        ]

    def create(self, image: str, **options) -> FakeContainer:
        container = FakeContainer(self.client, options["mounts"], self.status)
        self.made.append((image, options, container))
        return container


class FakeImages:
    def __init__(self):
        self.by_ref = {
            "labctl/vpn:1": SimpleNamespace(
                id=OURS, tags=["labctl/vpn:1"], labels={"labctl.image": "vpn"}
            ),
            "alpine": SimpleNamespace(id=FOREIGN, tags=["alpine"], labels={}),
        }

    def get(self, ref: str):
        if ref not in self.by_ref:
            raise docker.errors.ImageNotFound(ref)
        return self.by_ref[ref]

    def list(self, filters: dict) -> list:
        return [i for i in self.by_ref.values() if filters["label"] in i.labels]


class FakeClient:
    def __init__(self, root: Path):
        self.volumes = FakeVolumes(root)
        self.containers = FakeContainers(self)
        self.images = FakeImages()


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    monkeypatch.setenv("LABCTL_CACHE_DIR", str(tmp_path / "cache"))
    return FakeClient(tmp_path / "volumes")


def test_volume_names_carry_the_image_id_and_the_directory() -> None:
    assert volume_name(OURS, "/usr") == "labctl-shared-abababababab-usr"
    assert volume_name(OURS, "/opt") != volume_name(FOREIGN, "/opt")


def test_an_image_labctl_did_not_build_gets_no_shared_volumes(client: FakeClient) -> None:
    assert SharedFiles(client).mounts_for("alpine") == []
    assert client.volumes.by_name == {} and client.containers.made == []


def test_the_first_node_fills_the_volumes_once_later_ones_only_mount_them(
    client: FakeClient,
) -> None:
    mounts = SharedFiles(client).mounts_for("labctl/vpn:1")
    assert [(m["Target"], m["ReadOnly"], m["VolumeOptions"]) for m in mounts] == [
        (d, True, {"NoCopy": True}) for d in SHARED_DIRS
    ]
    assert len(client.containers.made) == 1
    image, options, container = client.containers.made[0]
    assert image == OURS and options["network_mode"] == "none" and container.removed
    for directory in SHARED_DIRS:
        volume = client.volumes.get(volume_name(OURS, directory))
        assert volume.attrs["Labels"] == {LABEL_SHARED_IMAGE: OURS, LABEL_SHARED_DIR: directory}
        assert f"cp -a {directory}/. " in options["entrypoint"][-1]
    # another labctl process: the volumes are complete, nothing is copied again
    assert SharedFiles(client).mounts_for("labctl/vpn:1") == mounts
    assert len(client.containers.made) == 1


def test_a_fill_that_never_finished_is_redone(client: FakeClient) -> None:
    client.volumes.create(volume_name(OURS, "/usr"), {LABEL_SHARED_IMAGE: OURS})  # no marker
    for directory in SHARED_DIRS[1:]:
        volume = client.volumes.create(volume_name(OURS, directory), {LABEL_SHARED_IMAGE: OURS})
        (Path(volume.attrs["Mountpoint"]) / COMPLETE).touch()
    SharedFiles(client).mounts_for("labctl/vpn:1")
    (_, options, _) = client.containers.made[0]
    assert [m["Source"] for m in options["mounts"]] == [volume_name(OURS, "/usr")]


def test_a_volume_of_that_name_labctl_did_not_make_is_neither_used_nor_removed(
    client: FakeClient,
) -> None:
    name = volume_name(OURS, "/usr")
    client.volumes.create(name, {"owner": "someone"})  # no marker: it looks unfinished
    with pytest.raises(LabRuntimeError, match=f"volume named {name} exists but labctl"):
        SharedFiles(client).mounts_for("labctl/vpn:1")
    assert name in client.volumes.by_name and not client.containers.made


def test_a_failed_fill_is_an_error_naming_the_image_and_leaves_no_container(
    client: FakeClient,
) -> None:
    client.containers.status = 1
    with pytest.raises(LabRuntimeError, match=r"labctl/vpn:1.*No space left"):
        SharedFiles(client).mounts_for("labctl/vpn:1")
    assert client.containers.made[0][2].removed


def test_a_fill_that_does_not_finish_in_time_is_a_clear_error_and_leaves_no_container(
    client: FakeClient,
) -> None:
    client.containers.status = None
    with pytest.raises(LabRuntimeError, match=r"labctl/vpn:1.*did not finish within 300 s"):
        SharedFiles(client).mounts_for("labctl/vpn:1")
    assert client.containers.made[0][2].removed


def test_volumes_of_removed_images_go_unless_in_use(client: FakeClient) -> None:
    gone = "sha256:" + "ef" * 32
    for image in (OURS, gone):
        for directory in SHARED_DIRS:
            client.volumes.create(volume_name(image, directory), {LABEL_SHARED_IMAGE: image})
    client.volumes.in_use.add(volume_name(gone, "/opt"))
    client.volumes.create("someone-elses", {"x": "y"})
    assert remove_unused(client) == [f"volume {volume_name(gone, '/usr')}"]
    assert sorted(client.volumes.by_name) == sorted(
        [volume_name(OURS, d) for d in SHARED_DIRS] + [volume_name(gone, "/opt"), "someone-elses"]
    )


def test_a_fill_container_left_by_a_killed_labctl_is_removed_before_the_fill(
    client: FakeClient,
) -> None:
    leftover = client.containers.create(OURS, mounts=[], labels={LABEL_SHARED_IMAGE: OURS})
    other = client.containers.create(FOREIGN, mounts=[], labels={LABEL_SHARED_IMAGE: FOREIGN})
    SharedFiles(client).mounts_for("labctl/vpn:1")
    assert leftover.removed and not other.removed
    assert len(client.containers.made) == 3
