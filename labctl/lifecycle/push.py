"""Pushing rendered configuration into a running node, as one transaction.

stage -> check -> install -> reload. The rendered files go to staging names first and are
checked there by the tool that will read them (`nft -c -f`, `vpn service check`); only then
do they replace the live files (the old ones kept as hard links). If the reload still fails,
the previous files are put back and reloaded. Either way a failed push leaves the node
running its last good configuration and raises PushError naming the node, the file and the
tool's own error line.
"""

from __future__ import annotations

import hashlib
import shlex

from ..mgmt.ssh import CommandResult, NodeSession
from ..render import NodeConfig, RenderedFile, render_node
from ..wiring import pid_netns_path, write_sysctls
from .errors import PushError
from .lock import lab_lock
from .pki import with_certificates
from .record import config_digest
from .session import LabHandle

# A reload may start a VPN agent, which waits up to 60 s for it to answer (agent
# service.START_WAIT: a large lab's clients start together on a loaded machine); the
# command gets that and some room to report why it failed.
RELOAD_TIMEOUT = 90.0
STAGED = ".labctl-new"
PREVIOUS = ".labctl-prev"


def push_node(handle: LabHandle, node: str, initial: bool = False) -> list[str]:
    """Install the node's rendered files and run its reload commands; return what ran.

    initial: the node runs nothing of ours yet (`up` is building the lab) and was created
    with its rendered files in place (`up` puts them in with the SSH keys before the
    container starts): nothing to copy, check, keep or roll back (a failure removes the lab
    anyway), only the reload commands run -- one SSH command per node."""
    with lab_lock(handle.lab.name, "labctl push"):
        handle.require_secrets()
        config = render_node(handle.lab, node)
        digest = config_digest(config, handle.state.digest_key())  # rendered files only
        config = with_certificates(handle.lab, node, handle.state.directory, config)
        _apply(handle, node, config, initial)
        handle.pushed(node, digest)
    return [f.path for f in config.files] + list(config.reload_commands)


def plan_push(handle: LabHandle, node: str) -> list[str]:
    """What push_node would install and run on the node, each file compared with the
    node's copy (by hash, on the node; neither contents nor hashes are shown)."""
    handle.require_secrets()
    config = with_certificates(
        handle.lab, node, handle.state.directory, render_node(handle.lab, node)
    )
    session = handle.session(node)
    # One line per file, in order: its sha256, or "-" when the node has no such file.
    listing = session.run(
        _each([f.path for f in config.files], 'sha256sum < "$p" 2>/dev/null || echo -')
    ).stdout.split("\n")
    on_node = {}
    for rendered, line in zip(config.files, listing, strict=False):
        digest = line.split()[0] if line.split() else "-"
        if digest != "-":
            on_node[rendered.path] = digest
    lines = []
    for rendered in config.files:
        current = on_node.get(rendered.path)
        if current is None:
            lines.append(f"create {rendered.path}")
        elif current != hashlib.sha256(rendered.content).hexdigest():
            lines.append(f"change {rendered.path}")
        else:
            lines.append(f"unchanged {rendered.path}")
        if rendered.check and current != hashlib.sha256(rendered.content).hexdigest():
            lines.append(f"  check with: {rendered.check.format(path='FILE')}")
    lines += [f"run {command}" for command in config.reload_commands]
    return lines


def _apply(handle: LabHandle, node: str, config: NodeConfig, initial: bool) -> None:
    session = handle.session(node)
    if initial:
        failed = _reload(handle, session, node, config)
        if failed is not None:
            raise PushError(f"push {node}: {failed}")
        return
    paths = [f.path for f in config.files]
    for rendered in config.files:
        session.put_file(rendered.path + STAGED, rendered.content, rendered.mode)
    try:
        for rendered in config.files:
            _check(session, node, rendered)
    except PushError:
        session.run(_discard_staged_command(paths))
        raise
    installed = session.run(_install_command(paths))
    if installed.exit_status != 0:
        session.run(_restore_command(paths))
        raise PushError(
            f"push {node}: installing {', '.join(paths)} failed: {_error_line(installed)}; "
            "the node keeps its running configuration"
        )
    failed = _reload(handle, session, node, config)
    if failed is None:
        session.run(_forget_previous_command(paths))
        return
    raise PushError(f"push {node}: {failed}; {_roll_back(session, config, paths)}")


def _check(session: NodeSession, node: str, rendered: RenderedFile) -> None:
    if rendered.check is None:
        return
    staged = rendered.path + STAGED
    command = rendered.check.format(path=shlex.quote(staged))
    result = session.run(command)
    if result.exit_status != 0:
        line = _error_line(result).replace(staged, rendered.path)
        raise PushError(
            f"push {node}: {rendered.path} rejected by '{rendered.check.format(path='FILE')}': "
            f"{line}; the node keeps its running configuration"
        )


def _reload(handle: LabHandle, session: NodeSession, node: str, config: NodeConfig) -> str | None:
    """Apply the installed files; None when all went well, else what failed."""
    if config.host_sysctls:
        try:
            write_sysctls(pid_netns_path(handle.nodes[node].pid), config.host_sysctls)
        except (OSError, ValueError) as exc:
            return f"setting {', '.join(config.host_sysctls)} failed: {exc}"
    for command in config.reload_commands:
        result = session.run(command, timeout=RELOAD_TIMEOUT)
        if result.exit_status != 0:
            return f"'{command}' exited {result.exit_status}: {_error_line(result)}"
    return None


def _roll_back(session: NodeSession, config: NodeConfig, paths: list[str]) -> str:
    """Put the previous files back and reload them; say how that went."""
    restored = session.run(_restore_command(paths))
    if restored.exit_status != 0:
        return f"restoring the previous files failed too: {_error_line(restored)}"
    for command in config.reload_commands:
        result = session.run(command)
        if result.exit_status != 0:
            return (
                "restored the previous files, but reloading them failed too: "
                f"'{command}': {_error_line(result)}"
            )
    return "restored the previous configuration and reloaded it"


def _error_line(result: CommandResult) -> str:
    """The tool's own error line: the first line that says 'error', else its last line."""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if "error" in line.lower():
            return line
    return lines[-1] if lines else f"exit status {result.exit_status}, no output"


def _each(paths: list[str], body: str) -> str:
    quoted = " ".join(shlex.quote(p) for p in paths)
    return f"for p in {quoted}; do {body}; done"


def _install_command(paths: list[str]) -> str:
    # Every old file is kept (a hard link) before any new one moves in, so a restore after
    # a failure half-way knows for each file whether it was replaced.
    keep = f'rm -f "$p{PREVIOUS}"; if [ -e "$p" ]; then ln "$p" "$p{PREVIOUS}"; fi'
    move = f'mv -f "$p{STAGED}" "$p"'
    return f"set -e; {_each(paths, keep)}; {_each(paths, move)}"


def _restore_command(paths: list[str]) -> str:
    # Not moved in yet: drop the staged copy. Moved in: the previous file back, or none.
    body = (
        f'if [ -e "$p{STAGED}" ]; then rm -f "$p{STAGED}"; '
        f'elif [ -e "$p{PREVIOUS}" ]; then mv -f "$p{PREVIOUS}" "$p"; '
        'else rm -f "$p"; fi'
    )
    return _each(paths, body)


def _discard_staged_command(paths: list[str]) -> str:
    return _each(paths, f'rm -f "$p{STAGED}"')


def _forget_previous_command(paths: list[str]) -> str:
    return _each(paths, f'rm -f "$p{PREVIOUS}"')
