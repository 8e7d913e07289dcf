"""A node's files (SSH keys, rendered configuration) reach it as one tar mount its init
unpacks (images labelled labctl.seed with labctl-init as entrypoint), else by put_archive;
up empties the seeds once every sshd answers (labctl.runtime.docker_runtime, lifecycle.up)."""

from __future__ import annotations

import io
import tarfile
from ipaddress import IPv4Interface
from pathlib import Path
from types import SimpleNamespace

import docker.errors
import pytest

from labctl.lifecycle.up import _empty_seeds
from labctl.runtime import InjectedFile, NodeSpec
from labctl.runtime.docker_runtime import LABCTL_INIT, SEED_LABEL, DockerRuntime

IMAGES = {
    "labctl/node:1": {"Labels": {SEED_LABEL: "/run/labctl-seed.tar"}, "Entrypoint": LABCTL_INIT},
    # built FROM ours with its own entrypoint: the label is inherited, the init is not
    "mine:own-init": {"Labels": {SEED_LABEL: "/run/labctl-seed.tar"}, "Entrypoint": ["/x"]},
    "alpine:3": {"Labels": None, "Entrypoint": None},
}


class FakeApi:
    def __init__(self) -> None:
        self.created: list[dict] = []
        self.archives: list[bytes] = []
        self.image_inspects = 0

    def inspect_image(self, image: str) -> dict:
        self.image_inspects += 1
        if image not in IMAGES:
            raise docker.errors.ImageNotFound(image)
        return {"Config": IMAGES[image]}

    def create_host_config(self, **options: object) -> dict:
        return options

    def create_container(self, image: str, **options: object) -> dict:
        if image not in IMAGES:
            raise docker.errors.ImageNotFound(image)
        self.created.append({"image": image, **options})
        return {"Id": f"id{len(self.created)}"}

    def put_archive(self, container: str, path: str, data: bytes) -> bool:
        self.archives.append(data)
        return True

    def start(self, container: str) -> None:
        pass


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()
        self.containers = SimpleNamespace(get=self._get)

    def _get(self, container_id: str) -> SimpleNamespace:
        labels = self.api.created[-1]["labels"]
        attrs = {"Config": {"Labels": labels, "Image": "x"}, "State": {"Status": "running"}}
        return SimpleNamespace(attrs=attrs, name="labctl-lab-" + labels["labctl.node"])


def spec(node: str, image: str, seed_dir: Path | None) -> NodeSpec:
    return NodeSpec(
        lab="lab",
        node=node,
        kind="router",
        image=image,
        labels={},
        env={},
        sysctls={},
        needs_tun=False,
        mgmt=IPv4Interface("172.30.0.4/24"),
        files=(
            InjectedFile("/etc/labctl/ssh/ssh_host_ed25519_key", b"PRIVATE", 0o600),
            InjectedFile("/etc/labctl/vpn.json", b'{"psk": "x"}', 0o600),
        ),
        seed_dir=seed_dir,
    )


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> DockerRuntime:
    monkeypatch.setenv("LABCTL_SHARED_FILES", "0")
    return DockerRuntime(FakeClient())  # type: ignore[arg-type]


def members(data: bytes) -> dict[str, tuple[int, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name: (m.mode, tar.extractfile(m).read())  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_a_node_of_our_image_gets_its_files_as_a_root_only_seed_mount(
    runtime: DockerRuntime, tmp_path: Path
) -> None:
    info = runtime.create_node(spec("r1", "labctl/node:1", tmp_path / "seed"))
    runtime.create_node(spec("r2", "labctl/node:1", tmp_path / "seed"))
    api = runtime.client.api
    assert info.node == "r1" and api.archives == []  # no put_archive
    # Docker's networking off altogether: labctl wires the node (no sandbox, no re-execs)
    assert api.created[0]["network_disabled"] is True
    assert api.created[0]["host_config"]["network_mode"] == "none"
    assert api.image_inspects == 1  # once per image
    (mount,) = api.created[0]["host_config"]["mounts"]
    seed = tmp_path / "seed" / "r1.tar"
    assert (mount["Source"], mount["Target"], mount["Type"]) == (
        str(seed),
        "/run/labctl-seed.tar",
        "bind",
    )
    assert members(seed.read_bytes()) == {
        "etc/labctl/ssh/ssh_host_ed25519_key": (0o600, b"PRIVATE"),
        "etc/labctl/vpn.json": (0o600, b'{"psk": "x"}'),
    }
    assert seed.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "seed").stat().st_mode & 0o777 == 0o700
    # once every sshd answers, up empties them: no secrets left in the state folder
    _empty_seeds(tmp_path / "seed")
    assert [p.stat().st_size for p in sorted((tmp_path / "seed").iterdir())] == [0, 0]


@pytest.mark.parametrize("image", ["mine:own-init", "alpine:3"])
def test_other_images_and_specs_without_a_seed_folder_get_put_archive(
    runtime: DockerRuntime, tmp_path: Path, image: str
) -> None:
    runtime.create_node(spec("r1", image, tmp_path / "seed"))
    runtime.create_node(spec("r2", "labctl/node:1", None))
    api = runtime.client.api
    assert [c["host_config"]["mounts"] for c in api.created] == [[], []]
    assert [sorted(members(a)) for a in api.archives] == [
        ["etc/labctl/ssh/ssh_host_ed25519_key", "etc/labctl/vpn.json"]
    ] * 2
    assert not (tmp_path / "seed").exists()


def test_emptying_seeds_of_a_lab_without_any(tmp_path: Path) -> None:
    _empty_seeds(tmp_path / "seed")  # no folder: nothing to do
