"""Docker runtime: nodes are containers with only a management interface from Docker.

Lab links never use Docker networks (see DESIGN.md: internal networks drop routed traffic,
others leak to the uplink). The management network is a per-lab ``--internal`` network the
host reaches; its default route is removed inside each node by the wiring step.
"""

from __future__ import annotations

import io
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv4Network, ip_network

import docker
import docker.errors
from docker.types import IPAMConfig, IPAMPool

from ..naming import (
    LABEL_KIND,
    LABEL_LAB,
    LABEL_NODE,
    LABEL_ROLE,
    container_name,
    mgmt_network_name,
)
from .base import LabRuntimeError, MgmtNetwork, NodeInfo, NodeSpec, Runtime

# Candidate management subnets, tried in order; the first that overlaps nothing wins.
_MGMT_CANDIDATES = [
    *(ip_network(f"172.30.{i}.0/24") for i in range(0, 256)),
    *(ip_network(f"10.254.{i}.0/24") for i in range(0, 256)),
]


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

    # --- management network ------------------------------------------------------------

    def mgmt_network(self, lab: str) -> MgmtNetwork | None:
        try:
            network = self.client.networks.get(mgmt_network_name(lab))
        except docker.errors.NotFound:
            return None
        return _mgmt_from_attrs(network.attrs)

    def ensure_mgmt_network(
        self, lab: str, wanted: IPv4Network | None, avoid: list[IPv4Network]
    ) -> MgmtNetwork:
        existing = self.mgmt_network(lab)
        if existing is not None:
            return existing
        taken = [*avoid, *self._used_subnets()]
        candidates = [wanted] if wanted else _MGMT_CANDIDATES
        last_error = "no candidate subnet is free"
        for subnet in candidates:
            if any(subnet.overlaps(t) for t in taken):
                continue
            gateway = next(subnet.hosts())
            try:
                network = self.client.networks.create(
                    mgmt_network_name(lab),
                    driver="bridge",
                    internal=True,
                    ipam=IPAMConfig(
                        pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(gateway))]
                    ),
                    labels={LABEL_LAB: lab, LABEL_ROLE: "mgmt"},
                    options={"com.docker.network.bridge.enable_ip_masquerade": "false"},
                )
            except docker.errors.APIError as exc:
                # Another lab may have taken it a moment ago: try the next one.
                last_error = str(exc.explanation or exc)
                if "already exists" in last_error:
                    found = self.mgmt_network(lab)
                    if found:
                        return found
                continue
            network.reload()
            return _mgmt_from_attrs(network.attrs)
        raise LabRuntimeError(f"lab {lab}: cannot create a management network: {last_error}")

    def _used_subnets(self) -> list[IPv4Network]:
        used = []
        for network in self.client.networks.list():
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
                try:
                    subnet = ip_network(config.get("Subnet", ""))
                except ValueError:
                    continue
                if subnet.version == 4:
                    used.append(subnet)
        return used

    # --- nodes -------------------------------------------------------------------------

    def create_node(self, spec: NodeSpec, mgmt: MgmtNetwork) -> NodeInfo:
        name = container_name(spec.lab, spec.node)
        labels = {
            **spec.labels,
            LABEL_LAB: spec.lab,
            LABEL_NODE: spec.node,
            LABEL_KIND: spec.kind,
            LABEL_ROLE: "node",
        }
        try:
            container = self.client.containers.create(
                spec.image,
                name=name,
                hostname=spec.node,
                labels=labels,
                environment=spec.env,
                network=mgmt.name,
                cap_add=["NET_ADMIN", "NET_RAW"],
                devices=["/dev/net/tun:/dev/net/tun:rwm"] if spec.needs_tun else [],
                sysctls=spec.sysctls,
                detach=True,
                stop_signal="SIGTERM",
                # Lab nodes are disposable: never restarted by the engine behind our back.
                restart_policy={"Name": "no"},
            )
        except docker.errors.ImageNotFound:
            raise LabRuntimeError(
                f"node {spec.node}: image {spec.image} not found; run 'labctl images build'"
            ) from None
        except docker.errors.APIError as exc:
            raise LabRuntimeError(
                f"node {spec.node}: cannot create container {name}: {exc.explanation or exc}"
            ) from None
        if spec.files:
            container.put_archive("/", _tar_of(spec.files))
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise LabRuntimeError(
                f"node {spec.node}: container {name} did not start: "
                f"{exc.explanation or exc}; see 'docker logs {name}'"
            ) from None
        container.reload()
        return _info(container)

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


def _mgmt_from_attrs(attrs: dict) -> MgmtNetwork:
    config = (attrs.get("IPAM") or {}).get("Config") or [{}]
    gateway = config[0].get("Gateway")
    return MgmtNetwork(
        name=attrs["Name"],
        subnet=ip_network(config[0]["Subnet"]),
        gateway=IPv4Address(gateway) if gateway else None,
    )


def _info(container) -> NodeInfo:
    attrs = container.attrs
    labels = attrs["Config"].get("Labels") or {}
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    mgmt_ip = None
    for network in networks.values():
        if network.get("IPAddress"):
            mgmt_ip = IPv4Address(network["IPAddress"])
    return NodeInfo(
        lab=labels.get(LABEL_LAB, ""),
        node=labels.get(LABEL_NODE, ""),
        kind=labels.get(LABEL_KIND, ""),
        name=container.name,
        state=attrs["State"]["Status"],
        pid=attrs["State"].get("Pid") or 0,
        mgmt_ipv4=mgmt_ip,
        image=attrs["Config"].get("Image", ""),
        labels=labels,
    )
