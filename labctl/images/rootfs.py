"""The base root file system: debootstrap it, slim it down, stream it out as a tar.

Everything happens in a temporary directory under the cache directory (same file system
as the package cache, allows device nodes) that is removed again on success, failure and
Ctrl-C. debootstrap mounts /proc and /sys inside its target; if it dies half-way those
mounts stay, so cleanup unmounts whatever is mounted below the target before deleting, and
refuses to delete across a mount it could not remove.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from labctl.images.errors import ImageBuildError
from labctl.images.progress import DebootstrapCounter
from labctl.images.recipes import BaseConfig

DPKG_EXCLUDES = Path("etc/dpkg/dpkg.cfg.d/01-labctl-nodoc")
TAR_CHUNK = 1 << 20
# Docker gives every container its own /dev, /proc and /sys; their contents in the tree
# (device nodes debootstrap made) do not belong in the image.
_TAR_EXCLUDES = ("./dev/*", "./proc/*", "./sys/*")


@contextlib.contextmanager
def temporary_rootfs(parent: Path) -> Iterator[Path]:
    """A fresh directory to bootstrap into; removed (after unmounting) on exit."""
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="rootfs-", dir=parent))
    try:
        yield workdir / "root"
    finally:
        remove_tree(workdir)


def mounts_below(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest first (from /proc/self/mountinfo)."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            # field 5 is the mount point, with spaces and such escaped as \040 etc.
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """Delete a bootstrap directory, never descending into something still mounted."""
    if not path.exists():
        return
    for point in mounts_below(path):
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)
    remaining = mounts_below(path)
    if remaining:
        raise ImageBuildError(
            "base: cleanup",
            f"cannot remove {path}: still mounted: {', '.join(map(str, remaining))}; "
            "unmount them and delete the directory by hand",
        )
    shutil.rmtree(path)


def debootstrap_command(config: BaseConfig, target: Path, cache_dir: Path | None) -> list[str]:
    src = config.source
    cmd = [
        "debootstrap",
        f"--variant={src.variant}",
        f"--arch={src.arch}",
        f"--components={','.join(src.components)}",
        f"--include={','.join(config.packages)}",
    ]
    if cache_dir is not None:
        cmd.append(f"--cache-dir={cache_dir}")
    cmd += [src.suite, str(target), src.mirror]
    return cmd


def run_debootstrap(
    config: BaseConfig,
    target: Path,
    *,
    cache_dir: Path | None,
    log_path: Path,
    report: Callable[[str], None],
    tick: float = 1.0,
) -> DebootstrapCounter:
    """Run debootstrap, its output into `log_path`, a status line into `report` every tick.

    Returns the counter (it knows which packages were used). Raises ImageBuildError naming
    debootstrap's own last error line and the log file.
    """
    if os.geteuid() != 0:
        raise ImageBuildError("base: debootstrap", "debootstrap needs root (run labctl as root)")
    if shutil.which("debootstrap") is None:
        raise ImageBuildError(
            "base: debootstrap", "debootstrap is not installed (apt-get install debootstrap)"
        )
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = debootstrap_command(config, target, cache_dir)
    counter = DebootstrapCounter()
    started = time.monotonic()
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        # own session: Ctrl-C reaches us, and we stop debootstrap and its children as a group
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _pump_lines(
                proc,
                log,
                counter,
                lambda: report(f"{counter.status()}, {time.monotonic() - started:.0f} s"),
                tick,
            )
            returncode = proc.wait()
        except BaseException:
            _stop_group(proc)
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        if returncode != 0:
            # debootstrap's detailed log (dpkg errors) lives in the target; keep it
            inner_log = target / "debootstrap" / "debootstrap.log"
            if inner_log.is_file():
                log.write(b"\n--- debootstrap/debootstrap.log from the target ---\n")
                log.write(inner_log.read_bytes())
            reason = counter.last_error or f"exited with status {returncode}"
            raise ImageBuildError("base: debootstrap", f"debootstrap: {reason}", log_path)
    return counter


def _pump_lines(
    proc: subprocess.Popen[bytes],
    log,
    counter: DebootstrapCounter,
    report: Callable[[], None],
    tick: float,
) -> None:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    pending = b""
    fd = proc.stdout.fileno()
    while True:
        if selector.select(timeout=tick):
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            log.write(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                counter.feed(line.decode(errors="replace"))
        report()
    if pending:
        counter.feed(pending.decode(errors="replace"))
    log.flush()


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child we started (and its process group), SIGTERM first."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass(frozen=True)
class SlimResult:
    removed_files: int
    removed_bytes: int
    size_bytes: int


def parse_dpkg_path_rules(path: Path) -> list[tuple[bool, str]]:
    """(include?, glob) pairs from a dpkg.cfg fragment's path-exclude/path-include lines."""
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        for key, include in (("path-exclude", False), ("path-include", True)):
            if line.startswith(key + "="):
                rules.append((include, line.split("=", 1)[1].strip()))
    return rules


def excluded_by_dpkg_rules(rules: list[tuple[bool, str]], path: str) -> bool:
    """dpkg's semantics: the last rule whose glob matches decides; `*` also matches '/'."""
    excluded = False
    for include, glob in rules:
        if fnmatch.fnmatchcase(path, glob):
            excluded = not include
    return excluded


def slim_rootfs(root: Path, config: BaseConfig) -> SlimResult:
    """Apply the overlay, then drop what the dpkg path rules and cleanup globs name."""
    apply_overlay(config.overlay_dir, root)
    removed_files = removed_bytes = 0
    rules_file = root / DPKG_EXCLUDES
    rules = parse_dpkg_path_rules(rules_file) if rules_file.is_file() else []
    if rules:
        for dirpath, _dirnames, filenames in os.walk(root / "usr" / "share"):
            for name in filenames:
                full = Path(dirpath) / name
                if excluded_by_dpkg_rules(rules, "/" + full.relative_to(root).as_posix()):
                    removed_bytes += full.lstat().st_size
                    full.unlink()
                    removed_files += 1
        _remove_empty_dirs(root / "usr" / "share", rules, root)
    for glob in config.cleanup_globs:
        for match in sorted(root.glob(glob), reverse=True):
            if match.is_dir() and not match.is_symlink():
                removed_bytes += _tree_size(match)
                shutil.rmtree(match)
            else:
                removed_bytes += match.lstat().st_size
                match.unlink()
            removed_files += 1
    return SlimResult(removed_files, removed_bytes, _tree_size(root))


def apply_overlay(overlay: Path, root: Path) -> None:
    """Copy the recipe's rootfs overlay into the tree, owned by root, modes kept."""
    if not overlay.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(overlay):
        rel = Path(dirpath).relative_to(overlay)
        target_dir = root / rel
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            dest = target_dir / name
            shutil.copy2(Path(dirpath) / name, dest, follow_symlinks=False)
            if os.geteuid() == 0:  # always the case for a real build (debootstrap needs root)
                os.lchown(dest, 0, 0)


def _remove_empty_dirs(top: Path, rules: list[tuple[bool, str]], root: Path) -> None:
    """Remove directories the dpkg rules emptied (only those the rules cover)."""
    for dirpath, _dirnames, _filenames in os.walk(top, topdown=False):
        path = Path(dirpath)
        rel = "/" + path.relative_to(root).as_posix()
        if excluded_by_dpkg_rules(rules, rel + "/x") and not any(path.iterdir()):
            path.rmdir()


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


@contextlib.contextmanager
def tar_stream(root: Path, log_path: Path) -> Iterator[Iterator[bytes]]:
    """A tar of `root` as an iterator of chunks, produced by GNU tar as it is read.

    Numeric owners and file capabilities (ping's cap_net_raw) are kept. The stream is
    checked on exit: if tar failed, ImageBuildError is raised.
    """
    cmd = [
        "tar", "--create", "--file=-", f"--directory={root}", "--numeric-owner",
        "--xattrs", "--xattrs-include=security.capability",
        *(f"--exclude={pattern}" for pattern in _TAR_EXCLUDES), ".",
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log)
        stdout = proc.stdout
        assert stdout is not None

        def chunks() -> Iterator[bytes]:
            while chunk := stdout.read(TAR_CHUNK):
                yield chunk

        try:
            yield chunks()
        except BaseException:
            proc.kill()
            raise
        finally:
            stdout.close()
            returncode = proc.wait()
        if returncode != 0:
            raise ImageBuildError("base: import", f"tar exited with status {returncode}", log_path)
