"""`labctl up`: from a validated lab to running, wired, configured nodes.

Stages: images -> keys -> fabric and management bridge -> nodes -> links, management
ports and addressing -> management plane (SSH) -> configuration push -> node exec hooks.
A failure part-way removes what was made (unless keep_on_failure), so nothing is left
half-built.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path

from ..kinds.registry import implementation_of, spec_of
from ..kinds.spec import PushStage
from ..mgmt.keys import KeyPair
from ..naming import (
    LABEL_TOPOLOGY,
    LABEL_TOPOLOGY_HASH,
    MGMT_BRIDGE,
    bridge_name,
    container_name,
    fabric_netns,
)
from ..progress import Progress
from ..render import NodeConfig, render_node
from ..runtime import InjectedFile, NodeInfo, NodeSpec, Runtime
from ..topology import Lab, NodeBase
from ..wiring import (
    MgmtPlan,
    MgmtPlanError,
    attach_nodes,
    configure_node,
    connect_endpoints,
    create_fabric,
    create_mgmt_bridge,
    list_named_netns,
    plan_mgmt,
)
from .down import down
from .errors import LabUpError, PushError
from .health import assess
from .labstate import LabState
from .lock import lab_lock
from .pki import planned as planned_certificates
from .pki import with_certificates
from .push import push_node
from .record import config_digest, recorded_model, structure, structure_differences, summarize
from .session import LabHandle


def structure_hash(lab: Lab) -> str:
    """Identity of what only a rebuild changes (not secrets, configuration or checks)."""
    text = json.dumps(structure(recorded_model(lab)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def up(
    lab: Lab,
    runtime: Runtime,
    progress: Progress,
    keep_on_failure: bool = False,
    recreate: bool = False,
) -> LabHandle:
    """Bring the lab up; on a running lab, push the nodes whose configuration changed
    (or, with recreate, rebuild a lab whose structure changed)."""
    with lab_lock(lab.name, "labctl up"):
        return _up(lab, runtime, progress, keep_on_failure, recreate)


@dataclass
class UpPlan:
    """What `up` will do to reach `lab`: decided before anything is touched. `up` acts on
    it; `up --dry-run` prints it (describe)."""

    lab: Lab
    mgmt: MgmtPlan
    action: str  # "build" | "rebuild" | "refuse" | "push" | "nothing"
    reason: str = ""
    leftovers: bool = False  # remnants of an interrupted run go first
    differences: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # "push": nodes, in push order

    def describe(self) -> list[str]:
        lab = self.lab
        if self.action == "refuse":
            return [_refusal(lab, self.differences)]
        if self.action == "nothing":
            return [f"lab {lab.name} is already up ({len(lab.nodes)} nodes); nothing to do"]
        if self.action == "push":
            lines = [f"lab {lab.name} is up; would re-push (configuration changed):"]
            for node in self.changed:
                config = render_node(lab, node)
                files = ", ".join(f.path for f in config.files) + planned_certificates(lab, node)
                lines.append(f"  push {node}: {files}")
                lines += [f"    then run: {command}" for command in config.reload_commands]
            return lines
        lines = []
        if self.action == "rebuild":
            lines.append(f"remove lab {lab.name} ({self.reason}), then build it again:")
        elif self.leftovers:
            lines.append(f"remove the leftovers of an interrupted run of {lab.name}, then:")
        return lines + _build_outline(lab, self.mgmt)


def plan_up(lab: Lab, runtime: Runtime, recreate: bool = False) -> UpPlan:
    """Decide what `up` does; reads state, changes nothing."""
    try:
        mgmt = plan_mgmt(lab)  # before anything exists: a subnet too small creates nothing
    except MgmtPlanError as exc:
        raise LabUpError(f"lab {lab.name}: {exc}") from None
    existing = runtime.nodes(lab.name)
    if not existing:
        leftovers = fabric_netns(lab.name) in list_named_netns() or LabState.of(lab.name).exists()
        return UpPlan(lab, mgmt, "build", leftovers=leftovers)
    state = LabState.of(lab.name)
    record = state.read_record()
    health = assess(lab.name, existing, record, fabric_netns(lab.name) in list_named_netns())
    if not health.ok:
        return UpPlan(lab, mgmt, "rebuild", reason=f"it is {health.text()}")
    assert record is not None  # a healthy lab has its record
    if "model" in record:
        differences = structure_differences(record["model"], recorded_model(lab))
    else:
        differences = ["it was brought up by an older labctl that recorded no model"]
    if differences:
        if recreate:
            return UpPlan(
                lab, mgmt, "rebuild", reason=summarize(differences), differences=differences
            )
        return UpPlan(lab, mgmt, "refuse", differences=differences)
    recorded = record.get("config_digests", {})
    key = state.digest_key()
    changed = [  # in the order they are pushed
        n
        for batch in push_order(lab)
        for n in batch
        if config_digest(render_node(lab, n), key) != recorded.get(n)
    ]
    return UpPlan(lab, mgmt, "push" if changed else "nothing", changed=changed)


def _refusal(lab: Lab, differences: list[str]) -> str:
    source = str(lab.source) if lab.source else "FILE"
    return (
        f"lab {lab.name} is running with a different topology: {summarize(differences)}. "
        f"To apply it: labctl up {source} --name {lab.name} --recreate "
        f"(or labctl down {lab.name}, then labctl up again)"
    )


def _build_outline(lab: Lab, mgmt: MgmtPlan) -> list[str]:
    """What building the lab creates, in the order _build creates it."""
    lines = [
        f"create netns {fabric_netns(lab.name)} with bridge {MGMT_BRIDGE} ({mgmt.subnet})",
        f"create state {LabState.of(lab.name).directory} (lab key, host keys, record)",
    ]
    for name, node in lab.nodes.items():
        lines.append(
            f"create container {container_name(lab.name, name)} ({node.kind}, "
            f"management {mgmt.nodes[name]})"
        )
    for segment in lab.segments:
        ends = ", ".join(str(e) for e in segment.endpoints)
        lines.append(f"create link {segment.name}: bridge {bridge_name(segment.index)} [{ends}]")
    for batch in push_order(lab):
        for name in batch:
            config = render_node(lab, name)
            files = (", ".join(f.path for f in config.files) or "-") + planned_certificates(
                lab, name
            )
            reload = "; ".join(config.reload_commands) or "nothing to reload"
            lines.append(f"push {name}: {files} (copied in before it starts), then: {reload}")
    return lines


def _up(
    lab: Lab, runtime: Runtime, progress: Progress, keep_on_failure: bool, recreate: bool
) -> LabHandle:
    plan = plan_up(lab, runtime, recreate)
    if plan.action == "refuse":
        raise LabUpError(_refusal(lab, plan.differences))
    if plan.action in ("push", "nothing"):
        return _bring_in_line(plan, runtime, progress)
    if plan.action == "rebuild":
        verb = "recreating" if plan.differences else "rebuilding"  # asked for, or needed
        progress.say(f"lab {lab.name}: {verb} it ({plan.reason})")
        down(lab.name, runtime, progress)
    elif plan.leftovers:
        progress.say(f"lab {lab.name}: removing leftovers of an interrupted run")
        down(lab.name, runtime, progress)
    try:
        return _build(lab, runtime, progress, plan.mgmt)
    except BaseException:
        if keep_on_failure:
            # Kept for inspection, but no node's keys or pre-shared keys stay on the host
            # (a node that never booted keeps an empty seed: it never got its files).
            _empty_seeds(LabState.of(lab.name).directory / "seed")
            progress.say(f"lab {lab.name}: left as it is for inspection (--keep-on-failure)")
        else:
            progress.say(f"lab {lab.name}: removing what was built")
            down(lab.name, runtime, Progress(progress.stream, quiet=True))
        raise


def _bring_in_line(plan: UpPlan, runtime: Runtime, progress: Progress) -> LabHandle:
    """A handle on the running lab with the changed nodes re-pushed."""
    lab = plan.lab
    handle = LabHandle.open(lab, runtime)
    try:
        if plan.changed:
            with progress.stage(f"configuration push ({', '.join(plan.changed)}: changed)"):
                push_nodes(handle, plan.changed)
            progress.say(
                f"lab {lab.name} is up; re-pushed {', '.join(plan.changed)} (configuration changed)"
            )
        else:
            progress.say(f"lab {lab.name} is already up ({len(lab.nodes)} nodes); nothing to do")
    except BaseException:
        handle.close()
        raise
    state = handle.state
    state.write_record({**(state.read_record() or {}), "model": recorded_model(lab)})
    return handle


def push_nodes(handle: LabHandle, nodes: list[str], initial: bool = False) -> None:
    """Push nodes in push_order batches, a batch in parallel; stop after a failed batch."""
    for index, batch in enumerate(push_order(handle.lab)):
        wanted = [n for n in batch if n in nodes]
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = {n: pool.submit(push_node, handle, n, initial) for n in wanted}
        failures = [str(f.exception()) for f in futures.values() if f.exception() is not None]
        if failures:
            later = [n for b in push_order(handle.lab)[index + 1 :] for n in b if n in nodes]
            raise PushError(
                "; ".join(failures) + (f" (not pushed: {', '.join(later)})" if later else "")
            )


def _build(lab: Lab, runtime: Runtime, progress: Progress, mgmt: MgmtPlan) -> LabHandle:
    started = time.monotonic()
    images = {}
    with progress.stage("images"):
        images = _resolve_images(lab, progress)

    state = LabState.of(lab.name)
    host_keys: dict[str, KeyPair] = {}
    with progress.stage("keys"):
        client_key = state.create_client_key()
        for node in lab.nodes:
            host_keys[node] = KeyPair.generate(f"{node}.{lab.name}")

    with progress.stage("fabric and management bridge"):
        # The fabric namespace first: it is what `down` finds a half-built lab by, too.
        create_fabric(lab)
        create_mgmt_bridge(lab.name, mgmt)
        progress.say(f"  management {mgmt.subnet} in netns {fabric_netns(lab.name)}")

    infos: dict[str, NodeInfo] = {}
    with progress.stage(f"nodes ({len(lab.nodes)} containers)"):
        # Each node's configuration goes in with its SSH keys, in one archive the node has
        # before its sshd starts (a mount its init unpacks and empties, or put_archive for
        # another init): the first push then only reloads (one SSH command per node
        # instead of an SFTP session and five commands).
        topology_hash = structure_hash(lab)  # once: it serializes the whole lab
        with ThreadPoolExecutor(max_workers=8) as pool:
            # each spec submitted as soon as it is rendered: the first containers are
            # being created while the later nodes' files are still rendered
            futures = [
                pool.submit(
                    runtime.create_node,
                    _node_spec(
                        lab,
                        topology_hash,
                        name,
                        images,
                        client_key,
                        host_keys[name],
                        mgmt.nodes[name],
                        state.directory / "seed",
                        # the lab CA and node certificates come from the state folder
                        with_certificates(lab, name, state.directory, render_node(lab, name)),
                    ),
                )
                for name in lab.nodes
            ]
            for future in futures:
                info = future.result()
                infos[info.node] = info

    with progress.stage(f"links ({len(lab.segments)} segments)"):
        pids = {name: info.pid for name, info in infos.items()}
        connect_endpoints(lab, pids)
        attach_nodes(lab.name, mgmt.attachments(pids))
        for name, info in infos.items():
            configure_node(lab, name, info.pid, mgmt=mgmt.nodes[name])

    with progress.stage("management plane (ssh)"):
        state.save_host_keys({n: host_keys[n].public_openssh for n in lab.nodes})
        state.pin_host_keys(
            {str(infos[n].mgmt_ipv4): host_keys[n].public_openssh for n in lab.nodes}
        )
        handle = LabHandle(lab, runtime, state, infos)
        handle.connect_all()
        # Every sshd answers, so every init has unpacked its seed and emptied it; empty
        # any left (an init killed in between): the seeds hold keys and pre-shared keys.
        _empty_seeds(state.directory / "seed")

    with progress.stage("configuration push"):
        push_nodes(handle, list(lab.nodes), initial=True)
        for name, model in lab.nodes.items():
            for command in model.exec:
                handle.session(name).run(command).check()

    state.write_record(
        {
            "name": lab.name,
            "topology": str(lab.source.resolve()) if lab.source else None,
            "structure_hash": topology_hash,
            "mgmt_subnet": str(mgmt.subnet),
            "mgmt_netns": fabric_netns(lab.name),
            "nodes": {n: {"mgmt_ipv4": str(i.mgmt_ipv4), "kind": i.kind} for n, i in infos.items()},
            "up_seconds": round(time.monotonic() - started, 3),
            # Secrets masked, checks left out: what exec/show/status open the lab from.
            "model": recorded_model(lab),
            # Keyed digests of what each node runs, never the values: `up` re-pushes changes.
            "config_digests": dict(handle.config_digests),
        }
    )
    progress.say(f"lab {lab.name} is up: {len(infos)} nodes in {time.monotonic() - started:.2f}s")
    return handle


def push_order(lab: Lab) -> list[list[str]]:
    """Batches of nodes to configure, one after the other, by their kinds' push stages:
    the network first, VPN clients last. A client's agent connects as soon as it starts;
    before the PAT's rules are loaded its first IKE packets would be forwarded untranslated
    (and conntrack would keep that flow untranslated), and before the concentrator's agent
    runs nobody answers them -- either way the client times out and backs off, which with
    many clients took a minute."""
    stages = {name: spec_of(node.kind).push_stage for name, node in lab.nodes.items()}
    batches = [[name for name in lab.nodes if stages[name] == stage] for stage in PushStage]
    return [batch for batch in batches if batch]


def _resolve_images(lab: Lab, progress: Progress) -> dict[str, str]:
    """Tags per image role, building what is missing; nodes with an explicit image skip it."""
    if all(node.image for node in lab.nodes.values()):
        return {}
    from ..images import ConsoleProgress, ensure_images
    from ..images import project_root as images_project_root

    reporter = None if progress.quiet else ConsoleProgress(progress.stream)
    # Only the roles this lab runs on (and their parents): a lab without strongSwan nodes
    # never builds the strongSwan image.
    roles = sorted({implementation_of(n).image_role for n in lab.nodes.values() if not n.image})
    image_set = ensure_images(images_project_root(), progress=reporter, roles=roles)
    return dict(image_set.tags)


def _image_for(node: NodeBase, images: dict[str, str]) -> str:
    """The topology's image for the node, else the image of what its kind runs."""
    return node.image or images[implementation_of(node).image_role]


def _empty_seeds(folder: Path) -> None:
    for seed in folder.glob("*.tar") if folder.is_dir() else ():
        if seed.stat().st_size:
            seed.write_bytes(b"")


def _node_spec(
    lab: Lab,
    topology_hash: str,
    name: str,
    images: dict[str, str],
    client_key: KeyPair,
    host_key: KeyPair,
    mgmt: IPv4Interface,
    seed_dir: Path | None = None,
    config: NodeConfig | None = None,
) -> NodeSpec:
    node = lab.node(name)
    kind = spec_of(node.kind)
    sysctls = {key: str(value) for key, value in node.sysctls.items()}
    if kind.forwarding:
        sysctls.setdefault("net.ipv4.ip_forward", "1")
    # Lab nodes never speak IPv6 on their links: no router solicitations or DAD noise.
    sysctls.setdefault("net.ipv6.conf.all.disable_ipv6", "1")
    sysctls.setdefault("net.ipv6.conf.default.disable_ipv6", "1")
    labels = {
        **node.labels,
        LABEL_TOPOLOGY: str(lab.source.resolve()) if lab.source else "",
        LABEL_TOPOLOGY_HASH: topology_hash,
    }
    return NodeSpec(
        lab=lab.name,
        node=name,
        kind=node.kind,
        image=_image_for(node, images),
        labels=labels,
        env=dict(node.env),
        sysctls=sysctls,
        needs_tun=kind.needs_tun,
        mgmt=mgmt,
        files=(
            InjectedFile(
                "/etc/labctl/ssh/authorized_keys",
                (client_key.public_openssh + "\n").encode(),
                0o600,
            ),
            InjectedFile("/etc/labctl/ssh/ssh_host_ed25519_key", host_key.private_openssh, 0o600),
            InjectedFile(
                "/etc/labctl/ssh/ssh_host_ed25519_key.pub",
                (host_key.public_openssh + "\n").encode(),
                0o644,
            ),
            *(InjectedFile(f.path, f.content, f.mode) for f in (config.files if config else ())),
        ),
        seed_dir=seed_dir,
    )
