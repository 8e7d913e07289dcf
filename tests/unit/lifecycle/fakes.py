"""A lab without Docker: a fake runtime, and SSH sessions onto a folder per node.

`FakeLab.up()` runs the real `labctl.lifecycle.up` against them: containers are records,
the fabric is a set of names, and every command a push runs either gets a scripted answer
(checks and reloads: `nft -c ...`, `vpn service ...`, `nft -f ...`) or really runs in a
shell on the node's folder (the install / restore / cleanup commands of a push), so tests
see real file outcomes.

Everything the fakes are asked to do is also appended, in order, to one `timeline` of
`(step, subject)` pairs -- containers, fabric, wiring, SSH, files, commands -- so tests can
check what happens before what. `FakeRuntime.fail_create` makes a node's container fail to
start (crash-recovery tests); a scripted answer with a non-zero status fails a command.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labctl.lifecycle import up
from labctl.mgmt.ssh import CommandResult
from labctl.progress import Progress
from labctl.runtime import NodeInfo, NodeSpec, Runtime
from labctl.topology import Lab

SCRIPTED = ("nft ", "vpn service ", "vpn connect", "vpn disconnect")

Answer = Callable[[str], tuple[int, str, str]]


def ok(_command: str) -> tuple[int, str, str]:
    return (0, "ok\n", "")


Timeline = list[tuple[str, str]]


class FakeRuntime(Runtime):
    def __init__(self, timeline: Timeline | None = None) -> None:
        self.containers: dict[tuple[str, str], NodeInfo] = {}
        self.calls: list[tuple[str, str]] = []
        self.specs: dict[str, NodeSpec] = {}  # node -> the spec `up` created it from
        self.fail_create: dict[str, Exception] = {}  # node -> what creating it raises
        self.timeline: Timeline = timeline if timeline is not None else []
        self.nodes_root: Path | None = None  # where injected files land (as put_archive)
        self._next_pid = 4010

    def create_node(self, spec: NodeSpec) -> NodeInfo:
        self.calls.append(("create_node", f"{spec.lab}/{spec.node}"))
        self.timeline.append(("create_node", spec.node))
        self.specs[spec.node] = spec
        if spec.seed_dir is not None and spec.files:
            # as DockerRuntime: the node's files wait in the state folder until its init
            # unpacks them (a real init empties the seed; a fake node never does)
            spec.seed_dir.mkdir(mode=0o700, exist_ok=True)
            (spec.seed_dir / f"{spec.node}.tar").write_bytes(b"keys and pre-shared keys")
        if spec.node in self.fail_create:
            raise self.fail_create[spec.node]
        for injected in spec.files if self.nodes_root else ():
            target = self.nodes_root / spec.node / injected.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(injected.content)
            self.timeline.append(("inject", f"{spec.node}:{injected.path}"))
        self._next_pid += 1
        info = NodeInfo(
            spec.lab,
            spec.node,
            spec.kind,
            f"labctl-{spec.lab}-{spec.node}",
            "running",
            self._next_pid,
            spec.mgmt,
            spec.image,
            spec.labels,
        )
        self.containers[(spec.lab, spec.node)] = info
        return info

    def nodes(self, lab: str | None = None) -> list[NodeInfo]:
        return [i for (name, _), i in self.containers.items() if lab in (None, name)]

    def labs(self) -> set[str]:
        return {name for name, _ in self.containers}

    def remove_lab(self, lab: str) -> list[str]:
        self.calls.append(("remove_lab", lab))
        self.timeline.append(("remove_lab", lab))
        gone = [key for key in self.containers if key[0] == lab]
        for key in gone:
            del self.containers[key]
        return [f"container labctl-{lab}-{node}" for _, node in gone]

    def restart_node(self, lab: str, node: str) -> NodeInfo:
        raise NotImplementedError

    def pause_node(self, lab: str, node: str, paused: bool) -> None:
        raise NotImplementedError


class FakeSession:
    """A node's SSH session: files land under `root`, commands run there or are scripted."""

    def __init__(self, node: str, root: Path, answers: dict[str, Answer], timeline: Timeline):
        self.node = node
        self.root = root
        self.answers = answers
        self.timeline = timeline
        self.commands: list[str] = []

    def connect(self, timeout: float = 10.0) -> FakeSession:
        self.timeline.append(("ssh", self.node))
        return self

    def close(self) -> None:
        pass

    def local(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def put_file(self, path: str, content: bytes, mode: int = 0o644) -> None:
        self.timeline.append(("put_file", f"{self.node}:{path}"))
        target = self.local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)

    def stream(self, command: str, out, err, get_pty: bool = False) -> int:
        result = self.run(command)
        out.write(result.stdout.encode())
        err.write(result.stderr.encode())
        return result.exit_status

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None):
        self.commands.append(command)
        self.timeline.append(("run", f"{self.node}: {command}"))
        if command.startswith(SCRIPTED):
            answer = next(
                (a for prefix, a in self.answers.items() if command.startswith(prefix)), ok
            )
            status, out, err = answer(command)
        else:
            local = command.replace("/etc/labctl", str(self.root / "etc/labctl"))
            proc = subprocess.run(["sh", "-c", local], capture_output=True, text=True)
            status, out, err = proc.returncode, proc.stdout, proc.stderr
        return CommandResult(self.node, command, status, out, err)


@dataclass
class FakeLab:
    """The fake runtime, the node folders and the answers their commands get."""

    root: Path
    timeline: Timeline = field(default_factory=list)
    runtime: FakeRuntime = field(init=False)
    answers: dict[str, dict[str, Answer]] = field(default_factory=dict)  # node -> prefix -> fn
    sessions: dict[str, FakeSession] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    sysctls: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runtime = FakeRuntime(self.timeline)
        self.runtime.nodes_root = self.root / "nodes"

    def session_for(self, node: str, *_args, **_kwargs) -> FakeSession:
        if node not in self.sessions:
            self.sessions[node] = FakeSession(
                node, self.root / "nodes" / node, self.answers.setdefault(node, {}), self.timeline
            )
        return self.sessions[node]

    def up(self, lab: Lab, **options) -> list[str]:
        """Run the real `up`; return its progress lines."""
        import io

        stream = io.StringIO()
        with up(lab, self.runtime, Progress(stream), **options):
            pass
        return stream.getvalue().splitlines()

    def file(self, node: str, path: str) -> Path:
        return self.root / "nodes" / node / path.lstrip("/")

    def commands(self, node: str) -> list[str]:
        return self.sessions[node].commands if node in self.sessions else []

    def forget_commands(self) -> None:
        for session in self.sessions.values():
            session.commands.clear()
        self.timeline.clear()

    def first(self, step: str, subject: str = "") -> int:
        """Index in the timeline of the first `step` whose subject starts with `subject`."""
        return next(
            i for i, (s, what) in enumerate(self.timeline) if s == step and what.startswith(subject)
        )

    def last(self, step: str, subject: str = "") -> int:
        return max(
            i for i, (s, what) in enumerate(self.timeline) if s == step and what.startswith(subject)
        )


SEED = Path(__file__).resolve().parents[3] / "topologies" / "nat-t-two-clients.yaml"


def seed_variant(folder: Path, name: str, *changes: tuple[str, str]) -> Lab:
    """The seed topology under another lab name, with text replacements, loaded from a
    file in `folder` (so its source path is real)."""
    from labctl.topology import load_lab

    text = SEED.read_text().replace("name: nat-t-two-clients", f"name: {name}")
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return load_lab(path)
