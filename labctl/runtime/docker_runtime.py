"""Docker runtime: nodes are containers with no Docker network at all (``--network none``).

No lab interface comes from Docker (see DESIGN.md: internal networks drop routed traffic,
others leak to the uplink, and a Docker management network let nodes reach each other and
the host). labctl wires every interface itself, the management eth0 included
(labctl.wiring.mgmt). Older labctl versions made a per-lab Docker management network;
`remove_lab` still removes such leftovers by their labels.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Interface

import docker
import docker.errors
from docker.types import Mount

from ..naming import (
    LABEL_KIND,
    LABEL_LAB,
    LABEL_MGMT_IPV4,
    LABEL_NODE,
    LABEL_ROLE,
    container_name,
)
from .base import LabRuntimeError, NodeInfo, NodeSpec, Runtime
from .shared_files import SharedFiles, enabled

# An image whose init unpacks a tar of labctl's files at its first boot names the path it
# reads in this label (images/node/Dockerfile: labctl-init). Only with labctl-init as the
# entrypoint: an image built FROM ours with its own entrypoint inherits the label, not the
# init that honours it.
SEED_LABEL = "labctl.seed"
LABCTL_INIT = ["/usr/bin/tini", "--", "/usr/local/sbin/labctl-init"]


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise LabRuntimeError(
            f"Docker is not reachable ({exc}); start the Docker engine and run as root"
        ) from None


class DockerRuntime(Runtime):
    def __init__(self, client: docker.DockerClient | None = None):
        self.client = client or docker_client()
        self.shared = SharedFiles(self.client) if enabled() else None
        self._seed_targets: dict[str, str | None] = {}  # image -> where its init reads a seed
        self._seed_lock = threading.Lock()

    # --- nodes -------------------------------------------------------------------------

    def create_node(self, spec: NodeSpec) -> NodeInfo:
        name = container_name(spec.lab, spec.node)
        labels = {
            **spec.labels,
            LABEL_LAB: spec.lab,
            LABEL_NODE: spec.node,
            LABEL_KIND: spec.kind,
            LABEL_ROLE: "node",
            LABEL_MGMT_IPV4: str(spec.mgmt),
        }
        # The image's /usr and /opt from read-only volumes shared by its nodes (not through
        # each container's own fuse-overlayfs mount): see shared_files.
        mounts = self.shared.mounts_for(spec.image) if self.shared else []
        seed = self._seed(spec)
        if seed is not None:
            mounts = [*mounts, seed]
        # The low-level calls: the model's create() inspects the new container once more
        # (and start() + reload() a third time); one inspect after the start is enough.
        api = self.client.api
        try:
            created = api.create_container(
                spec.image,
                name=name,
                hostname=spec.node,
                labels=labels,
                environment=spec.env,
                detach=True,
                stop_signal="SIGTERM",
                # labctl wires every interface itself; with Docker's networking merely
                # "none", dockerd still made a sandbox per node and ran two re-execs of
                # its own binary per start (the libnetwork-setkey hook, set-ipv6): about
                # 0.14 CPU-s per node, measured. The node's sysctls disable IPv6 instead,
                # and labctl-init writes /etc/hosts, which Docker then leaves alone.
                network_disabled=True,
                host_config=api.create_host_config(
                    mounts=mounts,
                    network_mode="none",
                    cap_add=["NET_ADMIN", "NET_RAW"],
                    devices=["/dev/net/tun:/dev/net/tun:rwm"] if spec.needs_tun else [],
                    sysctls=spec.sysctls,
                    # Lab nodes are disposable: never restarted by the engine behind our back.
                    restart_policy={"Name": "no"},
                ),
            )
        except docker.errors.ImageNotFound:
            raise LabRuntimeError(
                f"node {spec.node}: image {spec.image} not found; run 'labctl images build'"
            ) from None
        except docker.errors.APIError as exc:
            raise LabRuntimeError(
                f"node {spec.node}: cannot create container {name}: {exc.explanation or exc}"
            ) from None
        if spec.files and seed is None:
            api.put_archive(created["Id"], "/", _tar_of(spec.files))
        try:
            api.start(created["Id"])
        except docker.errors.APIError as exc:
            raise LabRuntimeError(
                f"node {spec.node}: container {name} did not start: "
                f"{exc.explanation or exc}; see 'docker logs {name}'"
            ) from None
        container = self.client.containers.get(created["Id"])
        return _info(container)

    def _seed(self, spec: NodeSpec) -> Mount | None:
        """The node's files as a tar mount, for an image whose init unpacks it;
        None: put_archive them (a dockerd re-exec and one more mount of the container's
        file system per node: ~0.1 CPU-s of Docker's, measured)."""
        if not spec.files or spec.seed_dir is None:
            return None
        target = self._seed_target(spec.image)
        if target is None:
            return None
        spec.seed_dir.mkdir(mode=0o700, exist_ok=True)
        path = spec.seed_dir / f"{spec.node}.tar"
        # keys inside: root-only, written in full before the container can see it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(_tar_of(spec.files))
        # writable: the node's init empties it once unpacked (it holds the node's secrets)
        return Mount(target=target, source=str(path), type="bind", read_only=False)

    def _seed_target(self, image: str) -> str | None:
        with self._seed_lock:
            if image not in self._seed_targets:
                try:
                    config = self.client.api.inspect_image(image).get("Config") or {}
                except docker.errors.ImageNotFound:
                    return None  # create_node reports it
                target = (config.get("Labels") or {}).get(SEED_LABEL)
                ours = config.get("Entrypoint") == LABCTL_INIT
                self._seed_targets[image] = target if ours and target else None
            return self._seed_targets[image]

    def nodes(self, lab: str | None = None) -> list[NodeInfo]:
        filters = {"label": [f"{LABEL_LAB}={lab}" if lab else LABEL_LAB]}
        return sorted((_info(c) for c in self._containers(filters)), key=lambda n: (n.lab, n.node))

    def _containers(self, filters: dict) -> list:
        """Inspected containers; one that vanishes between list and inspect is skipped
        (a create aborted by a killed client, a concurrent down)."""
        found = []
        for sparse in self.client.containers.list(all=True, filters=filters, sparse=True):
            try:
                found.append(self.client.containers.get(sparse.id))
            except docker.errors.NotFound:
                continue
        return found

    def labs(self) -> set[str]:
        labs = {n.lab for n in self.nodes()}
        for network in self.client.networks.list(filters={"label": LABEL_LAB}):
            labs.add(network.attrs["Labels"][LABEL_LAB])
        return labs

    def remove_lab(self, lab: str) -> list[str]:
        filters = {"label": [f"{LABEL_LAB}={lab}"]}
        containers = self.client.containers.list(all=True, filters=filters, sparse=True)

        def remove(container) -> str | None:
            try:
                # SIGKILL: lab nodes hold nothing worth a graceful stop, and down must be fast.
                container.remove(force=True)
                return f"container {container.attrs['Names'][0].lstrip('/')}"
            except docker.errors.NotFound:
                return None

        with ThreadPoolExecutor(max_workers=8) as pool:
            removed = [r for r in pool.map(remove, containers) if r]
        # Management networks of labs made by an older labctl (none are made any more).
        for network in self.client.networks.list(filters={"label": f"{LABEL_LAB}={lab}"}):
            for attempt in range(20):
                try:
                    network.remove()
                    removed.append(f"network {network.name}")
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError:
                    # endpoints of just-removed containers can linger a moment
                    time.sleep(0.1 * (attempt + 1))
        return removed

    def restart_node(self, lab: str, node: str) -> NodeInfo:
        container = self.client.containers.get(container_name(lab, node))
        container.restart(timeout=2)
        container.reload()
        return _info(container)

    def pause_node(self, lab: str, node: str, paused: bool) -> None:
        container = self.client.containers.get(container_name(lab, node))
        if paused:
            container.pause()
        else:
            container.unpause()


def _tar_of(files: tuple) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made_dirs: set[str] = set()
        for injected in files:
            parts = injected.path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in made_dirs:
                    made_dirs.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size = len(injected.content)
            info.mode = injected.mode
            tar.addfile(info, io.BytesIO(injected.content))
    return buffer.getvalue()


def _info(container) -> NodeInfo:
    attrs = container.attrs
    labels = attrs["Config"].get("Labels") or {}
    try:
        mgmt = IPv4Interface(labels[LABEL_MGMT_IPV4])
    except (KeyError, ValueError):  # not labctl's own label: no management address known
        mgmt = None
    return NodeInfo(
        lab=labels.get(LABEL_LAB, ""),
        node=labels.get(LABEL_NODE, ""),
        kind=labels.get(LABEL_KIND, ""),
        name=container.name,
        state=attrs["State"]["Status"],
        pid=attrs["State"].get("Pid") or 0,
        mgmt=mgmt,
        image=attrs["Config"].get("Image", ""),
        labels=labels,
    )
