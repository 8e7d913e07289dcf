"""Post-processing of the base root file system, its tar stream and safe cleanup."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from labctl.images.errors import ImageBuildError
from labctl.images.recipes import load_base_config
from labctl.images.rootfs import (
    debootstrap_command,
    excluded_by_dpkg_rules,
    mounts_below,
    parse_dpkg_path_rules,
    remove_tree,
    slim_rootfs,
    tar_stream,
    temporary_rootfs,
)

REAL_ROOT = Path(__file__).resolve().parents[3]
NODOC = REAL_ROOT / "images/base/rootfs/etc/dpkg/dpkg.cfg.d/01-labctl-nodoc"


def test_dpkg_rules_last_match_wins() -> None:
    rules = parse_dpkg_path_rules(NODOC)
    assert excluded_by_dpkg_rules(rules, "/usr/share/doc/bash/README")
    assert not excluded_by_dpkg_rules(rules, "/usr/share/doc/bash/copyright")
    assert excluded_by_dpkg_rules(rules, "/usr/share/man/man1/ls.1.gz")
    assert excluded_by_dpkg_rules(rules, "/usr/share/locale/de/LC_MESSAGES/apt.mo")
    assert not excluded_by_dpkg_rules(rules, "/usr/share/locale/locale.alias")
    assert not excluded_by_dpkg_rules(rules, "/usr/lib/locale/C.utf8/LC_CTYPE")
    assert not excluded_by_dpkg_rules(rules, "/usr/bin/python3")


def _touch(root: Path, rel: str, data: bytes = b"x" * 100) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_slim_rootfs_drops_docs_caches_and_host_keys(tmp_path: Path) -> None:
    root = tmp_path / "root"
    kept = [
        "usr/bin/python3",
        "usr/share/doc/bash/copyright",
        "usr/share/locale/locale.alias",
        "usr/lib/locale/C.utf8/LC_CTYPE",
        "etc/ssh/sshd_config",
        "var/lib/dpkg/status",
    ]
    dropped = [
        "usr/share/doc/bash/README.gz",
        "usr/share/man/man1/bash.1.gz",
        "usr/share/locale/de/LC_MESSAGES/bash.mo",
        "var/cache/apt/archives/bash_5.2_amd64.deb",
        "var/cache/apt/pkgcache.bin",
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
        "var/log/dpkg.log",
        "var/lib/dpkg/status-old",
        "etc/ssh/ssh_host_ed25519_key",
        "etc/ssh/ssh_host_ed25519_key.pub",
        "etc/resolv.conf",
    ]
    for rel in kept + dropped:
        _touch(root, rel)
    result = slim_rootfs(root, load_base_config(REAL_ROOT))
    assert [rel for rel in kept if not (root / rel).exists()] == []
    assert [rel for rel in dropped if (root / rel).exists()] == []
    assert not (root / "usr/share/man").exists()  # emptied by the rules, so removed
    assert (root / "etc/dpkg/dpkg.cfg.d/01-labctl-nodoc").read_bytes() == NODOC.read_bytes()
    assert result.removed_bytes >= 100 * len(dropped)
    assert result.size_bytes == sum(p.lstat().st_size for p in root.rglob("*") if p.is_file())


def test_tar_stream_keeps_numeric_owners_and_skips_dev(tmp_path: Path) -> None:
    root = tmp_path / "root"
    tool = _touch(root, "usr/bin/tool", b"#!/bin/sh\n")
    tool.chmod(0o4755)
    _touch(root, "dev/console-standin")
    (root / "proc").mkdir()
    (root / "bin").symlink_to("usr/bin")
    log = tmp_path / "tar.log"
    with tar_stream(root, log) as chunks:
        data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "./usr/bin/tool" in members
    assert members["./usr/bin/tool"].mode & 0o7777 == 0o4755
    assert members["./usr/bin/tool"].uid == os.getuid()
    assert members["./bin"].issym() and members["./bin"].linkname == "usr/bin"
    assert "./dev" in members and "./proc" in members
    assert "./dev/console-standin" not in members


def test_tar_stream_failure_is_an_error(tmp_path: Path) -> None:
    with (
        pytest.raises(ImageBuildError, match=r"base: import: tar exited"),
        tar_stream(tmp_path / "missing", tmp_path / "tar.log") as chunks,
    ):
        b"".join(chunks)


def test_debootstrap_command(tmp_path: Path) -> None:
    config = load_base_config(REAL_ROOT)
    cmd = debootstrap_command(config, tmp_path / "root", tmp_path / "cache")
    assert cmd[0] == "debootstrap"
    assert "--variant=minbase" in cmd
    assert f"--cache-dir={tmp_path / 'cache'}" in cmd
    include = next(arg for arg in cmd if arg.startswith("--include="))
    assert {"python3-cryptography", "openssh-server", "tini", "vpnc"} <= set(
        include.removeprefix("--include=").split(",")
    )
    assert cmd[-3:] == ["bookworm", str(tmp_path / "root"), config.source.mirror]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_cleanup_unmounts_what_debootstrap_left_mounted(tmp_path: Path) -> None:
    with temporary_rootfs(tmp_path / "scratch") as target:
        (target / "proc").mkdir(parents=True)
        _mount_tmpfs(target / "proc")
        (target / "proc" / "inside-a-mount").write_text("x")
        assert mounts_below(target) == [target / "proc"]
        workdir = target.parent
    assert not workdir.exists()
    assert mounts_below(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_remove_tree_unmounts_nested_mounts(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    (victim / "mnt").mkdir(parents=True)
    _mount_tmpfs(victim / "mnt")
    (victim / "mnt" / "sub").mkdir()
    _mount_tmpfs(victim / "mnt" / "sub")
    try:
        remove_tree(victim)
        assert not victim.exists()
    finally:
        _unmount_all(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_remove_tree_never_deletes_through_a_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    (victim / "mnt").mkdir(parents=True)
    _mount_tmpfs(victim / "mnt")
    precious = victim / "mnt" / "precious"
    precious.write_text("not ours to delete")
    real_run = subprocess.run

    def umount_fails(cmd, *args, **kwargs):
        if cmd[0] == "umount":
            return subprocess.CompletedProcess(cmd, 32, b"", b"umount: target is busy")
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr("labctl.images.rootfs.subprocess.run", umount_fails)
    try:
        with pytest.raises(ImageBuildError, match="still mounted"):
            remove_tree(victim)
        assert precious.read_text() == "not ours to delete"
    finally:
        monkeypatch.undo()
        _unmount_all(tmp_path)


def _mount_tmpfs(path: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "labctl-test", str(path)], check=True)


def _unmount_all(top: Path) -> None:
    for point in mounts_below(top):
        subprocess.run(["umount", "--lazy", str(point)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_base_build_sweeps_scratch_left_by_a_killed_build(tmp_path: Path) -> None:
    from labctl.images import ImageBuilder

    leftover = tmp_path / "cache/tmp/rootfs-killed/root"
    (leftover / "proc").mkdir(parents=True)
    _mount_tmpfs(leftover / "proc")
    (tmp_path / "cache/tmp/context-node-busy").mkdir()  # not ours to judge: kept
    seen: list[str] = []
    builder = ImageBuilder(
        REAL_ROOT, cache_dir=tmp_path / "cache", progress=lambda s, d: seen.append(d)
    )
    try:
        builder._sweep_stale_rootfs(tmp_path / "cache/tmp")
    finally:
        _unmount_all(tmp_path)
    assert sorted(p.name for p in (tmp_path / "cache/tmp").iterdir()) == ["context-node-busy"]
    assert any("left by a killed build" in line for line in seen)
