"""End to end: build (or find) the real images and use them.

Needs root, Docker and the Debian mirror. Fails, never skips, when Docker is unreachable.
Every container and network made here is removed by a finalizer.
"""

from __future__ import annotations

import ast
import base64
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from docker.models.containers import Container
from docker.models.networks import Network

from labctl.images import (
    DEFAULT_ROLES,
    ConsoleProgress,
    ImageBuilder,
    ImageBuildError,
    ImageSet,
    ensure_images,
    list_images,
)
from labctl.images.builder import default_cache_dir
from labctl.images.engine import LABEL_HASH, LABEL_PARENT_ID, LABEL_ROLE
from labctl.images.locking import file_lock
from labctl.images.recipes import load_base_config, load_recipe

pytestmark = pytest.mark.e2e

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEST_LABEL = {"labctl.test": "e2e-images"}


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker engine unreachable, e2e image tests cannot run: {exc}")
    return client


@pytest.fixture(scope="module")
def images(client: docker.DockerClient) -> ImageSet:
    progress = ConsoleProgress(sys.stderr, tty=False, interval=10)
    image_set = ensure_images(PROJECT_ROOT, progress=progress)
    progress.close()
    return image_set


@pytest.fixture
def cleanup(client: docker.DockerClient) -> Iterator[list]:
    """Collects containers/networks/image tags to remove, whatever the test's outcome."""
    made: list = []
    yield made
    for thing in reversed(made):
        try:
            if isinstance(thing, str):  # an image tag
                client.images.remove(thing, noprune=False)
            elif isinstance(thing, Network):
                thing.remove()
            elif isinstance(thing, Container):
                thing.remove(force=True)
        except docker.errors.NotFound:
            pass


def test_images_are_tagged_and_labelled(client: docker.DockerClient, images: ImageSet) -> None:
    planned = ImageBuilder(PROJECT_ROOT).plan()
    for role in DEFAULT_ROLES:
        tag = images[role]
        assert re.fullmatch(rf"labctl/{role}:[0-9a-f]{{12}}", tag)
        assert tag == planned[role].tag
        image = client.images.get(tag)
        assert image.id == images.ids[role]
        assert image.labels[LABEL_ROLE] == role
        assert image.labels[LABEL_HASH] == planned[role].digest
        assert planned[role].digest.startswith(tag.split(":")[1])
    assert client.images.get(images["node"]).labels[LABEL_PARENT_ID] == images.ids["base"]
    assert client.images.get(images["vpn"]).labels[LABEL_PARENT_ID] == images.ids["node"]
    assert images.for_kind("pat-firewall") == images["node"]
    assert images.for_kind("vpn-client") == images["vpn"]


def test_no_change_ensure_rebuilds_nothing(images: ImageSet) -> None:
    started = time.monotonic()
    again = ensure_images(PROJECT_ROOT)
    elapsed = time.monotonic() - started
    print(f"no-change ensure_images: {elapsed:.2f} s")
    assert again.built == ()
    assert dict(again.ids) == dict(images.ids)
    assert dict(again.tags) == dict(images.tags)


def _openssh_keypair() -> tuple[str, str, bytes]:
    """(private key in OpenSSH PEM, 'ssh-ed25519 AAAA...' line, raw public blob)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return private, public, base64.b64decode(public.split()[1])


def _key_tar(files: dict[str, tuple[str, int]]) -> bytes:
    """A tar for put_archive; deliberately wrong owner and modes, labctl-init fixes them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, (text, mode) in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, 1234, 1234
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _ssh(address: str, host_public: bytes, client_private: str) -> paramiko.SSHClient:
    ssh = paramiko.SSHClient()
    ssh.get_host_keys().add(address, "ssh-ed25519", paramiko.Ed25519Key(data=host_public))
    ssh.set_missing_host_key_policy(paramiko.RejectPolicy())
    ssh.connect(
        address,
        username="root",
        pkey=paramiko.Ed25519Key.from_private_key(io.StringIO(client_private)),
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
        banner_timeout=5,
        auth_timeout=5,
    )
    return ssh


def _run(ssh: paramiko.SSHClient, command: str) -> str:
    _stdin, stdout, stderr = ssh.exec_command(command, timeout=20)
    status = stdout.channel.recv_exit_status()
    out = stdout.read().decode() + stderr.read().decode()
    assert status == 0, f"{command!r} exited {status}: {out}"
    return out.strip()


def _wait_for_port(address: str, port: int, container, deadline_s: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            raise AssertionError(f"container exited: {container.logs().decode()}")
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {address}:{port}: {container.logs().decode()}")


def test_node_serves_ssh_with_injected_keys(
    client: docker.DockerClient, images: ImageSet, cleanup: list
) -> None:
    name = f"labctl-e2e-images-{uuid.uuid4().hex[:8]}"
    network = client.networks.create(name, driver="bridge", internal=True, labels=TEST_LABEL)
    cleanup.append(network)
    host_private, host_public_line, host_public = _openssh_keypair()
    client_private, client_public_line, _ = _openssh_keypair()
    container = client.containers.create(
        images["node"], name=name, network=name, labels=TEST_LABEL, detach=True
    )
    cleanup.append(container)
    keys = {
        "authorized_keys": (client_public_line + "\n", 0o666),
        "ssh_host_ed25519_key": (host_private, 0o644),
        "ssh_host_ed25519_key.pub": (host_public_line + "\n", 0o600),
    }
    assert container.put_archive("/etc/labctl/ssh", _key_tar(keys))
    container.start()
    container.reload()
    address = container.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
    assert address
    _wait_for_port(address, 22, container)

    with _ssh(address, host_public, client_private) as ssh:
        assert _run(ssh, "nft --version").startswith("nftables v1.0.6")
        assert _run(ssh, "conntrack --version").startswith("conntrack v1.4.7")
        version = _run(ssh, "python3 -c 'import cryptography; print(cryptography.__version__)'")
        assert version == "38.0.4"
        assert (
            _run(
                ssh,
                "python3 -c 'from cryptography.hazmat.primitives.ciphers import "
                "algorithms; print(algorithms.TripleDES.name)'",
            )
            == "3DES"
        )
        modes = _run(ssh, "stat -c '%a %U:%G %n' /etc/labctl/ssh/*").splitlines()
        assert sorted(modes) == [
            "600 root:root /etc/labctl/ssh/ssh_host_ed25519_key",
            "644 root:root /etc/labctl/ssh/README",
            "644 root:root /etc/labctl/ssh/authorized_keys",
            "644 root:root /etc/labctl/ssh/ssh_host_ed25519_key.pub",
        ]
        # PID 1 is tini, sshd runs under it
        assert _run(ssh, "cat /proc/1/comm") == "tini"
        # SFTP is how configs get pushed
        with ssh.open_sftp() as sftp:
            sftp.putfo(io.BytesIO(b"pushed by sftp\n"), "/etc/labctl/e2e-test.conf")
        assert _run(ssh, "cat /etc/labctl/e2e-test.conf") == "pushed by sftp"
        tools = ("tcpdump --version", "iperf3 --version", "ip -V", "ping -V", "ethtool --version")
        for tool in (*tools, "nc -h 2>&1 | head -1", "vpnc --version | head -1"):
            assert _run(ssh, tool)

    # the pin is real: a different host key is refused
    _, _, other_host_public = _openssh_keypair()
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh(address, other_host_public, client_private)
    # and so is a client key that is not in authorized_keys
    stranger_private, _, _ = _openssh_keypair()
    with pytest.raises(paramiko.AuthenticationException):
        _ssh(address, host_public, stranger_private)


def test_node_without_keys_refuses_to_start(
    client: docker.DockerClient, images: ImageSet, cleanup: list
) -> None:
    container = client.containers.create(
        images["node"], network_mode="none", labels=TEST_LABEL, detach=True
    )
    cleanup.append(container)
    container.start()
    result = container.wait(timeout=30)
    logs = container.logs().decode()
    assert result["StatusCode"] == 78, logs
    assert "missing or empty key file(s): /etc/labctl/ssh/ssh_host_ed25519_key" in logs
    assert "sshd" not in _top_processes(container)


def _top_processes(container) -> str:
    try:
        return str(container.top())
    except docker.errors.APIError:
        return ""  # not running: nothing runs


def test_vpn_image_carries_the_node_side_sources(
    client: docker.DockerClient, images: ImageSet
) -> None:
    expected = sorted(
        "/opt/labctl/" + str(f.dest.relative_to("src"))
        for f in load_recipe(PROJECT_ROOT, "vpn").files
        if f.dest.parts[0] == "src"
    )
    script = (
        "find /opt/labctl -type f | sort; "
        "PYTHONPATH=/opt/labctl python3 -c "
        "'import labctl; print(\"version\", labctl.__version__)'; "
        "test -x /usr/local/bin/vpn && echo wrapper-ok; "
        "PYTHONPATH=/opt/labctl python3 -c "
        "'from labctl.esp.gcrypt_cbc import decryptor_3des as d; "
        'print("gcrypt", d(bytes(range(24))))\'; '
        "PYTHONPATH=/opt/labctl python3 -c "
        "'import labctl.agent.daemon, labctl.agent.client; "
        'from labctl.agent import dataclass_cache as c; print("dataclass", c.counts)\'; '
        "grep -c 'python3 -m labctl.agent.cli' /usr/local/bin/vpn"
    )
    out = client.containers.run(
        images["vpn"],
        ["-c", script],
        entrypoint="/bin/sh",
        network_mode="none",
        remove=True,
        labels=TEST_LABEL,
    ).decode()
    lines = out.splitlines()
    files = [line for line in lines if line.startswith("/opt/labctl/")]
    cache = "/opt/labctl/labctl/agent/dataclass-methods.marshal"
    assert [f for f in files if "__pycache__" not in f and f != cache] == expected
    # ... and the dataclass methods the build compiled: an agent compiles none of its own
    assert cache in files
    (counts,) = [line.split(" ", 1)[1] for line in lines if line.startswith("dataclass ")]
    assert ast.literal_eval(counts)["compiled"] == 0 and ast.literal_eval(counts)["cached"] > 300
    assert "/opt/labctl/labctl/__init__.py" in expected
    # Byte-compiled at build (agents start faster): one .pyc per module, nothing else.
    compiled = {f for f in files if "__pycache__" in f}
    sources = {f for f in expected if f.endswith(".py")}
    assert len(compiled) == len(sources) and all(f.endswith(".pyc") for f in compiled)
    assert "wrapper-ok" in lines and lines[-1] == "1"
    assert any(line.startswith("version ") for line in lines)
    # Inbound 3DES decrypts with libgcrypt (esp/gcrypt_cbc.py), which the image must carry.
    assert any(line.startswith("gcrypt <") and "Gcrypt3desCbcDecryptor" in line for line in lines)
    agent_cli = PROJECT_ROOT / "labctl/agent/cli.py"
    if agent_cli.exists():  # the agent may not be written yet; the wrapper must run it
        run = client.containers.run(
            images["vpn"],
            ["--help"],
            entrypoint="/usr/local/bin/vpn",
            network_mode="none",
            remove=True,
            labels=TEST_LABEL,
        )
        assert run


def test_base_is_small_and_clean(client: docker.DockerClient, images: ImageSet) -> None:
    script = (
        "ls /usr/share/man 2>/dev/null | wc -l; ls /var/lib/apt/lists | wc -l; "
        "ls /etc/ssh/ssh_host_* 2>/dev/null | wc -l; "
        "find /usr/share/doc -type f ! -name copyright | wc -l; "
        "ls /var/cache/apt/archives/*.deb 2>/dev/null | wc -l"
    )
    out = (
        client.containers.run(
            images["base"],
            ["/bin/sh", "-c", script],
            network_mode="none",
            remove=True,
            labels=TEST_LABEL,
        )
        .decode()
        .split()
    )
    assert out == ["0", "0", "0", "0", "0"]
    size = client.images.get(images["base"]).attrs["Size"]
    print(f"base image: {size / 1e6:.0f} MB")
    assert size < 250e6


def test_list_images_marks_current_and_users(
    client: docker.DockerClient, images: ImageSet, cleanup: list
) -> None:
    container = client.containers.create(
        images["node"], network_mode="none", labels=TEST_LABEL, detach=True
    )
    cleanup.append(container)
    infos = {info.tag: info for info in list_images(project_root=PROJECT_ROOT) if info.tag}
    for role in DEFAULT_ROLES:
        info = infos[images[role]]
        assert info.role == role and info.current and info.image_id == images.ids[role]
        assert info.size > 100e6
    assert container.name in infos[images["node"]].in_use_by


def test_prune_removes_unused_and_keeps_used(
    client: docker.DockerClient, images: ImageSet, cleanup: list
) -> None:
    role = f"e2e-prune-{uuid.uuid4().hex[:6]}"
    made = []
    for n in range(2):
        dockerfile = f"FROM {images['base']}\nLABEL labctl.image={role} e2e.n={n}\n"
        client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=f"labctl/{role}:{n:012x}", rm=True
        )
        made.append(f"labctl/{role}:{n:012x}")
        cleanup.append(made[-1])
    user = client.containers.create(made[1], network_mode="none", labels=TEST_LABEL)
    cleanup.append(user)
    # an image someone built FROM ours inherits our labels but is not ours to remove
    foreign = f"e2e-derived-{uuid.uuid4().hex[:6]}:1"
    dockerfile = f"FROM {made[0]}\nLABEL e2e.derived=1\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=foreign, rm=True)
    cleanup.append(foreign)
    removed = ImageBuilder(PROJECT_ROOT).prune(roles=[role])
    assert removed == [made[0]]
    assert client.images.get(foreign).labels[LABEL_ROLE] == role
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(made[0])
    assert client.images.get(made[1])  # a container uses it
    for role_name in DEFAULT_ROLES:
        assert client.images.get(images[role_name])  # current images untouched


# The node and vpn recipes of fresh_project: a chain of the real base and two one-step
# images. What the tests using it prove (who builds a new tag, when a child is stale) is
# the builder's, not the recipes'; the real recipes' layers cost ~2 s each on
# fuse-overlayfs and were half of this module's time.
SMALL_RECIPE = "ARG BASE\nFROM ${BASE}\n# e2e build {marker}\n"


@pytest.fixture
def fresh_project(tmp_path: Path, cleanup: list) -> Path:
    """A project whose node and vpn tags nobody has built (removed afterwards): the real
    base recipe, small node and vpn recipes of its own (see SMALL_RECIPE)."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "images", project / "images")
    marker = uuid.uuid4().hex
    for role in ("node", "vpn"):
        shutil.rmtree(project / "images" / role)
        (project / "images" / role).mkdir()
        (project / "images" / role / "Dockerfile").write_text(
            SMALL_RECIPE.replace("{marker}", marker)
        )
    planned = ImageBuilder(project).plan()
    assert planned["base"].tag == ImageBuilder(PROJECT_ROOT).plan()["base"].tag
    cleanup += [planned["node"].tag, planned["vpn"].tag]  # removed in reverse: vpn first
    return project


def test_concurrent_builds_of_a_new_tag_build_once(images: ImageSet, fresh_project: Path) -> None:
    """Two processes ensure a changed recipe at once: each tag is built once, the other waits."""
    project = fresh_project
    script = (
        "import sys, json; from pathlib import Path; from labctl.images import ensure_images;"
        "s = ensure_images(Path(sys.argv[1]));"
        "print(json.dumps({'built': s.built, 'ids': dict(s.ids)}))"
    )
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(project)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    import json

    results = [json.loads(proc.communicate(timeout=300)[0]) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    # locks are per tag: either process may build a tag, but each is built exactly once
    built = sorted(role for r in results for role in r["built"])
    assert built == ["node", "vpn"]
    assert results[0]["ids"] == results[1]["ids"]
    assert results[0]["ids"]["base"] == images.ids["base"]


def test_forced_rebuild_makes_children_stale(
    client: docker.DockerClient, images: ImageSet, fresh_project: Path, cleanup: list
) -> None:
    builder = ImageBuilder(fresh_project)
    before = builder.ensure()
    assert before.built == ("node", "vpn")
    tag = builder.build("node", force=True)
    new_node_id = client.images.get(tag).id
    assert new_node_id != before.ids["node"]  # the build cache did not hand back old layers
    cleanup += [before.ids["node"], before.ids["vpn"]]  # now untagged; removed vpn first
    after = builder.ensure()
    assert after.built == ("vpn",)  # same vpn tag, but built FROM the old node: stale
    assert after.tags == before.tags
    assert client.images.get(after["vpn"]).labels[LABEL_PARENT_ID] == new_node_id


def test_debootstrap_failure_names_the_package_and_the_log(tmp_path: Path) -> None:
    from labctl.images.recipes import BaseConfig
    from labctl.images.rootfs import run_debootstrap, temporary_rootfs

    config = load_base_config(PROJECT_ROOT)
    broken = BaseConfig(
        config.source,
        (*config.packages, "no-such-package-labctl"),
        config.cleanup_globs,
        config.overlay_dir,
    )
    log = tmp_path / "base.log"
    with pytest.raises(ImageBuildError) as info, temporary_rootfs(tmp_path / "scratch") as target:
        run_debootstrap(broken, target, cache_dir=None, log_path=log, report=lambda _: None)
    message = str(info.value)
    assert message.startswith("image build failed at base: debootstrap: debootstrap:")
    assert "no-such-package-labctl" in message
    assert str(log) in message and "no-such-package-labctl" in log.read_text()
    assert list((tmp_path / "scratch").iterdir()) == []


def _seeded_package_cache(into: Path) -> Path:
    """A copy of the .debs of labctl's own debootstrap cache (what `make images` left), so
    a test reaches debootstrap's chroot phase without downloading ~160 packages first.
    Copied under the base-build lock; while a base build holds it, nothing is copied (the
    test then downloads, as before)."""
    into.mkdir()
    shared = default_cache_dir()
    with file_lock(shared / "locks" / "rootfs.lock", blocking=False) as locked:
        if locked:
            for deb in (shared / "debootstrap").glob("*.deb"):
                shutil.copyfile(deb, into / deb.name)
    return into


def test_interrupted_debootstrap_leaves_nothing_behind(tmp_path: Path) -> None:
    """Ctrl-C while dpkg runs in the chroot (/proc mounted there): all unmounted, deleted."""
    scratch = tmp_path / "scratch"
    debs = _seeded_package_cache(tmp_path / "debs")
    # The child restores Python's Ctrl-C handler: a process started from a background job of
    # a non-interactive shell (as CI runners do) inherits SIGINT as ignored.
    script = f"""
import signal
import sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)
from labctl.images.recipes import load_base_config
from labctl.images.rootfs import run_debootstrap, temporary_rootfs
config = load_base_config(Path({str(PROJECT_ROOT)!r}))
def report(detail):
    print(detail, flush=True)
with temporary_rootfs(Path({str(scratch)!r})) as target:
    run_debootstrap(config, target, cache_dir=Path({str(debs)!r}),
                    log_path=Path({str(tmp_path / "log")!r}), report=report, tick=0.2)
"""
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen_mount = False
        for line in proc.stdout:
            if line.startswith(("unpacking", "configuring")):
                seen_mount = _mounted_below(scratch)
                if seen_mount:
                    break
        assert seen_mount, "debootstrap never reached its chroot phase"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert not _mounted_below(scratch)
    assert list(scratch.iterdir()) == []


def _mounted_below(path: Path) -> bool:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4].startswith(prefix) for line in mountinfo)
