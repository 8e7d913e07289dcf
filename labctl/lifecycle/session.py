"""A running lab as labctl sees it: its nodes and management sessions to them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ..errors import LabctlError
from ..mgmt.ssh import MgmtError, NodeSession
from ..runtime import NodeInfo, Runtime
from ..topology import Lab
from ..wiring import mgmt_netns_path
from .labstate import LabState


class LabNotRunning(LabctlError):
    """The lab a command is about is not up."""


class LabHandle:
    """`lab` is the topology file's model (with its secrets), or, with secrets=False, the
    model `up` recorded (secrets masked): enough to exec, show and test, never to push."""

    def __init__(
        self,
        lab: Lab,
        runtime: Runtime,
        state: LabState,
        nodes: dict[str, NodeInfo],
        secrets: bool = True,
    ):
        self.lab = lab
        self.runtime = runtime
        self.state = state
        self.nodes = nodes
        self.secrets = secrets
        self.config_digests: dict[str, str] = {}  # node -> digest of what was pushed
        self._sessions: dict[str, NodeSession] = {}

    @classmethod
    def open(cls, lab: Lab, runtime: Runtime, secrets: bool = True) -> LabHandle:
        state = LabState.of(lab.name)
        nodes = {info.node: info for info in runtime.nodes(lab.name)}
        if not nodes or not state.key_file.exists():
            raise LabNotRunning(f"lab {lab.name} is not up (labctl status lists running labs)")
        return cls(lab, runtime, state, nodes, secrets)

    def require_secrets(self) -> None:
        if not self.secrets:  # a bug in labctl, not a user error
            raise RuntimeError(
                f"lab {self.lab.name}: a push needs the topology file's model; "
                "this handle holds the recorded one (secrets masked)"
            )

    def pushed(self, node: str, digest: str) -> None:
        """Remember what a node now runs (and in the record, once `up` has written it)."""
        self.config_digests[node] = digest
        self.state.record_pushed({node: digest})

    def session(self, node: str) -> NodeSession:
        if node not in self.nodes:
            raise MgmtError(
                f"lab {self.lab.name} has no node {node!r} (nodes: {', '.join(self.nodes)})"
            )
        if node not in self._sessions:
            info = self.nodes[node]
            if info.mgmt_ipv4 is None:
                raise MgmtError(
                    f"{node}: no management address (state {info.state}; a lab made by an "
                    f"older labctl? 'labctl down {self.lab.name}' and 'up' it again)"
                )
            self._sessions[node] = self._new_session(node).connect()
        return self._sessions[node]

    def _new_session(self, node: str) -> NodeSession:
        """Management addresses exist only in the lab's fabric namespace: connect from there."""
        address = self.nodes[node].mgmt_ipv4
        if address is None:
            raise MgmtError(f"{node}: no management address (state {self.nodes[node].state})")
        return NodeSession(
            node,
            address,
            self.state.key_file,
            self.state.known_hosts,
            netns=mgmt_netns_path(self.lab.name),
        )

    def connect_all(self, timeout: float = 15.0) -> None:
        def connect(node: str) -> None:
            self._sessions[node] = self._new_session(node).connect(timeout)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(connect, list(self.nodes)))

    def drop_session(self, node: str) -> None:
        session = self._sessions.pop(node, None)
        if session is not None:
            session.close()

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def __enter__(self) -> LabHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
